package xds

import (
	"maps"
	"slices"
	"strconv"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/snapshot"
)

// snapshotOf builds the snapshot of services.
func snapshotOf(t *testing.T, services ...discovery.Service) *snapshot.Snapshot {
	t.Helper()
	return build(t, new(snapshot.Builder), services)
}

// build returns b's build of services.
func build(t *testing.T, b *snapshot.Builder, services []discovery.Service) *snapshot.Snapshot {
	t.Helper()
	m, err := discovery.NewModel(services)
	if err != nil {
		t.Fatal(err)
	}
	s, err := b.Build(snapshot.Input{Model: m})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// oneInstance is service name with one v1 instance at address:port.
func oneInstance(name, address string, port uint32) discovery.Service {
	return discovery.Service{Name: name, Instances: []discovery.Instance{
		{ID: name + "1", Address: address, Port: port, Version: "v1"}}}
}

// twoServices is a snapshot of services a and b, one instance each, b's on
// port bPort.
func twoServices(t *testing.T, bPort uint32) *snapshot.Snapshot {
	t.Helper()
	return snapshotOf(t, oneInstance("a", "127.0.0.1", 9000), oneInstance("b", "127.0.0.1", bPort))
}

// TestEndpointResponsesCarryOnlyChanges checks that, once a client has
// ACKed, an EDS response carries only the endpoints that changed (what the
// client lacks keeps its full version), while the first response and the
// one after a NACK carry everything.
func TestEndpointResponsesCarryOnlyChanges(t *testing.T) {
	srv := startServer(t)
	mustSet(t, srv.cache, twoServices(t, 9100))
	c := dialADS(t, srv.addr, envoyNode)
	both := []string{"a/v1", "b/v1"}
	c.subscribe(resourcev3.EndpointType, both...)
	first := c.recv()
	if got := resourceNames(t, first); !slices.Equal(got, both) {
		t.Fatalf("first EDS response: %v, want %v", got, both)
	}
	c.ack(first, both...)

	mustSet(t, srv.cache, twoServices(t, 9101))
	second := c.recv()
	if got := resourceNames(t, second); !slices.Equal(got, []string{"b/v1"}) {
		t.Errorf("after b moved: %v, want only b/v1", got)
	}
	if want := srv.cache.VersionFor(resourcev3.EndpointType, Envoy, both, false); second.VersionInfo != want {
		t.Errorf("partial response version %s, want the whole selection's %s", second.VersionInfo, want)
	}

	// A client that rejected the last response may hold neither; the next
	// response carries everything.
	c.nack(second, first.VersionInfo, both...)
	mustSet(t, srv.cache, twoServices(t, 9102))
	if got := resourceNames(t, c.recv()); !slices.Equal(got, both) {
		t.Errorf("after a NACK: %v, want %v", got, both)
	}
}

// TestRequestAfterANackGetsEverything checks that a client which rejected
// the last response, and then asks again without an error (here: for one
// more name), is sent everything it asks for: it still holds what it last
// accepted, not what it was last sent, so leaving out what did not change
// since the rejected response would leave it with old endpoints.
func TestRequestAfterANackGetsEverything(t *testing.T) {
	srv := startServer(t)
	mustSet(t, srv.cache, snapshotOf(t, oneInstance("a", "127.0.0.1", 9000), oneInstance("b", "127.0.0.1", 9100)))
	c := dialADS(t, srv.addr, envoyNode)
	both := []string{"a/v1", "b/v1"}
	c.subscribe(resourcev3.EndpointType, both...)
	first := c.recv()
	c.ack(first, both...)

	mustSet(t, srv.cache, snapshotOf(t, oneInstance("a", "127.0.0.1", 9001), oneInstance("b", "127.0.0.1", 9101)))
	rejected := c.recv()
	c.nack(rejected, first.VersionInfo, both...)
	// Envoy's next request reports the version it last accepted and no
	// error: here it adds a cluster that does not exist (yet).
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.EndpointType, VersionInfo: first.VersionInfo,
		ResponseNonce: rejected.Nonce, ResourceNames: append(both, "c/v1")})
	if got := resourceNames(t, c.recv()); !slices.Equal(got, both) {
		t.Errorf("after a NACK and a new name: %v, want %v", got, both)
	}
}

