package xds

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"unique"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"

	"github.com/weir-mesh/weir/policy"
	"github.com/weir-mesh/weir/snapshot"
)

// fakeVersions is a VersionFunc whose versions differ for every type,
// class, subscription; it counts how often it is asked.
type fakeVersions struct{ calls int }

func (f *fakeVersions) version(typeURL string, class Class, names []string, wildcard bool) string {
	f.calls++
	return fmt.Sprintf("%s/%s/%v/%s", shortType(typeURL), class, wildcard, strings.Join(names, ","))
}

func TestFleetLooksOncePerSubscription(t *testing.T) {
	tr := NewTracker(slog.New(slog.NewTextHandler(io.Discard, nil)), NewMetrics(prometheus.NewRegistry(), func() float64 { return 0 }))
	var f fakeVersions
	id := int64(0)
	open := func(name, agent, typeURL string, names ...string) (int64, *corev3.Node, *discoveryRequest) {
		id++
		if err := tr.OnStreamOpen(context.Background(), id, ""); err != nil {
			t.Fatal(err)
		}
		node := &corev3.Node{Id: name, UserAgentName: agent}
		return id, node, send(t, tr, id, node, typeURL, names, f.version(typeURL, ClassOf(node), names, len(names) == 0))
	}
	acked := func(name, agent, typeURL string, names ...string) {
		id, _, ack := open(name, agent, typeURL, names...)
		reply(t, tr, id, ack)
	}
	acked("e1", "envoy", resourcev3.ClusterType)
	open("e2", "envoy", resourcev3.ClusterType) // not ACKed yet
	nacker, _, nack := open("g1", "gRPC Go", resourcev3.ClusterType, "a")
	nack.ErrorDetail = &statuspb.Status{Message: "rejected"}
	reply(t, tr, nacker, nack)
	acked("g2", "gRPC Go", resourcev3.ClusterType, "a")
	// Same names as g2, but an Envoy: another class, another version.
	acked("e3", "envoy", resourcev3.ClusterType, "a")
	open("e4", "envoy", resourcev3.ListenerType) // not ACKed, but listeners hold no bridge
	// g3 unsubscribes from everything: nothing to hold.
	g3, _, ack := open("g3", "gRPC Go", resourcev3.RouteType, "r")
	reply(t, tr, g3, ack)
	ack.ResourceNames = nil
	reply(t, tr, g3, ack)
	// g4 names one more cluster while ACKing: it does not hold that yet.
	g4, _, ack := open("g4", "gRPC Go", resourcev3.ClusterType, "a")
	reply(t, tr, g4, ack)
	ack.ResourceNames = []string{"a", "b"}
	reply(t, tr, g4, ack)

	f.calls = 0
	got := tr.fleet(f.version, nil, "", true)
	want := fleetStatus{pending: 2, nodes: []string{"e2", "g4"}, synced: 4, total: 8}
	if got.pending != want.pending || !slices.Equal(got.nodes, want.nodes) || got.synced != want.synced || got.total != want.total {
		t.Errorf("fleet = %+v, want %+v", got, want)
	}
	// Distinct subscriptions: CDS envoy wildcard, CDS envoy [a], CDS gRPC
	// [a], CDS gRPC [a b], LDS envoy wildcard.
	if f.calls != 5 {
		t.Errorf("looking at 8 proxies asked for %d versions, want one per distinct subscription: 5", f.calls)
	}
	if got := tr.fleet(f.version, nil, "", false); got.pending != 2 || got.nodes != nil {
		t.Errorf("unlisted look = %+v, want 2 pending and no list", got)
	}
	if got := tr.Pending(resourcev3.ClusterType, f.version); !slices.Equal(got, []string{"e2", "g4"}) {
		t.Errorf("Pending(clusters) = %v, want [e2 g4]", got)
	}
	if got := tr.Pending(resourcev3.ListenerType, f.version); !slices.Equal(got, []string{"e4"}) {
		t.Errorf("Pending(listeners) = %v, want [e4]", got)
	}
}

