package xds

import (
	"bytes"
	"slices"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/envoy"
	"github.com/weir-mesh/weir/snapshot"
)

// TestSharedEntryIsTheWholeEncoding builds RouteConfigName through changes
// of one service's port (which changes its virtual host's domains), none,
// a service that comes, and one that goes as another comes, and checks
// that its entry holds the very bytes of the route configuration
// marshalled whole, with its content hash, and that the virtual hosts that
// did not change were not encoded again.
func TestSharedEntryIsTheWholeEncoding(t *testing.T) {
	a, c, d := oneInstance("a", "127.0.0.1", 9000), oneInstance("c", "127.0.0.1", 9200), oneInstance("d", "127.0.0.1", 9300)
	steps := []struct {
		services []discovery.Service
		encoded  []string // the virtual hosts to encode anew
	}{
		{[]discovery.Service{a, oneInstance("b", "127.0.0.1", 9100), c}, []string{"a", "b", "c"}},
		{[]discovery.Service{a, oneInstance("b", "127.0.0.1", 9101), c}, []string{"b"}},
		{[]discovery.Service{a, oneInstance("b", "127.0.0.1", 9101), c}, nil},
		{[]discovery.Service{a, oneInstance("b", "127.0.0.1", 9101), c, d}, []string{"d"}},
		{[]discovery.Service{a, c, d, oneInstance("e", "127.0.0.1", 9400)}, []string{"e"}},
	}
	var b snapshot.Builder
	var memo sharedMemo
	var marshalled atomic.Uint64
	for step, st := range steps {
		s := build(t, &b, st.services)
		before := marshalled.Load()
		e, next, err := sharedEntry(s.Outbound, memo, &marshalled)
		if err != nil {
			t.Fatal(err)
		}
		whole, err := envoy.AppendDeterministic(nil, s.Outbound.Message())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(e.any.GetValue(), whole) {
			t.Errorf("step %d: the entry's bytes differ from the route configuration marshalled whole", step)
		}
		if e.name != snapshot.RouteConfigName || e.hash != s.Outbound.ContentHash() {
			t.Errorf("step %d: entry %q hash %s, want %q hash %s", step, e.name, e.hash, snapshot.RouteConfigName, s.Outbound.ContentHash())
		}
		unchanged := len(st.encoded) == 0
		if unchanged != (s.Outbound == memo.routes) {
			t.Fatalf("step %d: the same route configuration as before %v, want %v", step, !unchanged, unchanged)
		}
		want := uint64(1)
		if unchanged {
			want = 0
		}
		if got := marshalled.Load() - before; got != want {
			t.Errorf("step %d: %d marshalled, want %d", step, got, want)
		}
		if got := encodedAnew(next, memo); !slices.Equal(got, st.encoded) {
			t.Errorf("step %d: virtual hosts encoded anew %q, want %q", step, got, st.encoded)
		}
		memo = next
	}
}

// encodedAnew returns the names of the virtual hosts of next whose
// encodings are not the very ones last held.
func encodedAnew(next, last sharedMemo) []string {
	held := map[*byte]bool{}
	for b := range last.encodings.Values() {
		held[unsafe.SliceData(b)] = true
	}
	var out []string
	for i, vh := range next.routes.Hosts().All() {
		if !held[unsafe.SliceData(next.encodings.At(i))] {
			out = append(out, vh.GetName())
		}
	}
	return out
}
