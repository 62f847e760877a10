package xds

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/policy"
	"github.com/weir-mesh/weir/snapshot"
)

func mustSet(t *testing.T, c *Cache, s *snapshot.Snapshot) {
	t.Helper()
	if err := c.SetSnapshot(s, nil); err != nil {
		t.Fatal(err)
	}
}

func TestNothingServedBeforeFirstSnapshot(t *testing.T) {
	srv := startServer(t)
	c := dialADS(t, srv.addr, envoyNode)
	c.subscribe(resourcev3.ClusterType)

	// The request is held as a watch; the first snapshot answers it. Had
	// the cache answered earlier, the first response would be empty.
	eventually(t, "the request to be held", func() bool { return srv.cache.watches() == 1 })
	mustSet(t, srv.cache, greeterSnapshot(t, policy.Weights{"v1": 10000}, "v1"))
	r := c.recv()
	if got, want := resourceNames(t, r), []string{"greeter/v1"}; !slices.Equal(got, want) {
		t.Fatalf("first response = %v, want %v", got, want)
	}
}

// TestAcceptedRunsBeforeAnyWatchIsAnswered checks that SetSnapshot runs its
// accepted func before any stream can see the snapshot, so that whoever saw
// a snapshot sees what accepted recorded: the publish counter weir-bench
// reads once its proxy holds a change.
func TestAcceptedRunsBeforeAnyWatchIsAnswered(t *testing.T) {
	srv := startServer(t)
	c := dialADS(t, srv.addr, envoyNode)
	c.subscribe(resourcev3.ClusterType)
	eventually(t, "the request to be held", func() bool { return srv.cache.watches() == 1 })
	held := -1
	snap := greeterSnapshot(t, policy.Weights{"v1": 10000}, "v1")
	if err := srv.cache.SetSnapshot(snap, func() { held = srv.cache.watches() }); err != nil {
		t.Fatal(err)
	}
	if held != 1 {
		t.Errorf("accepted ran while %d watches were held, want 1: the snapshot was already answering", held)
	}
	if got, want := resourceNames(t, c.recv()), []string{"greeter/v1"}; !slices.Equal(got, want) {
		t.Errorf("response = %v, want %v", got, want)
	}
}

func TestEnvoyAndGRPCShareOneSnapshot(t *testing.T) {
	srv := startServer(t)
	snap := greeterSnapshot(t, policy.Weights{"v1": 9000, "v2": 1000}, "v1", "v2")
	mustSet(t, srv.cache, snap)

	envoy := dialADS(t, srv.addr, envoyNode)
	envoy.subscribe(resourcev3.ListenerType)
	envoy.subscribe(resourcev3.ClusterType)
	lds, cds := envoy.recv(), envoy.recv()
	if lds.TypeUrl != resourcev3.ListenerType {
		lds, cds = cds, lds
	}
	if got, want := resourceNames(t, lds), []string{snapshot.SidecarListenerName}; !slices.Equal(got, want) {
		t.Errorf("envoy wildcard LDS = %v, want %v", got, want)
	}
	if got, want := resourceNames(t, cds), []string{"greeter/v1", "greeter/v2"}; !slices.Equal(got, want) {
		t.Errorf("envoy wildcard CDS = %v, want %v", got, want)
	}

	grpc := dialADS(t, srv.addr, grpcNode)
	grpc.subscribe(resourcev3.ListenerType, "greeter")
	if got, want := resourceNames(t, grpc.recv()), []string{"greeter"}; !slices.Equal(got, want) {
		t.Errorf("gRPC named LDS = %v, want %v", got, want)
	}
	grpc.subscribe(resourcev3.ClusterType, "greeter/v2")
	if got, want := resourceNames(t, grpc.recv()), []string{"greeter/v2"}; !slices.Equal(got, want) {
		t.Errorf("gRPC named CDS = %v, want %v", got, want)
	}
}

func TestResourcesMarshalledOnce(t *testing.T) {
	p, err := prepare(greeterSnapshot(t, policy.Weights{"v1": 10000}, "v1", "v2"), &marshalMemo{})
	if err != nil {
		t.Fatal(err)
	}
	wildcard := fetchSubscription{wildcard: true}
	named := fetchSubscription{names: []string{"greeter/v2"}}
	envoyResp := sotwResponse(p, &discoveryRequest{Node: envoyNode, TypeUrl: resourcev3.ClusterType}, wildcard, nil)
	grpcResp := sotwResponse(p, &discoveryRequest{Node: grpcNode, TypeUrl: resourcev3.ClusterType}, named, nil)
	e, _ := envoyResp.GetDiscoveryResponse()
	g, _ := grpcResp.GetDiscoveryResponse()
	if e == g {
		t.Fatal("two streams share one DiscoveryResponse; the server writes its nonce into it")
	}
	// Both classes carry the very same marshalled cluster, not a copy.
	if e.Resources[1] != g.Resources[0] {
		t.Error("Envoy and gRPC responses hold different copies of greeter/v2")
	}
}

