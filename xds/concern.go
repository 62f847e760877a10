package xds

import (
	"reflect"

	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weir-mesh/weir/snapshot"
)

// concern tells which open watches a new snapshot may concern. An open
// watch was judged against the previous snapshot and needed no answer; it
// still needs none when nothing it subscribes to changed: for a wildcard,
// nothing of its type for its class; for names, none of those names'
// resources (changed, added or removed). So a weight change re-judges the
// route watches of Envoys and of the changed service's gRPC clients, not
// every stream's.
type concern struct {
	prev, next *prepared
	changed    map[concernKey]map[string]bool // names whose resource differs, by type and class
}

type concernKey struct {
	typeURL string
	class   Class
}

// newConcern compares next with prev; nil prev concerns every watch.
func newConcern(prev, next *prepared) *concern {
	return &concern{prev: prev, next: next, changed: map[concernKey]map[string]bool{}}
}

// orderTypes are the types pushOrder ranks, by rank; the last rank holds
// every other type.
var orderTypes = [pushOrders - 1]string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.ListenerType, resourcev3.RouteType}

// order reports whether watches of the types of push order rank may need
// judging again: whether, for some class, their type changed.
func (c *concern) order(rank int) bool {
	if c.prev == nil || rank >= len(orderTypes) {
		return true
	}
	typeURL := orderTypes[rank]
	for _, class := range []Class{Envoy, GRPC} {
		if c.prev.typeSet(typeURL, class).versionOrNone() != c.next.typeSet(typeURL, class).versionOrNone() {
			return true
		}
	}
	return false
}

// watch reports whether a watch of typeURL from a proxy of class,
// subscribed as sub, must be judged again.
func (c *concern) watch(typeURL string, class Class, sub cachev3.Subscription) bool {
	if c.prev == nil {
		return true
	}
	before, after := c.prev.typeSet(typeURL, class), c.next.typeSet(typeURL, class)
	if before.versionOrNone() == after.versionOrNone() {
		return false
	}
	if sub.IsWildcard() {
		return true
	}
	key := concernKey{typeURL, class}
	changed, ok := c.changed[key]
	if !ok {
		changed = changedNames(before, after)
		c.changed[key] = changed
	}
	return intersect(changed, sub.SubscribedResources())
}

// intersect reports whether a and b share a key, looking up the keys of the
// smaller in the larger: an Envoy subscribes to every cluster's endpoints,
// and a change touches a few.
func intersect(a map[string]bool, b map[string]struct{}) bool {
	if len(a) <= len(b) {
		for name := range a {
			if _, ok := b[name]; ok {
				return true
			}
		}
		return false
	}
	for name := range b {
		if a[name] {
			return true
		}
	}
	return false
}

// changedNames returns the names whose resource differs between two sets
// of one type: changed, added or removed. Sets with the very same index
// have the same names in the same places, and differ where their entries
// do (see snapshot.Changed).
func changedNames(before, after *typeSet) map[string]bool {
	out := map[string]bool{}
	if before != nil && after != nil && sameIndex(before.index, after.index) {
		if changes, ok := snapshot.Changed(after.entries, before.entries); ok {
			for i := range changes {
				out[after.entries.At(i).name] = true
			}
			return out
		}
	}
	for e := range after.all().Values() {
		if old, ok := before.lookup(e.name); !ok || old.hash != e.hash {
			out[e.name] = true
		}
	}
	for e := range before.all().Values() {
		if _, ok := after.lookup(e.name); !ok {
			out[e.name] = true
		}
	}
	return out
}

// sameIndex reports whether a and b are the very same map.
func sameIndex(a, b map[string]int) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}