func TestSelectionTellsSubscriptionsApart(t *testing.T) {
	base := selectionOf(resourcev3.ClusterType, false, []string{"a", "b"})
	if selectionOf(resourcev3.ClusterType, false, []string{"a", "b"}) != base {
		t.Error("the same subscription has two selections")
	}
	for _, other := range []unique.Handle[string]{
		selectionOf(resourcev3.ClusterType, true, []string{"a", "b"}),
		selectionOf(resourcev3.EndpointType, false, []string{"a", "b"}),
		selectionOf(resourcev3.ClusterType, false, []string{"ab"}),
		selectionOf(resourcev3.ClusterType, false, []string{"a"}),
		selectionOf(resourcev3.ClusterType, false, []string{"a", "b", ""}),
	} {
		if other == base {
			t.Errorf("%q shares the selection of %q", other.Value(), base.Value())
		}
	}
}

// TestFleetJudgesOnlyWhatChanged checks that a look with the same epoch
// reuses what the last look found of every proxy that did not change since,
// and that a proxy that changed, or a new epoch, is judged afresh.
func TestFleetJudgesOnlyWhatChanged(t *testing.T) {
	tr := NewTracker(slog.New(slog.NewTextHandler(io.Discard, nil)), NewMetrics(prometheus.NewRegistry(), func() float64 { return 0 }))
	var f fakeVersions
	node := func(i int64) *corev3.Node { return &corev3.Node{Id: fmt.Sprint("e", i), UserAgentName: "envoy"} }
	acks := map[int64]*discoveryRequest{}
	for id := range int64(3) {
		if err := tr.OnStreamOpen(context.Background(), id, ""); err != nil {
			t.Fatal(err)
		}
		acks[id] = send(t, tr, id, node(id), resourcev3.ClusterType, nil, f.version(resourcev3.ClusterType, Envoy, nil, true))
	}
	reply(t, tr, 0, acks[0])

	if got := tr.fleet(f.version, nil, "e1", false); got.synced != 1 || got.pending != 2 {
		t.Fatalf("first look = %+v, want 1 synced and 2 pending", got)
	}
	f.calls = 0
	if got := tr.fleet(f.version, nil, "e1", false); got.synced != 1 || got.pending != 2 || f.calls != 0 {
		t.Errorf("unchanged look = %+v after %d versions asked, want the same with none asked", got, f.calls)
	}
	reply(t, tr, 1, acks[1])
	if got := tr.fleet(f.version, nil, "e1", false); got.synced != 2 || got.pending != 1 || f.calls != 1 {
		t.Errorf("after e1 ACKed: %+v after %d versions asked, want 2 synced and e1 judged again (1 asked)", got, f.calls)
	}
	f.calls = 0
	moved := func(typeURL string, class Class, names []string, wildcard bool) string {
		f.calls++
		return "moved on"
	}
	if got := tr.fleet(moved, nil, "e2", false); got.synced != 0 || got.pending != 3 || f.calls != 1 {
		t.Errorf("new epoch: %+v after %d versions asked, want every proxy judged again (1 asked: one subscription)", got, f.calls)
	}
}

// TestDeltaUnsubscribeInAnAckIsInSync checks that a delta client that
// ACKs a response and, in the same request, unsubscribes from a resource
// that still exists (Envoy merges pending subscription changes into its
// ACKs) is in sync once it ACKs the answer: the request was once left
// unanswered, and the client, holding exactly what it should, counted as
// pending until some later change reached it.
func TestDeltaUnsubscribeInAnAckIsInSync(t *testing.T) {
	srv := startServer(t)
	mustSet(t, srv.cache, greeterSnapshot(t, policy.Weights{"v1": policy.Full}, "v1", "v2"))
	c := dialDelta(t, srv.addr)
	c.send(&discoveryv3.DeltaDiscoveryRequest{Node: envoyNode, TypeUrl: resourcev3.EndpointType,
		ResourceNamesSubscribe: []string{"greeter/v1", "greeter/v2"}})
	r := c.recv()
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResponseNonce: r.Nonce,
		ResourceNamesUnsubscribe: []string{"greeter/v2"}})
	a := c.recv()
	if len(a.Resources)+len(a.RemovedResources) != 0 {
		t.Errorf("the answer to the unsubscription carries %v and removes %v, want nothing", deltaNames(a), a.RemovedResources)
	}
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResponseNonce: a.Nonce})
	eventually(t, "the ACK's watch to be held", func() bool { return srv.cache.watches() == 1 })
	epoch, current, needs := srv.cache.Versions()
	if f := srv.tracker.fleet(current, needs, epoch, true); f.synced != 1 || f.pending != 0 {
		t.Errorf("the client holds exactly greeter/v1, yet %d of %d are in sync, pending %v", f.synced, f.total, f.nodes)
	}
}