func TestChangedNames(t *testing.T) {
	set := func(kv ...string) *typeSet {
		ts := &typeSet{index: map[string]int{}}
		var entries []entry
		for i := 0; i < len(kv); i += 2 {
			ts.index[kv[i]] = len(entries)
			entries = append(entries, newEntry(kv[i], kv[i+1], nil))
		}
		ts.entries = snapshot.ListOf(entries...)
		return ts
	}
	got := changedNames(set("a", "1", "b", "1", "c", "1"), set("a", "1", "b", "2", "d", "1"))
	want := map[string]bool{"b": true, "c": true, "d": true}
	if !maps.Equal(got, want) {
		t.Errorf("changed %v, want %v (b changed, c removed, d added)", got, want)
	}
	if got := changedNames(nil, set("a", "1")); !got["a"] || len(got) != 1 {
		t.Errorf("from nothing: %v, want a", got)
	}
	// A set patched from another (see patchedList) shares its index, and
	// only its changed entries are looked at.
	before := set("a", "1", "b", "1", "c", "1")
	after := &typeSet{index: before.index, entries: before.entries.Set(1, newEntry("b", "2", nil))}
	if got := changedNames(before, after); len(got) != 1 || !got["b"] {
		t.Errorf("patched: changed %v, want b", got)
	}
}