// TestSelectionVersions checks that a selection's version depends only on
// which resources it holds: the order and repetition of the names asked
// for, and whether all were named or asked for by wildcard, make no
// difference, and the version a proxy is judged by (VersionFor) is the one
// it was sent.
func TestSelectionVersions(t *testing.T) {
	c := NewCache()
	mustSet(t, c, greeterSnapshot(t, policy.Weights{"v1": 9000, "v2": 1000}, "v1", "v2"))
	cds := resourcev3.ClusterType
	all := c.VersionFor(cds, Envoy, nil, true)
	for _, names := range [][]string{{"greeter/v1", "greeter/v2"}, {"greeter/v2", "greeter/v1", "greeter/v2"}} {
		if got := c.VersionFor(cds, Envoy, names, false); got != all {
			t.Errorf("VersionFor %v = %s, want the wildcard's %s", names, got, all)
		}
	}
	one := c.VersionFor(cds, Envoy, []string{"greeter/v2"}, false)
	if one == all || one != c.VersionFor(cds, Envoy, []string{"greeter/v2", "unknown"}, false) {
		t.Errorf("one cluster: %s (all: %s); an unknown name must not change it", one, all)
	}
	// A type weir does not serve has no entries: a named subscription to it
	// still holds a version, as it did before the full-selection shortcut,
	// or the proxy would never count as in sync.
	const secretType = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
	if got := c.VersionFor(secretType, Envoy, []string{"cert"}, false); got == "" {
		t.Error("a named subscription to a type not served has no version")
	}
	p := c.snapshot()
	sent := sotwResponse(p, &discoveryRequest{Node: envoyNode, TypeUrl: cds}, fetchSubscription{names: []string{"greeter/v2"}}, nil)
	resp, _ := sent.GetDiscoveryResponse()
	if resp.GetVersionInfo() != one {
		t.Errorf("sent version %s for greeter/v2, VersionFor says %s", resp.GetVersionInfo(), one)
	}
}

func TestUnknownNamesAreAnswered(t *testing.T) {
	srv := startServer(t)
	mustSet(t, srv.cache, greeterSnapshot(t, policy.Weights{"v1": 10000}, "v1"))
	c := dialADS(t, srv.addr, grpcNode)
	c.subscribe(resourcev3.ListenerType, "no-such-service")
	if r := c.recv(); len(r.Resources) != 0 {
		t.Fatalf("got %d resources for an unknown name, want an empty answer", len(r.Resources))
	}
}

func TestAckNackAndNoResend(t *testing.T) {
	srv := startServer(t)
	v90 := greeterSnapshot(t, policy.Weights{"v1": 9000, "v2": 1000}, "v1", "v2")
	v50 := greeterSnapshot(t, policy.Weights{"v1": 5000, "v2": 5000}, "v1", "v2")
	v0 := greeterSnapshot(t, policy.Weights{"v2": 10000}, "v1", "v2")
	mustSet(t, srv.cache, v90)

	c := dialADS(t, srv.addr, grpcNode)
	c.subscribe(resourcev3.RouteType, snapshot.ServiceRouteConfigName("greeter"))
	first := c.recv()
	c.ack(first, snapshot.ServiceRouteConfigName("greeter"))
	eventually(t, "ACK recorded", func() bool { return routeStatus(srv.tracker).Acked == first.VersionInfo })

	// Publishing identical content sends nothing; the next thing the client
	// sees is the 50/50 change.
	mustSet(t, srv.cache, greeterSnapshot(t, policy.Weights{"v1": 9000, "v2": 1000}, "v1", "v2"))
	mustSet(t, srv.cache, v50)
	second := c.recv()
	if second.VersionInfo == first.VersionInfo {
		t.Fatalf("identical snapshot was pushed again (version %s)", first.VersionInfo)
	}

	// The client rejects 50/50: the rejection is recorded, its last good
	// version stays ACKed, and 50/50 is not sent again.
	c.nack(second, first.VersionInfo, snapshot.ServiceRouteConfigName("greeter"))
	eventually(t, "NACK recorded", func() bool { return routeStatus(srv.tracker).LastNack != nil })
	st := routeStatus(srv.tracker)
	if st.Acked != first.VersionInfo || st.LastNack.Version != second.VersionInfo || st.LastNack.Error != "test rejects this" {
		t.Fatalf("after NACK: acked %q, nack %+v; want acked %q and a NACK of %q", st.Acked, st.LastNack, first.VersionInfo, second.VersionInfo)
	}
	mustSet(t, srv.cache, v0)
	if third := c.recv(); third.VersionInfo == second.VersionInfo {
		t.Fatal("the NACKed version was sent again")
	}
}

