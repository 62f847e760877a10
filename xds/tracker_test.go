package xds

import (
	"fmt"
	"slices"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"

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

// TestMadeUpTypesShareOneLabel: the responses to types weir does not
// serve, and their NACKs, are counted under one label, "other", not one
// per type: a client could otherwise add metric series without end.
func TestMadeUpTypesShareOneLabel(t *testing.T) {
	srv := startServer(t)
	mustSet(t, srv.cache, greeterSnapshot(t, policy.Weights{"v1": 10000}, "v1"))
	g := dialADS(t, srv.addr, grpcNode)
	g.subscribe(resourcev3.ListenerType, "greeter")
	g.ack(g.recv(), "greeter")
	const madeUp = 20
	madeUpType := func(i int) string { return fmt.Sprintf("type.googleapis.com/made.up.Type%d", i) }
	for i := range madeUp {
		g.subscribe(madeUpType(i), "x")
		g.nack(g.recv(), "", "x")
	}
	eventually(t, "the last NACK to be recorded", func() bool {
		return slices.ContainsFunc(srv.tracker.Proxies(), func(p Proxy) bool { return p.Types[madeUpType(madeUp-1)].LastNack != nil })
	})
	m := srv.tracker.metrics
	if responses, nacks := testutil.ToFloat64(m.Responses.WithLabelValues("other")), testutil.ToFloat64(m.Nacks.WithLabelValues("other")); responses != madeUp || nacks != madeUp {
		t.Errorf("made-up types: %v responses and %v NACKs counted as other, want %d each", responses, nacks, madeUp)
	}
	if responses, nacks := testutil.CollectAndCount(m.Responses), testutil.CollectAndCount(m.Nacks); responses != 2 || nacks != 1 {
		t.Errorf("series: %d of responses, %d of NACKs; want 2 (Listener, other) and 1 (other)", responses, nacks)
	}
}

func nodeIDs(ps []Proxy) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.NodeID
	}
	return out
}