// TestConcernSkipsUnchangedTypes checks that an endpoint change concerns
// endpoint watches only: SetSnapshot visits no cluster, listener or route
// watch for it. (A new port would change routes too: domains name ports.)
func TestConcernSkipsUnchangedTypes(t *testing.T) {
	var memo marshalMemo
	prepareAt := func(address string) *prepared {
		p, err := prepare(snapshotOf(t, oneInstance("a", address, 9000)), &memo)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	before, after := prepareAt("127.0.0.1"), prepareAt("127.0.0.2")
	c := newConcern(before, after)
	for rank, typeURL := range orderTypes {
		if got, want := c.order(rank), typeURL == resourcev3.EndpointType; got != want {
			t.Errorf("order %d (%s) concerned: %v, want %v", rank, typeURL, got, want)
		}
	}
	if !c.order(len(orderTypes)) {
		t.Error("other types are not judged by rank; their rank must be concerned")
	}
	if !newConcern(nil, after).order(0) {
		t.Error("the first snapshot concerns every watch")
	}
}

func TestIntersect(t *testing.T) {
	small := map[string]bool{"b/v1": true}
	large := map[string]struct{}{"a/v1": {}, "b/v1": {}, "c/v1": {}}
	if !intersect(small, large) {
		t.Error("small ∩ large: want shared b/v1")
	}
	if intersect(map[string]bool{"a": true, "b": true, "c": true, "d": true}, map[string]struct{}{"e": {}}) {
		t.Error("disjoint sets intersect")
	}
}

// TestFullSelectionIsKeptCompact checks what a stream keeps of what it was
// sent: one name for every entry of a type (a wildcard, or naming them
// all), name by name otherwise, absent names included; and that a kept
// full selection tells each resource's content for as long as the cache
// remembers its version.
func TestFullSelectionIsKeptCompact(t *testing.T) {
	var memo marshalMemo
	p, err := prepare(twoServices(t, 9100), &memo)
	if err != nil {
		t.Fatal(err)
	}
	ts := p.typeSet(resourcev3.EndpointType, Envoy)
	kept := func(sub fetchSubscription) map[string]string {
		selected := selectEntries(ts, sub, nil)
		return returnedBy(ts, selected, sub, versionOf(ts, selected, sub.wildcard))
	}
	full := map[string]string{"a/v1": fullSelection + ts.version}
	if got := kept(fetchSubscription{wildcard: true}); !maps.Equal(got, full) {
		t.Errorf("wildcard: kept %v, want %v", got, full)
	}
	if got := kept(fetchSubscription{names: []string{"b/v1", "a/v1"}}); !maps.Equal(got, full) {
		t.Errorf("every name: kept %v, want %v", got, full)
	}
	a, _ := ts.lookup("a/v1")
	b, _ := ts.lookup("b/v1")
	if got, want := kept(fetchSubscription{names: []string{"a/v1"}}), map[string]string{"a/v1": a.hash}; !maps.Equal(got, want) {
		t.Errorf("one name: kept %v, want %v", got, want)
	}
	want := map[string]string{"a/v1": a.hash, "b/v1": b.hash, "c/v1": absent}
	if got := kept(fetchSubscription{names: []string{"a/v1", "b/v1", "c/v1"}}); !maps.Equal(got, want) {
		t.Errorf("every name and a missing one: kept %v, want %v", got, want)
	}

	holds := p.heldHash(full)
	if holds("a/v1") != a.hash || holds("b/v1") != b.hash {
		t.Errorf("full selection holds a/v1 %q and b/v1 %q, want %q and %q", holds("a/v1"), holds("b/v1"), a.hash, b.hash)
	}
	for port := range uint32(rememberedSnapshots) {
		if p, err = prepare(twoServices(t, 9101+port), &memo); err != nil {
			t.Fatal(err)
		}
	}
	if got := p.heldHash(full)("a/v1"); got != "" {
		t.Errorf("a full selection %d snapshots old holds a/v1 %q, want \"\" (forgotten: send it all)", rememberedSnapshots, got)
	}
}

// preparedServices prepares, with memo, a snapshot of the named services,
// one instance each.
func preparedServices(t *testing.T, memo *marshalMemo, names ...string) *prepared {
	t.Helper()
	services := make([]discovery.Service, len(names))
	for i, n := range names {
		services[i] = oneInstance(n, "127.0.0.1", uint32(9000+i))
	}
	p, err := prepare(snapshotOf(t, services...), memo)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// endpointStream drives sotwResponse as go-control-plane's ADS loop does
// for one Envoy's endpoint subscription.
type endpointStream struct {
	t     *testing.T
	sub   stream.Subscription
	nonce int
}

// request sets the subscription to names, as a request does, and returns
// the response p gives it (nil: none), recording what it sent.
func (s *endpointStream) request(p *prepared, names []string, version string) *discoveryv3.DiscoveryResponse {
	s.t.Helper()
	req := &discoveryv3.DiscoveryRequest{Node: envoyNode, TypeUrl: resourcev3.EndpointType, ResourceNames: names, VersionInfo: version}
	if s.nonce > 0 {
		req.ResponseNonce = strconv.Itoa(s.nonce)
	}
	s.sub.SetResourceSubscription(names)
	r := sotwResponse(p, req, &s.sub, nil)
	if r == nil {
		return nil
	}
	s.sub.SetReturnedResources(r.GetReturnedResources())
	s.nonce++
	d, err := r.GetDiscoveryResponse()
	if err != nil {
		s.t.Fatal(err)
	}
	return d
}

// TestFullSelectionKeptEitherWayIsTheSameContent checks that what a stream
// holds is compared by content, not by the form it is kept in: an Envoy
// that drops a removed cluster's name, or whose ACK crosses a new cluster,
// is not answered again with what it holds.
func TestFullSelectionKeptEitherWayIsTheSameContent(t *testing.T) {
	both := []string{"a/v1", "b/v1"}
	t.Run("removed cluster dropped", func(t *testing.T) {
		var memo marshalMemo
		p1 := preparedServices(t, &memo, "a", "b")
		s := &endpointStream{t: t, sub: stream.NewSotwSubscription(both, false)}
		first := s.request(p1, both, "")
		if r := s.request(p1, both, first.VersionInfo); r != nil {
			t.Fatal("an ACK was answered")
		}
		p2 := preparedServices(t, &memo, "a")
		removal := s.request(p2, both, first.VersionInfo)
		if removal == nil {
			t.Fatal("the removal of b was not answered")
		}
		if r := s.request(p2, []string{"a/v1"}, removal.VersionInfo); r != nil {
			t.Errorf("dropping the removed name was answered again (version %s, %d resources)", r.VersionInfo, len(r.Resources))
		}
	})
	t.Run("cluster added while an ACK is in flight", func(t *testing.T) {
		var memo marshalMemo
		p1 := preparedServices(t, &memo, "a", "b")
		s := &endpointStream{t: t, sub: stream.NewSotwSubscription(both, false)}
		first := s.request(p1, both, "")
		p2 := preparedServices(t, &memo, "a", "b", "c")
		if r := s.request(p2, both, first.VersionInfo); r != nil {
			t.Errorf("the ACK of unchanged a and b was answered after c landed (version %s, %d resources)", r.VersionInfo, len(r.Resources))
		}
	})
}