func TestReconnectIsAnswered(t *testing.T) {
	srv := startServer(t)
	mustSet(t, srv.cache, greeterSnapshot(t, policy.Weights{"v1": 10000}, "v1"))
	c := dialADS(t, srv.addr, grpcNode)
	c.subscribe(resourcev3.ListenerType, "greeter")
	r := c.recv()
	c.ack(r, "greeter")
	c.cancel()

	// A new stream starts with the version the client holds and no nonce;
	// it must still be answered, or the client would wait forever.
	again := dialADS(t, srv.addr, grpcNode)
	again.send(&discoveryRequest{TypeUrl: resourcev3.ListenerType, VersionInfo: r.VersionInfo, ResourceNames: []string{"greeter"}})
	if got := again.recv(); got.VersionInfo != r.VersionInfo || len(got.Resources) != 1 {
		t.Fatalf("reconnect answered with version %q and %d resources", got.VersionInfo, len(got.Resources))
	}
}

func TestRemovedListenerIsDeleted(t *testing.T) {
	srv := startServer(t)
	mustSet(t, srv.cache, greeterSnapshot(t, policy.Weights{"v1": 10000}, "v1"))
	c := dialADS(t, srv.addr, grpcNode)
	c.subscribe(resourcev3.ListenerType, "greeter")
	c.ack(c.recv(), "greeter")
	mustSet(t, srv.cache, emptySnapshot(t))
	if r := c.recv(); len(r.Resources) != 0 {
		t.Fatalf("after the service left, LDS still carries %v", resourceNames(t, r))
	}
}

// routeStatus returns the RDS status of the only connected proxy.
func routeStatus(tr *Tracker) TypeStatus {
	ps := tr.Proxies()
	if len(ps) != 1 {
		return TypeStatus{}
	}
	return ps[0].Types[resourcev3.RouteType]
}

func TestEarlyWatchReleasedOnDisconnect(t *testing.T) {
	srv := startServer(t)
	c := dialADS(t, srv.addr, grpcNode)
	c.subscribe(resourcev3.ListenerType, "greeter")
	eventually(t, "the request to be held", func() bool { return srv.cache.watches() == 1 })
	c.cancel()
	eventually(t, "the watch to be released", func() bool { return srv.cache.watches() == 0 })
}

func TestNamesAddedLaterAreAnswered(t *testing.T) {
	srv := startServer(t)
	mustSet(t, srv.cache, greeterSnapshot(t, policy.Weights{"v1": 10000}, "v1"))
	c := dialADS(t, srv.addr, grpcNode)
	c.subscribe(resourcev3.ListenerType, "greeter")
	first := c.recv()

	// A second channel on the same client asks for a service weir does not
	// know: the answer must come now, not after the client's 15 s
	// does-not-exist timer.
	c.ack(first, "greeter", "no-such-service")
	if got, want := resourceNames(t, c.recv()), []string{"greeter"}; !slices.Equal(got, want) {
		t.Fatalf("after adding an unknown name LDS = %v, want %v", got, want)
	}
}

func TestPushOrderIsMakeBeforeBreak(t *testing.T) {
	srv := startServer(t)
	mustSet(t, srv.cache, greeterSnapshot(t, policy.Weights{"v1": 10000}, "v1"))
	c := dialADS(t, srv.addr, grpcNode)
	for _, typ := range []string{resourcev3.RouteType, resourcev3.ListenerType, resourcev3.EndpointType, resourcev3.ClusterType} {
		names := map[string][]string{
			resourcev3.RouteType: {snapshot.ServiceRouteConfigName("greeter")}, resourcev3.ListenerType: {"greeter"},
			resourcev3.EndpointType: {"greeter/v1", "greeter/v2"}, resourcev3.ClusterType: {"greeter/v1", "greeter/v2"},
		}[typ]
		c.subscribe(typ, names...)
		c.ack(c.recv(), names...)
	}
	eventually(t, "all four ACKs to be held", func() bool { return srv.cache.watches() == 4 })
	// v2 arrives with a share: every type changes, and the stream must see
	// the cluster before its endpoints, and both before the route naming it.
	mustSet(t, srv.cache, greeterSnapshot(t, policy.Weights{"v1": 5000, "v2": 5000}, "v1", "v2"))
	var order []string
	for range 3 {
		order = append(order, c.recv().TypeUrl)
	}
	want := []string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.RouteType}
	if !slices.Equal(order, want) {
		t.Fatalf("push order = %v, want %v", order, want)
	}
}