// TestWildcardOfUnservedTypeIsInSync checks that a proxy subscribed by
// wildcard to a type weir serves nothing of (secrets, here) is in sync
// once it ACKs the empty answer: the answer's version was once "", which
// no proxy counts as holding.
func TestWildcardOfUnservedTypeIsInSync(t *testing.T) {
	srv := startServer(t)
	mustSet(t, srv.cache, greeterSnapshot(t, policy.Weights{"v1": policy.Full}, "v1"))
	c := dialADS(t, srv.addr, envoyNode)
	c.subscribe(resourcev3.ClusterType)
	cds := c.recv()
	c.ack(cds)
	c.subscribe(resourcev3.SecretType)
	sec := c.recv()
	if sec.VersionInfo == "" || len(sec.Resources) != 0 {
		t.Errorf("the secrets answer: version %q with %d resources, want a version and none", sec.VersionInfo, len(sec.Resources))
	}
	c.ack(sec)
	eventually(t, "the proxy to be in sync", func() bool {
		epoch, current, needs := srv.cache.Versions()
		return srv.tracker.fleet(current, needs, epoch, true).synced == 1
	})
}

// TestGRPCClientPendingUntilItSubscribesWhatItHoldsNames checks that a
// gRPC client that ACKed routes naming a cluster it has not subscribed to
// yet (grpc-go ACKs routes before it asks for their clusters, and clusters
// before their endpoints) is pending and not in sync: a bridge that moved
// on then, before the client had set up the cluster it warms, failed the
// client's first RPCs to it with "unknown cluster selected for RPC".
func TestGRPCClientPendingUntilItSubscribesWhatItHoldsNames(t *testing.T) {
	srv := startServer(t)
	// greeter/v2 has no weight: only the warming route names it.
	mustSet(t, srv.cache, greeterSnapshot(t, policy.Weights{"v1": policy.Full}, "v1", "v2"))
	c := dialADS(t, srv.addr, grpcNode)
	// hold subscribes to names, ACKs the answer, and waits for the
	// tracker to record the ACK.
	hold := func(typeURL string, names ...string) {
		t.Helper()
		c.subscribe(typeURL, names...)
		r := c.recv()
		c.ack(r, names...)
		eventually(t, "the tracker to record the ACK of "+strings.Join(names, ", "), func() bool {
			ps := srv.tracker.Proxies()
			if len(ps) != 1 {
				return false
			}
			st := ps[0].Types[typeURL]
			return st.Acked == r.VersionInfo && slices.Equal(st.Names, names)
		})
	}
	look := func() fleetStatus {
		epoch, current, needs := srv.cache.Versions()
		return srv.tracker.fleet(current, needs, epoch, true)
	}
	routes := snapshot.ServiceRouteConfigName("greeter")
	hold(resourcev3.RouteType, routes)
	hold(resourcev3.ClusterType, "greeter/v1")
	hold(resourcev3.EndpointType, "greeter/v1")
	if f := look(); f.synced != 0 || f.pending != 1 {
		t.Errorf("routes naming greeter/v2 held, clusters without it: %d of %d in sync, pending %v; want pending", f.synced, f.total, f.nodes)
	}
	hold(resourcev3.ClusterType, "greeter/v1", "greeter/v2")
	if f := look(); f.synced != 0 || f.pending != 1 {
		t.Errorf("greeter/v2's cluster held, not its endpoints: %d of %d in sync, pending %v; want pending", f.synced, f.total, f.nodes)
	}
	hold(resourcev3.EndpointType, "greeter/v1", "greeter/v2")
	eventually(t, "the client to be in sync", func() bool { f := look(); return f.synced == 1 && f.pending == 0 })
}
