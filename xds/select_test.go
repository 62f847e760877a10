package xds

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/snapshot"
)

// lineage prepares snapshots built one after another by one Builder, as
// the publisher does, so that each shares with the last what did not
// change.
type lineage struct {
	t    *testing.T
	b    snapshot.Builder
	memo marshalMemo
}

// endpoints returns the Envoy endpoint type set of a snapshot of services.
func (l *lineage) endpoints(services ...discovery.Service) (*prepared, *typeSet) {
	l.t.Helper()
	m, err := discovery.NewModel(services)
	if err != nil {
		l.t.Fatal(err)
	}
	s, err := l.b.Build(snapshot.Input{Model: m})
	if err != nil {
		l.t.Fatal(err)
	}
	p, err := prepare(s, &l.memo)
	if err != nil {
		l.t.Fatal(err)
	}
	return p, p.typeSet(resourcev3.EndpointType, Envoy)
}

// countedSubscription counts the calls of SubscribedResources.
type countedSubscription struct {
	fetchSubscription
	calls int
}

func (c *countedSubscription) SubscribedResources() map[string]struct{} {
	c.calls++
	return c.fetchSubscription.SubscribedResources()
}

// TestWholeSelectionIsRememberedWhileNamesStay: a watch that named every
// entry of a type set does not look its names up again in a later type set
// with the same names, and does once the names change.
func TestWholeSelectionIsRememberedWhileNamesStay(t *testing.T) {
	l := &lineage{t: t}
	_, ts1 := l.endpoints(oneInstance("a", "127.0.0.1", 9000), oneInstance("b", "127.0.0.1", 9100))
	sub := &countedSubscription{fetchSubscription: fetchSubscription{names: []string{"a/v1", "b/v1"}}}
	var named namedWhole
	if got := selectEntries(ts1, sub, &named); !got.Same(ts1.entries) {
		t.Fatalf("naming every entry selected %d of %d", got.Len(), ts1.entries.Len())
	}

	_, ts2 := l.endpoints(oneInstance("a", "127.0.0.1", 9000), oneInstance("b", "127.0.0.1", 9101))
	if ts2.entries.Same(ts1.entries) {
		t.Fatal("moving an endpoint left the endpoint entries as they were")
	}
	looked := sub.calls
	if got := selectEntries(ts2, sub, &named); !got.Same(ts2.entries) {
		t.Errorf("after an endpoint moved: selected %d of %d", got.Len(), ts2.entries.Len())
	}
	if sub.calls != looked {
		t.Error("the names were looked up again although they stayed")
	}

	_, ts3 := l.endpoints(oneInstance("a", "127.0.0.1", 9000), oneInstance("b", "127.0.0.1", 9101), oneInstance("c", "127.0.0.1", 9200))
	var got []string
	for e := range selectEntries(ts3, sub, &named).Values() {
		got = append(got, e.name)
	}
	if want := []string{"a/v1", "b/v1"}; !slices.Equal(got, want) {
		t.Errorf("after c came: selected %v, want %v", got, want)
	}
}

// TestChangedAnysOfAWholeSelection: what a client holding a whole
// selection is sent is exactly the entries whose content changed since,
// as comparing every entry finds them, whichever services change.
func TestChangedAnysOfAWholeSelection(t *testing.T) {
	l := &lineage{t: t}
	services := make([]discovery.Service, 100)
	for i := range services {
		services[i] = oneInstance(fmt.Sprintf("svc-%03d", i), "127.0.0.1", uint32(9000+i))
	}
	_, ts := l.endpoints(services...)
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		held := map[string]string{ts.entries.At(0).name: fullSelection + ts.version}
		services = slices.Clone(services)
		for range r.IntN(4) {
			i := r.IntN(len(services))
			services[i] = oneInstance(services[i].Name, "127.0.0.1", uint32(20000+round*100+i))
		}
		p, next := l.endpoints(services...)
		ts = next
		var want []*anypb.Any
		holds := p.heldHash(held)
		for e := range ts.entries.Values() {
			if holds(e.name) != e.hash {
				want = append(want, e.any)
			}
		}
		if got := p.changedAnys(ts.entries, held); !slices.Equal(got, want) {
			t.Fatalf("round %d: sent %d resources, want the %d that changed", round, len(got), len(want))
		}
	}
}
