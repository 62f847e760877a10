package xds

import (
	"fmt"
	"math/rand/v2"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"
)

// randomRequest returns a request with some of every field set.
func randomRequest(r *rand.Rand) *discoveryv3.DiscoveryRequest {
	req := &discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.EndpointType}
	if r.IntN(2) == 0 {
		req.VersionInfo, req.ResponseNonce = fmt.Sprint(r.Int64()), fmt.Sprint(r.IntN(100))
	}
	if r.IntN(2) == 0 {
		meta, _ := structpb.NewStruct(map[string]any{"zone": "a", "n": r.Float64()})
		req.Node = &corev3.Node{Id: "sidecar-1", Cluster: "web", UserAgentName: "envoy", Metadata: meta}
	}
	if r.IntN(3) == 0 {
		req.ErrorDetail = &statuspb.Status{Code: 3, Message: "rejected ☃"}
	}
	if r.IntN(3) == 0 {
		req.ResourceLocators = []*discoveryv3.ResourceLocator{{Name: "loc"}}
	}
	for range r.IntN(300) {
		req.ResourceNames = append(req.ResourceNames, []string{"", "svc-00001/v1", "ünïcode/v2", fmt.Sprintf("svc-%05d/v%d", r.IntN(5000), r.IntN(3))}[r.IntN(4)])
	}
	return req
}

func marshalT(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDecodeRequestAgreesWithProto: decodeRequest gives what
// proto.Unmarshal gives, for requests with every field, for two requests
// concatenated (which merges them: their names interleave with the other
// fields), with unknown fields, and fails where it fails.
func TestDecodeRequestAgreesWithProto(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	inputs := [][]byte{nil}
	for range 200 {
		inputs = append(inputs, marshalT(t, randomRequest(r)))
	}
	for range 50 {
		inputs = append(inputs, append(marshalT(t, randomRequest(r)), marshalT(t, randomRequest(r))...))
	}
	badName := protowire.AppendString(protowire.AppendTag(nil, resourceNamesField, protowire.BytesType), "\xff")
	truncated := marshalT(t, &discoveryv3.DiscoveryRequest{ResourceNames: []string{"a", "bcd"}})
	// A resource name of another wire type, and a field the message does
	// not have, are unknown fields to proto.Unmarshal, kept as they were.
	varintName := protowire.AppendVarint(protowire.AppendTag(nil, resourceNamesField, protowire.VarintType), 7)
	unknown := protowire.AppendString(protowire.AppendTag(nil, 99, protowire.BytesType), "x")
	inputs = append(inputs, append(varintName, truncated...), append(unknown, truncated...),
		badName, truncated[:len(truncated)-1], []byte{0xff})
	for i, in := range inputs {
		want, got := new(discoveryv3.DiscoveryRequest), new(discoveryv3.DiscoveryRequest)
		wantErr, gotErr := proto.Unmarshal(in, want), decodeRequest(in, got)
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("input %d: decodeRequest error %v, proto.Unmarshal error %v", i, gotErr, wantErr)
		}
		if wantErr != nil {
			continue
		}
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Fatalf("input %d (-proto.Unmarshal +decodeRequest):\n%s", i, diff)
		}
	}
}

// BenchmarkDecodeRequest decodes an Envoy's endpoint ACK at 100 services:
// two clusters' names per service.
func BenchmarkDecodeRequest(b *testing.B) {
	req := &discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.EndpointType, VersionInfo: "0971fec9560e6bfc", ResponseNonce: "42",
		Node: &corev3.Node{Id: "sidecar-1", Cluster: "web", UserAgentName: "envoy"}}
	for i := range 100 {
		req.ResourceNames = append(req.ResourceNames, fmt.Sprintf("svc-%05d/v1", i), fmt.Sprintf("svc-%05d/v2", i))
	}
	in := marshalT(b, req)
	for _, tt := range []struct {
		name   string
		decode func([]byte, *discoveryv3.DiscoveryRequest) error
	}{
		{"decodeRequest", decodeRequest},
		{"proto.Unmarshal", func(in []byte, m *discoveryv3.DiscoveryRequest) error { return proto.Unmarshal(in, m) }},
	} {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := tt.decode(in, new(discoveryv3.DiscoveryRequest)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
