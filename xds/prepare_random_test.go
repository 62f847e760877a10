package xds

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/snapshot"
)

// TestPrepareAgreesWithAFreshPrepare prepares the snapshots of a world
// whose services come, go and change ports, with a memo that follows
// them, and checks every type set against one prepared without a memo.
// Between builds RouteConfigName (the head of the route type set) is at
// random taken away, swapped for the last snapshot's, or made apart with
// the same content, and a prepare that fails must leave the memo as it
// was.
func TestPrepareAgreesWithAFreshPrepare(t *testing.T) {
	names := []string{"a", "b", "c", "d"}
	for seed := range uint64(3) {
		rng := rand.New(rand.NewPCG(seed, 5))
		ports := map[string]uint32{"a": 9000, "b": 9100, "c": 9200, "d": 9300}
		present := map[string]bool{"a": true, "b": true, "c": true}
		var b snapshot.Builder
		var memo marshalMemo
		var last *snapshot.Snapshot
		for step := range 100 {
			where := fmt.Sprintf("seed %d step %d", seed, step)
			svc := names[rng.IntN(len(names))]
			if rng.IntN(2) == 0 {
				ports[svc]++
			} else {
				present[svc] = !present[svc]
			}
			var services []discovery.Service
			for _, n := range names {
				if present[n] {
					services = append(services, oneInstance(n, "127.0.0.1", ports[n]))
				}
			}
			s := build(t, &b, services)
			switch rng.IntN(5) {
			case 0:
				s = withOutbound(s, nil)
			case 1:
				if last != nil {
					s = withOutbound(s, last.Outbound)
				}
			case 2:
				shared, err := snapshot.SharedRoutesOf(s.Outbound.Message())
				if err != nil {
					t.Fatal(err)
				}
				s = withOutbound(s, shared)
			case 3:
				failedPrepareKeepsMemo(t, where, s, &memo)
			}
			agreesWithFresh(t, where, s, &memo)
			last = s
		}
	}
}

// withOutbound returns a copy of s with shared as its RouteConfigName.
func withOutbound(s *snapshot.Snapshot, shared *snapshot.SharedRoutes) *snapshot.Snapshot {
	c := *s
	c.Outbound = shared
	return &c
}

// failedPrepareKeepsMemo prepares s with a service's route configuration
// listed twice, which must fail and leave memo as it was.
func failedPrepareKeepsMemo(t *testing.T, where string, s *snapshot.Snapshot, memo *marshalMemo) {
	t.Helper()
	if s.Routes.Len() == 0 {
		return
	}
	bad := *s
	bad.Routes = snapshot.ListOf(append(bad.Routes.Slice(), bad.Routes.At(0))...)
	lists, shared := memo.lists, memo.shared
	if _, err := prepare(&bad, memo); err == nil {
		t.Fatalf("%s: a route configuration listed twice was prepared", where)
	}
	if memo.lists != lists || memo.shared.routes != shared.routes || !memo.shared.encodings.Same(shared.encodings) {
		t.Fatalf("%s: a failed prepare changed the memo", where)
	}
}

// agreesWithFresh prepares s with memo, and fails unless every type set
// agrees with that of s prepared without one, and RouteConfigName decodes
// to s's.
func agreesWithFresh(t *testing.T, where string, s *snapshot.Snapshot, memo *marshalMemo) {
	t.Helper()
	got, err := prepare(s, memo)
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	want, err := prepare(s, &marshalMemo{})
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	for typ, ts := range want.types {
		sameTypeSet(t, where+" "+typ, got.types[typ], ts)
	}
	e, ok := got.types[resourcev3.RouteType].lookup(snapshot.RouteConfigName)
	if ok != (s.Outbound != nil) {
		t.Fatalf("%s: %s served %v, want %v", where, snapshot.RouteConfigName, ok, s.Outbound != nil)
	}
	if !ok {
		return
	}
	var rc routev3.RouteConfiguration
	if err := proto.Unmarshal(e.any.GetValue(), &rc); err != nil || !proto.Equal(&rc, s.Outbound.Message()) {
		t.Errorf("%s: %s does not decode to the snapshot's (%v)", where, snapshot.RouteConfigName, err)
	}
}

// sameTypeSet fails unless got and want have one version and index, and
// entries alike in name, hash, bytes and digest.
func sameTypeSet(t *testing.T, where string, got, want *typeSet) {
	t.Helper()
	if got.version != want.version || !maps.Equal(got.index, want.index) || got.entries.Len() != want.entries.Len() {
		t.Fatalf("%s: version %s, index %v; fresh: %s, %v", where, got.version, got.index, want.version, want.index)
	}
	for i, w := range want.entries.All() {
		g := got.entries.At(i)
		if g.name != w.name || g.hash != w.hash || g.digest != w.digest || !bytes.Equal(g.any.GetValue(), w.any.GetValue()) {
			t.Errorf("%s: entry %d is %q (hash %s), fresh %q (hash %s)", where, i, g.name, g.hash, w.name, w.hash)
		}
	}
}
