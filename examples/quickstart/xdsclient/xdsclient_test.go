package xdsclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/weir-mesh/weir/examples/quickstart/xdsclient"
)

const listenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"

func TestBootstrapJSON(t *testing.T) {
	var got map[string]any
	if err := json.Unmarshal(xdsclient.BootstrapJSON("127.0.0.1:18000", "demo-client"), &got); err != nil {
		t.Fatalf("BootstrapJSON is not JSON: %v", err)
	}
	want := map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri":      "127.0.0.1:18000",
			"channel_creds":   []any{map[string]any{"type": "insecure"}},
			"server_features": []any{"xds_v3"},
		}},
		"node": map[string]any{"id": "demo-client"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("BootstrapJSON (-want +got):\n%s", diff)
	}
}

func TestDialRejectsBadArguments(t *testing.T) {
	tests := []struct {
		name, target, xdsAddr, nodeID string
		wantNotXDS                    bool
	}{
		{name: "dns target", target: "dns:///greeter", xdsAddr: "127.0.0.1:18000", nodeID: "n", wantNotXDS: true},
		{name: "bare target", target: "greeter:9101", xdsAddr: "127.0.0.1:18000", nodeID: "n", wantNotXDS: true},
		{name: "no xds address", target: "xds:///greeter", nodeID: "n"},
		{name: "no node id", target: "xds:///greeter", xdsAddr: "127.0.0.1:18000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cc, err := xdsclient.Dial(tc.target, tc.xdsAddr, tc.nodeID)
			if err == nil {
				cc.Close()
				t.Fatal("Dial succeeded, want an error")
			}
			if got := errors.Is(err, xdsclient.ErrNotXDSTarget); got != tc.wantNotXDS {
				t.Errorf("errors.Is(%v, ErrNotXDSTarget) = %v, want %v", err, got, tc.wantNotXDS)
			}
		})
	}
}

// adsRecorder is a management server that records the first ADS request of
// each stream and answers nothing.
type adsRecorder struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer
	requests chan *discoveryv3.DiscoveryRequest
}

func (a *adsRecorder) StreamAggregatedResources(stream grpc.BidiStreamingServer[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]) error {
	req, err := stream.Recv()
	if err != nil {
		return err
	}
	select {
	case a.requests <- req:
	default:
	}
	<-stream.Context().Done()
	return nil
}

// TestDialUsesBootstrap checks that grpc-go accepts the bootstrap: the
// channel opens ADS to xdsAddr as nodeID and asks for the target's Listener.
func TestDialUsesBootstrap(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ads := &adsRecorder{requests: make(chan *discoveryv3.DiscoveryRequest, 1)}
	srv := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(srv, ads)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)

	cc, err := xdsclient.Dial("xds:///greeter", lis.Addr().String(), "test-node")
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { cc.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The RPC cannot succeed (no resources are ever sent); it only makes the
	// channel resolve.
	go testpb.NewTestServiceClient(cc).UnaryCall(ctx, &testpb.SimpleRequest{})

	select {
	case req := <-ads.requests:
		if got := req.GetNode().GetId(); got != "test-node" {
			t.Errorf("node id = %q, want %q", got, "test-node")
		}
		if got := req.GetTypeUrl(); got != listenerType {
			t.Errorf("first request type = %q, want %q", got, listenerType)
		}
		if diff := cmp.Diff([]string{"greeter"}, req.GetResourceNames()); diff != "" {
			t.Errorf("requested listeners (-want +got):\n%s", diff)
		}
	case <-ctx.Done():
		t.Fatal("no ADS request reached the management server named in the bootstrap")
	}
}
