package xds

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
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

// watch reports whether a watch of typeURL from node, subscribed as sub,
// must be judged again.
func (c *concern) watch(typeURL string, node *corev3.Node, sub cachev3.Subscription) bool {
	if c.prev == nil {
		return true
	}
	class := ClassOf(node)
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
	for name := range sub.SubscribedResources() {
		if changed[name] {
			return true
		}
	}
	return false
}

// changedNames returns the names whose resource differs between two sets
// of one type: changed, added or removed.
func changedNames(before, after *typeSet) map[string]bool {
	out := map[string]bool{}
	for _, e := range after.all() {
		if old, ok := before.lookup(e.name); !ok || old.hash != e.hash {
			out[e.name] = true
		}
	}
	for _, e := range before.all() {
		if _, ok := after.lookup(e.name); !ok {
			out[e.name] = true
		}
	}
	return out
}
