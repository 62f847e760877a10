package xds

import (
	"context"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// TestResponseCodecRoundTrip checks that responses small and large (the
// large ones encoded into weir's own buffers) decode to what was sent.
func TestResponseCodecRoundTrip(t *testing.T) {
	codec := newResponseCodec()
	for _, size := range []int{10, 40 << 10, 3 << 20} {
		sent := &discoveryv3.DiscoveryResponse{VersionInfo: "v1", Resources: []*anypb.Any{
			{TypeUrl: "t", Value: []byte(strings.Repeat("x", size))},
		}}
		data, err := codec.Marshal(sent)
		if err != nil {
			t.Fatal(err)
		}
		if data.Len() != proto.Size(sent) {
			t.Errorf("%d bytes: encoded %d bytes, want %d", size, data.Len(), proto.Size(sent))
		}
		var got discoveryv3.DiscoveryResponse
		if err := codec.Unmarshal(data, &got); err != nil {
			t.Fatal(err)
		}
		data.Free()
		if !proto.Equal(sent, &got) {
			t.Errorf("%d bytes: decoded a different response", size)
		}
	}
}

// TestResponsesInFlightAreBounded checks that a large response holds its
// bytes of the in-flight budget until gRPC frees its buffer, and that a
// response that does not fit in time is encoded all the same.
func TestResponsesInFlightAreBounded(t *testing.T) {
	codec := newResponseCodec()
	codec.wait = 10 * time.Millisecond
	large := &discoveryv3.DiscoveryResponse{Resources: []*anypb.Any{{Value: make([]byte, 40<<10)}}}
	data, err := codec.Marshal(large)
	if err != nil {
		t.Fatal(err)
	}
	if codec.inFlight.TryAcquire(maxInFlightBytes) {
		t.Fatal("the whole budget is free while a response waits to be written")
	}
	data.Free()
	if !codec.inFlight.TryAcquire(maxInFlightBytes) {
		t.Fatal("the budget was not given back when the response was written")
	}
	// The budget is taken: the next response waits codec.wait, then
	// goes ahead uncounted.
	data, err = codec.Marshal(large)
	if err != nil {
		t.Fatal(err)
	}
	if data.Len() != proto.Size(large) {
		t.Errorf("encoded %d bytes, want %d", data.Len(), proto.Size(large))
	}
	data.Free()
	codec.inFlight.Release(maxInFlightBytes)
	if !codec.inFlight.TryAcquire(maxInFlightBytes) {
		t.Error("an uncounted response gave back bytes it never took, or took some")
	}
}

// TestInFlightBudgetSurvivesDroppedConnections checks that the bytes of a
// response still queued when its connection dies come back: gRPC then
// drops the buffer without putting it back, and the collector gives them
// back instead.
func TestInFlightBudgetSurvivesDroppedConnections(t *testing.T) {
	codec := newResponseCodec()
	queued, done := make(chan struct{}), make(chan struct{})
	srv := grpc.NewServer(grpc.ForceServerCodecV2(codec), grpc.UnknownServiceHandler(func(_ any, st grpc.ServerStream) error {
		defer close(done)
		// 4 MiB against the client's 64 KiB window: most of it stays queued.
		msg := &discoveryv3.DiscoveryResponse{Resources: []*anypb.Any{{Value: make([]byte, 4<<20)}}}
		if err := st.SendMsg(msg); err != nil {
			t.Errorf("send: %v", err)
		}
		close(queued)
		<-st.Context().Done()
		return nil
	}))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	defer srv.Stop()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.NewStream(context.Background(), &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "/weir.Test/Stream"); err != nil {
		t.Fatal(err)
	}
	<-queued
	if codec.inFlight.TryAcquire(maxInFlightBytes) {
		t.Fatal("the queued response holds no budget")
	}
	cc.Close()
	<-done
	deadline := time.Now().Add(waitTimeout)
	for !codec.inFlight.TryAcquire(maxInFlightBytes) {
		if time.Now().After(deadline) {
			t.Fatal("the budget of a response queued on a dropped connection never came back")
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}
