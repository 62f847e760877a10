package xds

import (
	"strings"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// TestResponseCodecRoundTrip checks that responses small and large (the
// large ones encoded into weir's own buffers) decode to what was sent.
func TestResponseCodecRoundTrip(t *testing.T) {
	codec := responseCodec{encoding.GetCodecV2(grpcproto.Name)}
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
