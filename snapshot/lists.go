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
// and the sum of their digests. A snapshot shares its lists, and lists
// share with the last build's all that did not change; none is changed
// once made.
type lists struct {
	clusters  List[*clusterv3.Cluster]
	endpoints List[*endpointv3.ClusterLoadAssignment]
	listeners List[*listenerv3.Listener]
	routes    List[*routev3.RouteConfiguration]
	sidecars  List[*listenerv3.Listener]
	// sums add up the digests of the services' resources; snapshot adds
	// the sidecar listener's and RouteConfigName's.
	sums     typeSums
	vhosts   List[*routev3.VirtualHost]
	vhostSum digestSum // of vhosts
}

// lists returns the lists of built, the services of a build in name order,
// which differ from the last build's by ch: the last build's lists with
// the rebuilt services' resources put in place of their old ones when
// that is possible (see patchable), else gathered and sorted anew.
func (b *Builder) lists(built List[*builtService], ch serviceChanges) *lists {
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
// anew, which then costs less than patching each.
func (b *Builder) patchable(built List[*builtService], ch serviceChanges) bool {
	if b.last == nil || !ch.sameSet || len(ch.rebuilt) > built.Len()/8 {
		return false
	}
	for k, i := range ch.rebuilt {
		bs, prev := built.At(i), ch.gone[k] // with no service gone, gone holds the rebuilt ones' last builds, in order
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

// patched returns l with the resources of ch's rebuilt services of built
// in place of their old ones; the sums lose the old resources' digests and
// gain the new ones'. A list in which no message changes stays l's, the
// Same list, which tells an xDS cache that nothing of its type changed. It
// reports false should a resource not be found where patchable promised,
// and then the lists are to be gathered anew.
func (l *lists) patched(built List[*builtService], ch serviceChanges) (*lists, bool) {
	out := *l
	for k, i := range ch.rebuilt {
		bs, prev := built.At(i), ch.gone[k] // as in patchable
		set(&out.listeners, i, bs.listener.msg)
		out.sums.listeners.swap(&prev.listener.sum, &bs.listener.sum)
		set(&out.routes, i, bs.routes.msg)
		out.sums.routes.swap(&prev.routes.sum, &bs.routes.sum)
		set(&out.vhosts, i, bs.vhost)
		out.vhostSum.swap(&prev.vhostSum, &bs.vhostSum)
		if !patch(&out.clusters, &out.sums.clusters, bs.clusters, prev.clusters, (*clusterv3.Cluster).GetName) ||
			!patch(&out.endpoints, &out.sums.endpoints, bs.endpoints, prev.endpoints, (*endpointv3.ClusterLoadAssignment).GetClusterName) {
			return nil, false
		}
	}
	return &out, true
}

// set puts m at index i of l, unless it is there already.
func set[M comparable](l *List[M], i int, m M) {
	if l.At(i) != m {
		*l = l.Set(i, m)
	}
}

// patch puts each of rebuilt in place of the one of sorted with its name,
// and swaps its digest for that of old, the same-named resources it
// replaces, in sum. It reports false if one is not found.
func patch[M interface {
	resource
	comparable
}](sorted *List[M], sum *digestSum, rebuilt, old []hashed[M], name func(M) string) bool {
	for j, r := range rebuilt {
		at, found := search(*sorted, name(r.msg), func(m M, n string) int { return cmp.Compare(name(m), n) })
		if !found {
			return false
		}
		set(sorted, at, r.msg)
		sum.swap(&old[j].sum, &r.sum)
	}
	return true
}

// gathered returns the lists of built.
func gathered(built List[*builtService]) *lists {
	n := built.Len()
	l := new(lists)
	vhosts := make([]*routev3.VirtualHost, n)
	listeners := make([]*listenerv3.Listener, n)
	routes := make([]*routev3.RouteConfiguration, n)
	clusters := make([]hashed[*clusterv3.Cluster], 0, 2*n)
	endpoints := make([]hashed[*endpointv3.ClusterLoadAssignment], 0, 2*n)
	for i, bs := range built.All() {
		clusters = append(clusters, bs.clusters...)
		endpoints = append(endpoints, bs.endpoints...)
		listeners[i] = bs.listener.msg
		l.sums.listeners.add(&bs.listener.sum)
		routes[i] = bs.routes.msg
		l.sums.routes.add(&bs.routes.sum)
		vhosts[i] = bs.vhost
		l.vhostSum.add(&bs.vhostSum)
	}
	l.listeners, l.routes, l.vhosts = ListOf(listeners...), ListOf(routes...), ListOf(vhosts...)
	l.clusters, l.sums.clusters = sortedByName(clusters, (*clusterv3.Cluster).GetName)
	l.endpoints, l.sums.endpoints = sortedByName(endpoints, (*endpointv3.ClusterLoadAssignment).GetClusterName)
	return l
}

// sortedByName sorts items by name and returns their messages and the sum
// of their digests. Services come sorted, but ClusterName's "/" separator
// does not sort like the service name alone ("a/v1" > "a-b/v1" although
// "a" < "a-b").
func sortedByName[M resource](items []hashed[M], name func(M) string) (List[M], digestSum) {
	slices.SortFunc(items, func(a, b hashed[M]) int { return cmp.Compare(name(a.msg), name(b.msg)) })
	msgs := make([]M, len(items))
	var sum digestSum
	for i := range items {
		msgs[i] = items[i].msg
		sum.add(&items[i].sum)
	}
	return ListOf(msgs...), sum
}

// snapshot sets l's sidecar list to hold sidecar, and returns the
// snapshot of l, the lists of a build, with routes (RouteConfigName), and
// the sums of their digests. last are the lists of the last build: a list that
// holds what it held then stays the Same list, which tells an xDS cache
// that nothing of its type changed.
func (l *lists) snapshot(routes *SharedRoutes, sidecar hashed[*listenerv3.Listener], last *lists) (*Snapshot, typeSums) {
	if last != nil && last.sidecars.Len() == 1 && last.sidecars.At(0) == sidecar.msg {
		l.sidecars = last.sidecars
	} else {
		l.sidecars = ListOf(sidecar.msg)
	}
	snap := &Snapshot{Resources: Resources{
		Clusters:         l.clusters,
		Endpoints:        l.endpoints,
		APIListeners:     l.listeners,
		SidecarListeners: l.sidecars,
		Outbound:         routes,
		Routes:           l.routes,
	}}
	sums := l.sums
	sums.listeners.add(&sidecar.sum)
	sums.routes.add(&routes.digest)
	return snap, sums
}
