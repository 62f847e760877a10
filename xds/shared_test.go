package xds

import (
	"bytes"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/envoy"
	"github.com/weir-mesh/weir/snapshot"
)

// TestSharedEntryIsTheWholeEncoding builds RouteConfigName through changes
// of one service's port (which changes its virtual host's domains) and
// checks that its entry holds the very bytes of the route configuration
// marshalled whole, with its content hash, and that the virtual hosts that
// did not change were not encoded again.
func TestSharedEntryIsTheWholeEncoding(t *testing.T) {
	var b snapshot.Builder
	var memo sharedMemo
	var marshalled atomic.Uint64
	for step, port := range []uint32{9100, 9101, 9101, 9102} {
		m, err := discovery.NewModel([]discovery.Service{
			oneInstance("a", "127.0.0.1", 9000), oneInstance("b", "127.0.0.1", port), oneInstance("c", "127.0.0.1", 9200)})
		if err != nil {
			t.Fatal(err)
		}
		s, err := b.Build(snapshot.Input{Model: m})
		if err != nil {
			t.Fatal(err)
		}
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
		unchanged := step == 2 // b's port as before
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
		for i, name := range []string{"a", "b", "c"} {
			if step == 0 {
				break
			}
			reused := unsafe.SliceData(next.encodings.At(i)) == unsafe.SliceData(memo.encodings.At(i))
			if want := name != "b" || unchanged; reused != want {
				t.Errorf("step %d: virtual host %q's encoding reused %v, want %v", step, name, reused, want)
			}
		}
		memo = next
	}
}
