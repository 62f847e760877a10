package snapshot

import (
	"cmp"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// lists are what a build's services add to a snapshot, in the order the
// snapshot lists them, with the sums of their digests: clusters and
// assignments sorted by name, API listeners and route configurations in
// service order, which is their names' order too (a service's listener is
// named after it, its route configuration after RouteConfigName and it).
// With them go the virtual hosts RouteConfigName holds, in service order,
// and the sum of their digests. A snapshot shares its lists' slices: they are never changed once
// made.
type lists struct {
	clusters  []*clusterv3.Cluster
	endpoints []*endpointv3.ClusterLoadAssignment
	listeners []*listenerv3.Listener
	routes    []*routev3.RouteConfiguration
	// sums add up the digests of the above; snapshot adds the sidecar
	// listener's and RouteConfigName's.
	sums     typeSums
	vhosts   []*routev3.VirtualHost
	vhostSum digestSum // of vhosts
	// served are the lists of the last snapshot made of these: their
	// slices serve again while nothing in them changes.
	served struct {
		routes   []*routev3.RouteConfiguration
		sidecars []*listenerv3.Listener
	}
}

// lists returns the lists of built, the services of a build in name order,
// which differ from the last build's by ch: the last build's lists with
// the rebuilt services' resources put in place of their old ones when
// that is possible (see patchable), else gathered and sorted anew.
func (b *Builder) lists(built []*builtService, ch serviceChanges) *lists {
	if b.patchable(built, ch) {
		if l, ok := b.last.patched(built, ch); ok {
			return l
		}
	}
	return gathered(built)
}

// patchable reports whether the last build's lists can be patched with
// the rebuilt services' resources: no service came or went, and each
// rebuilt one names its clusters and assignments as before, which leaves
// every resource where it was in the sorted lists. An endpoint or weight
// change is such a change; a new or gone version is not, nor is
// stickiness turned on or off (which adds or removes the service's
// combined cluster). More than len(built)/8 rebuilt services are gathered
// and sorted anew, which then costs less than looking each resource up.
func (b *Builder) patchable(built []*builtService, ch serviceChanges) bool {
	if b.last == nil || !ch.sameSet || len(ch.rebuilt) > len(built)/8 {
		return false
	}
	for k, i := range ch.rebuilt {
		bs, prev := built[i], ch.gone[k] // with no service gone, gone holds the rebuilt ones' last builds, in order
		if !sameNames(bs.clusters, prev.clusters, (*clusterv3.Cluster).GetName) ||
			!sameNames(bs.endpoints, prev.endpoints, (*endpointv3.ClusterLoadAssignment).GetClusterName) {
			return false
		}
	}
	return true
}

func sameNames[M resource](a, b []hashed[M], name func(M) string) bool {
	return slices.EqualFunc(a, b, func(x, y hashed[M]) bool { return name(x.msg) == name(y.msg) })
}

// patched returns a copy of l with the resources of ch's rebuilt
// services of built in place of their old ones, or l itself if none was
// rebuilt; the sums lose the old resources' digests and gain the new ones'.
// A list in which no message changes is l's very slice, which tells an xDS
// cache that nothing of its type changed. It reports false should a
// resource not be found where patchable promised, and then the lists are
// to be gathered anew.
func (l *lists) patched(built []*builtService, ch serviceChanges) (*lists, bool) {
	if len(ch.rebuilt) == 0 {
		return l, true
	}
	clusters, endpoints := cow[*clusterv3.Cluster]{list: l.clusters}, cow[*endpointv3.ClusterLoadAssignment]{list: l.endpoints}
	listeners, routes := cow[*listenerv3.Listener]{list: l.listeners}, cow[*routev3.RouteConfiguration]{list: l.routes}
	vhosts := cow[*routev3.VirtualHost]{list: l.vhosts}
	sums, vhostSum := l.sums, l.vhostSum
	for k, i := range ch.rebuilt {
		bs, prev := built[i], ch.gone[k] // as in patchable
		listeners.set(i, bs.listener.msg)
		sums.listeners.swap(&prev.listener.sum, &bs.listener.sum)
		routes.set(i, bs.routes.msg)
		sums.routes.swap(&prev.routes.sum, &bs.routes.sum)
		vhosts.set(i, bs.vhost)
		vhostSum.swap(&prev.vhostSum, &bs.vhostSum)
		if !patch(&clusters, &sums.clusters, bs.clusters, prev.clusters, (*clusterv3.Cluster).GetName) ||
			!patch(&endpoints, &sums.endpoints, bs.endpoints, prev.endpoints, (*endpointv3.ClusterLoadAssignment).GetClusterName) {
			return nil, false
		}
	}
	return &lists{
		clusters: clusters.list, endpoints: endpoints.list, listeners: listeners.list, routes: routes.list,
		sums: sums, vhosts: vhosts.list, vhostSum: vhostSum,
	}, true
}

// cow is a list shared with earlier lists until it first changes, when it
// is copied.
type cow[M comparable] struct {
	list   []M
	copied bool
}

// set puts m at index i.
func (c *cow[M]) set(i int, m M) {
	if c.list[i] == m {
		return
	}
	if !c.copied {
		c.list, c.copied = slices.Clone(c.list), true
	}
	c.list[i] = m
}

// patch puts each of rebuilt in place of the one of sorted with its name,
// and swaps its digest for that of old, the same-named resources it
// replaces, in sum. It reports false if one is not found.
func patch[M interface {
	resource
	comparable
}](sorted *cow[M], sum *digestSum, rebuilt, old []hashed[M], name func(M) string) bool {
	for j, r := range rebuilt {
		at, found := indexByName(sorted.list, name(r.msg), name)
		if !found {
			return false
		}
		sorted.set(at, r.msg)
		sum.swap(&old[j].sum, &r.sum)
	}
	return true
}

// indexByName returns the index of the one of sorted named name, and
// whether there is one.
func indexByName[M any](sorted []M, name string, nameOf func(M) string) (int, bool) {
	return slices.BinarySearchFunc(sorted, name, func(m M, n string) int { return cmp.Compare(nameOf(m), n) })
}

// gathered returns the lists of built.
func gathered(built []*builtService) *lists {
	n := len(built)
	l := &lists{
		listeners: make([]*listenerv3.Listener, n),
		routes:    make([]*routev3.RouteConfiguration, n),
		vhosts:    make([]*routev3.VirtualHost, n),
	}
	clusters := make([]hashed[*clusterv3.Cluster], 0, 2*n)
	endpoints := make([]hashed[*endpointv3.ClusterLoadAssignment], 0, 2*n)
	for i, bs := range built {
		clusters = append(clusters, bs.clusters...)
		endpoints = append(endpoints, bs.endpoints...)
		l.listeners[i] = bs.listener.msg
		l.sums.listeners.add(&bs.listener.sum)
		l.routes[i] = bs.routes.msg
		l.sums.routes.add(&bs.routes.sum)
		l.vhosts[i] = bs.vhost
		l.vhostSum.add(&bs.vhostSum)
	}
	l.clusters, l.sums.clusters = sortedByName(clusters, (*clusterv3.Cluster).GetName)
	l.endpoints, l.sums.endpoints = sortedByName(endpoints, (*endpointv3.ClusterLoadAssignment).GetClusterName)
	return l
}

// sortedByName sorts items by name and returns their messages and the sum
// of their digests. Services come sorted, but ClusterName's "/" separator
// does not sort like the service name alone ("a/v1" > "a-b/v1" although
// "a" < "a-b").
func sortedByName[M resource](items []hashed[M], name func(M) string) ([]M, digestSum) {
	slices.SortFunc(items, func(a, b hashed[M]) int { return cmp.Compare(name(a.msg), name(b.msg)) })
	msgs := make([]M, len(items))
	var sum digestSum
	for i := range items {
		msgs[i] = items[i].msg
		sum.add(&items[i].sum)
	}
	return msgs, sum
}

// snapshot returns the resources of l, routes (RouteConfigName, which
// sorts before every service's own) and sidecar, and the sums of their
// digests. last are the lists of the last build: a list that holds what
// it held then is the very same slice, which tells an xDS cache that
// nothing of its type changed.
func (l *lists) snapshot(routes hashed[*routev3.RouteConfiguration], sidecar hashed[*listenerv3.Listener], last *lists) (*Snapshot, typeSums) {
	if last != nil && sameSlice(l.routes, last.routes) && len(last.served.routes) > 0 && last.served.routes[0] == routes.msg {
		l.served.routes = last.served.routes
	} else {
		l.served.routes = append([]*routev3.RouteConfiguration{routes.msg}, l.routes...)
	}
	if last != nil && len(last.served.sidecars) == 1 && last.served.sidecars[0] == sidecar.msg {
		l.served.sidecars = last.served.sidecars
	} else {
		l.served.sidecars = []*listenerv3.Listener{sidecar.msg}
	}
	snap := &Snapshot{Resources: Resources{
		Clusters:         l.clusters,
		Endpoints:        l.endpoints,
		APIListeners:     l.listeners,
		SidecarListeners: l.served.sidecars,
		Routes:           l.served.routes,
	}}
	sums := l.sums
	sums.listeners.add(&sidecar.sum)
	sums.routes.add(&routes.sum)
	return snap, sums
}

// sameSlice reports whether a and b are the same slice: the same array and
// length.
func sameSlice[M any](a, b []M) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}