func TestDroppedNamesAreAnsweredAndInSync(t *testing.T) {
	srv := startServer(t)
	mustSet(t, srv.cache, greeterSnapshot(t, policy.Weights{"v1": 5000, "v2": 5000}, "v1", "v2"))
	c := dialADS(t, srv.addr, grpcNode)
	c.subscribe(resourcev3.ClusterType, "greeter/v1", "greeter/v2")
	first := c.recv()

	// The client stops using v1 and drops it from its subscription. It is
	// answered with what it now holds, and once it ACKs that, it counts as
	// up to date.
	c.ack(first, "greeter/v2")
	second := c.recv()
	if got := resourceNames(t, second); !slices.Equal(got, []string{"greeter/v2"}) {
		t.Fatalf("after dropping v1: %v, want [greeter/v2]", got)
	}
	c.ack(second, "greeter/v2")
	eventually(t, "the client to count as up to date", func() bool {
		return len(srv.tracker.Pending(resourcev3.ClusterType, srv.cache.VersionFor)) == 0
	})
}

func TestUnchangedResourcesAreNotMarshalledAgain(t *testing.T) {
	services := func(port uint32) discovery.Model {
		m, err := discovery.NewModel([]discovery.Service{
			{Name: "a", Instances: []discovery.Instance{{ID: "a1", Address: "127.0.0.1", Port: 9000, Version: "v1"}}},
			{Name: "b", Instances: []discovery.Instance{{ID: "b1", Address: "127.0.0.1", Port: port, Version: "v1"}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	var b snapshot.Builder
	c := NewCache()
	first, err := b.Build(snapshot.Input{Model: services(9100)})
	if err != nil {
		t.Fatal(err)
	}
	mustSet(t, c, first)
	// 2 clusters, 2 endpoints, 3 route configs (the shared one and one per
	// service), 1 sidecar + 2 API listeners.
	if got := c.Marshalled(); got != 10 {
		t.Fatalf("first snapshot marshalled %d resources, want 10", got)
	}
	second, err := b.Build(snapshot.Input{Model: services(9101)})
	if err != nil {
		t.Fatal(err)
	}
	mustSet(t, c, second)
	// Only b's endpoint moved: its endpoints, its route config and the
	// shared one (whose domains name ports) are new messages. b's cluster
	// and listener and the sidecar listener encode as before, so the
	// builder keeps the very same messages, and a's, its route config
	// included, are untouched: none is marshalled again.
	if got := c.Marshalled() - 10; got != 3 {
		t.Errorf("second snapshot marshalled %d resources, want 3 (b's endpoints, b's routes, the shared routes)", got)
	}
}

// TestPrepareKeepsUnchangedTypeSets: a list the snapshot builder reused
// whole is the same type set, neither marshalled nor indexed again; an
// endpoint moving to another address changes only the endpoints'. (The
// builder patches its lists when at most an eighth of the services
// changed: there are 16.)
func TestPrepareKeepsUnchangedTypeSets(t *testing.T) {
	model := func(address string) discovery.Model {
		services := []discovery.Service{oneInstance("b", address, 9100)}
		for i := range 15 {
			services = append(services, oneInstance(fmt.Sprintf("s%02d", i), "127.0.0.1", uint32(9000+i)))
		}
		m, err := discovery.NewModel(services)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	var b snapshot.Builder
	var memo marshalMemo
	prepareBuilt := func(address string) *prepared {
		t.Helper()
		s, err := b.Build(snapshot.Input{Model: model(address)})
		if err != nil {
			t.Fatal(err)
		}
		p, err := prepare(s, &memo)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	first := prepareBuilt("127.0.0.1")
	second := prepareBuilt("127.0.0.2")
	for _, typ := range []string{resourcev3.ClusterType, resourcev3.RouteType} {
		if first.types[typ] != second.types[typ] {
			t.Errorf("%s: a new type set, though no resource of the type changed", typ)
		}
	}
	if first.lds != second.lds {
		t.Error("listeners: new type sets, though no listener changed")
	}
	before, after := first.types[resourcev3.EndpointType], second.types[resourcev3.EndpointType]
	if before == after {
		t.Fatal("endpoints: the same type set, though b's endpoint moved")
	}
	// Same names in the same places: the new set is the old one patched.
	if reflect.ValueOf(before.index).Pointer() != reflect.ValueOf(after.index).Pointer() {
		t.Error("endpoints: indexed again, though the names did not change")
	}
	for i, e := range after.entries.All() {
		if moved := e.name == "b/v1"; (e == before.entries.At(i)) == moved {
			t.Errorf("endpoints: entry %q kept %v, want kept %v", e.name, e == before.entries.At(i), !moved)
		}
	}
	if after.version == before.version {
		t.Error("endpoints: the version did not change")
	}
}

// TestFailedPrepareLeavesTheMemo: a snapshot that cannot be prepared (a
// route configuration listed twice) changes nothing the memo remembers,
// though its clusters and endpoints were prepared before its routes
// failed.
func TestFailedPrepareLeavesTheMemo(t *testing.T) {
	var memo marshalMemo
	good := snapshotOf(t, oneInstance("a", "127.0.0.1", 9000))
	if _, err := prepare(good, &memo); err != nil {
		t.Fatal(err)
	}
	before := memo.lists
	bad := snapshotOf(t, oneInstance("a", "127.0.0.2", 9001))
	bad.Routes = snapshot.ListOf(append(bad.Routes.Slice(), bad.Routes.At(0))...)
	if _, err := prepare(bad, &memo); err == nil || !strings.Contains(err.Error(), "appears twice") {
		t.Fatalf("prepare of a snapshot listing a route configuration twice: %v, want it refused", err)
	}
	for i := range memo.lists {
		if memo.lists[i].set != before[i].set || memo.lists[i].list != before[i].list {
			t.Errorf("list %d: the failed snapshot's is remembered", i)
		}
	}
	if memo.shared.routes != good.Outbound {
		t.Errorf("the failed snapshot's %s is remembered", snapshot.RouteConfigName)
	}
}

// TestWeightChangeReachesOnlyItsServiceClients: proxyless gRPC clients
// subscribe to their service's route configuration, so a weight change of
// greeter is news to greeter's clients and to Envoy (the shared route
// configuration), but not to a client of another service, and only those
// two route configurations are marshalled again.
func TestWeightChangeReachesOnlyItsServiceClients(t *testing.T) {
	m, err := discovery.NewModel([]discovery.Service{
		{Name: "greeter", Instances: []discovery.Instance{
			{ID: "g1", Address: "127.0.0.1", Port: 9100, Version: "v1"}, {ID: "g2", Address: "127.0.0.1", Port: 9101, Version: "v2"}}},
		{Name: "other", Instances: []discovery.Instance{{ID: "o1", Address: "127.0.0.1", Port: 9200, Version: "v1"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var b snapshot.Builder
	c := NewCache()
	routes := func(ws policy.Weights) (greeter, other, shared string) {
		s, err := b.Build(snapshot.Input{Model: m, Routing: policy.TableOf(map[string]policy.Routing{"greeter": {Weights: ws}})})
		if err != nil {
			t.Fatal(err)
		}
		mustSet(t, c, s)
		return c.VersionFor(resourcev3.RouteType, GRPC, []string{snapshot.ServiceRouteConfigName("greeter")}, false),
			c.VersionFor(resourcev3.RouteType, GRPC, []string{snapshot.ServiceRouteConfigName("other")}, false),
			c.VersionFor(resourcev3.RouteType, Envoy, []string{snapshot.RouteConfigName}, false)
	}
	g0, o0, s0 := routes(policy.Weights{"v1": 9000, "v2": 1000})
	marshalled := c.Marshalled()
	g1, o1, s1 := routes(policy.Weights{"v1": 5000, "v2": 5000})
	if g0 == g1 || s0 == s1 {
		t.Errorf("greeter's clients (%s → %s) or Envoy (%s → %s) would not receive the new weights", g0, g1, s0, s1)
	}
	if o0 != o1 {
		t.Errorf("a client of another service would receive routes again (%s → %s)", o0, o1)
	}
	if got := c.Marshalled() - marshalled; got != 2 {
		t.Errorf("the weight change marshalled %d resources, want 2 (greeter's routes, the shared routes)", got)
	}
}
