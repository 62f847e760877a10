package xds

import (
	"slices"
	"strings"

	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"

	"github.com/weir-mesh/weir/snapshot"
)

// What a subscription selects of a type set.

// selectEntries returns, sorted by name, the entries a subscription covers.
// named, unless nil, remembers a type set the subscription names whole.
func selectEntries(ts *typeSet, sub cachev3.Subscription, named *namedWhole) snapshot.List[entry] {
	if sub.IsWildcard() || named.covers(ts) {
		return ts.entries
	}
	names := sub.SubscribedResources()
	if len(names) == ts.entries.Len() && namesAll(names, ts.entries) {
		named.remember(ts)
		return ts.entries // an Envoy's endpoints: every cluster's
	}
	if len(names) >= ts.entries.Len()/4 {
		// Most of the type: filtering the sorted entries is cheaper than
		// sorting what was found.
		out := make([]entry, 0, min(len(names), ts.entries.Len()))
		for e := range ts.entries.Values() {
			if _, ok := names[e.name]; ok {
				out = append(out, e)
			}
		}
		return snapshot.ListOf(out...)
	}
	out := make([]entry, 0, len(names))
	for name := range names {
		if e, ok := ts.lookup(name); ok {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	return snapshot.ListOf(out...)
}

// namedWhole is one watch's memory of the names index of a type set every
// one of whose names its subscription names, as an Envoy names every
// cluster's endpoints. A watch's subscription does not change while the
// watch lives (a new request gets a new watch), so a later type set with
// the very same index — one whose names did not change (see patchedList) —
// is named whole too, without looking its names up one by one: as many
// lookups as the catalog has clusters, per stream and change. Its zero
// value remembers nothing; a nil one is never asked and remembers nothing.
type namedWhole struct {
	index map[string]int
}

func (n *namedWhole) covers(ts *typeSet) bool {
	return n != nil && n.index != nil && sameIndex(n.index, ts.index)
}

func (n *namedWhole) remember(ts *typeSet) {
	if n != nil {
		n.index = ts.index
	}
}

// namesAll reports whether names holds the name of every one of entries.
func namesAll(names map[string]struct{}, entries snapshot.List[entry]) bool {
	for e := range entries.Values() {
		if _, ok := names[e.name]; !ok {
			return false
		}
	}
	return true
}

// selectNamed returns, sorted by name, the entries of ts that names (in any
// order, perhaps repeated) asks for.
func selectNamed(ts *typeSet, names []string) snapshot.List[entry] {
	if !slices.IsSorted(names) {
		names = slices.Sorted(slices.Values(names))
	}
	out := make([]entry, 0, len(names))
	for i, name := range names {
		if i > 0 && names[i-1] == name {
			continue
		}
		if e, ok := ts.lookup(name); ok {
			out = append(out, e)
		}
	}
	return snapshot.ListOf(out...)
}
