package xds

import (
	"slices"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weir-mesh/weir/policy"
)

func TestSubscribeSotwFollowsLegacyWildcard(t *testing.T) {
	var st TypeStatus
	subscribeSotw(&st, nil)
	if !st.Wildcard {
		t.Fatal("a first request without names is a wildcard subscription")
	}
	subscribeSotw(&st, []string{"a", "b"})
	if st.Wildcard || !slices.Equal(st.Names, []string{"a", "b"}) {
		t.Fatalf("after naming a and b: wildcard %v names %v", st.Wildcard, st.Names)
	}
	// grpc-go sends an empty list when its last watch of a type goes away:
	// that is nothing, not everything.
	subscribeSotw(&st, nil)
	if st.Wildcard || len(st.Names) != 0 {
		t.Fatalf("after unsubscribing all: wildcard %v names %v, want nothing", st.Wildcard, st.Names)
	}
	subscribeSotw(&st, []string{"*", "c"})
	if !st.Wildcard || !slices.Equal(st.Names, []string{"c"}) {
		t.Fatalf("explicit wildcard: wildcard %v names %v", st.Wildcard, st.Names)
	}
}

// TestSotwAndDeltaStreamsAreTrackedApart checks that a state-of-the-world
// stream and a delta stream with the same id are two proxies:
// go-control-plane numbers the two kinds of stream apart, each from 1, and
// the tracker once kept one entry for both, which the first to close took
// away.
func TestSotwAndDeltaStreamsAreTrackedApart(t *testing.T) {
	srv := startServer(t)
	mustSet(t, srv.cache, greeterSnapshot(t, policy.Weights{"v1": 10000}, "v1"))
	g := dialADS(t, srv.addr, grpcNode)
	g.subscribe(resourcev3.ListenerType, "greeter")
	g.ack(g.recv(), "greeter")
	d := dialDelta(t, srv.addr)
	d.send(&discoveryv3.DeltaDiscoveryRequest{Node: envoyNode, TypeUrl: resourcev3.ClusterType})
	r := d.recv()
	d.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: r.Nonce})
	eventually(t, "the delta ACK to be recorded", func() bool {
		return slices.ContainsFunc(srv.tracker.Proxies(), func(p Proxy) bool {
			return p.NodeID == envoyNode.Id && p.Types[resourcev3.ClusterType].Acked != ""
		})
	})
	if got := nodeIDs(srv.tracker.Proxies()); !slices.Equal(got, []string{grpcNode.Id, envoyNode.Id}) {
		t.Fatalf("two streams connected, the tracker knows %v", got)
	}
	if err := d.stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the delta stream's proxy to be forgotten", func() bool {
		return !slices.Contains(nodeIDs(srv.tracker.Proxies()), envoyNode.Id)
	})
	if got := nodeIDs(srv.tracker.Proxies()); !slices.Equal(got, []string{grpcNode.Id}) {
		t.Fatalf("the state-of-the-world stream is still connected, the tracker knows %v", got)
	}
}

func nodeIDs(ps []Proxy) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.NodeID
	}
	return out
}
