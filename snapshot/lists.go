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
// snapshot lists them, with their digests: clusters and assignments sorted
// by name, API listeners and route configurations in service order, which
// is their names' order too (a service's listener is named after it, its
// route configuration after RouteConfigName and it). With them go the
// virtual hosts RouteConfigName holds, and their encodings, in service
// order. A snapshot shares its lists' slices: they are never changed once
// made.
type lists struct {
	clusters  []*clusterv3.Cluster
	endpoints []*endpointv3.ClusterLoadAssignment
	listeners []*listenerv3.Listener
	routes    []*routev3.RouteConfiguration
	// sums are the digests of the above (clusters, endpoints, api,
	// routes); routes' leave out RouteConfigName and sidecar is empty:
	// snapshot adds them.
	sums        digests
	vhosts      []*routev3.VirtualHost
	vhostFields [][]byte
}

// lists returns the lists of built, the services of a build in name order,
// which differ from the last build's by ch: the last build's lists with
// the rebuilt services' resources put in place of their old ones when
// that is possible (see patchable), else gathered and sorted anew.
func (b *Builder) lists(built []*builtService, ch serviceChanges) *lists {
	if b.patchable(built, ch) {
		if l, ok := b.last.patched(built, ch.rebuilt); ok {
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

// patched returns a copy of l with the resources of the rebuilt services
// of built (their indexes) in place of their old ones, or l itself if
// none was rebuilt. It reports false should a resource not be found where
// patchable promised, and then the lists are to be gathered anew.
func (l *lists) patched(built []*builtService, changed []int) (*lists, bool) {
	if len(changed) == 0 {
		return l, true
	}
	out := &lists{
		clusters:    slices.Clone(l.clusters),
		endpoints:   slices.Clone(l.endpoints),
		listeners:   slices.Clone(l.listeners),
		routes:      slices.Clone(l.routes),
		vhosts:      slices.Clone(l.vhosts),
		vhostFields: slices.Clone(l.vhostFields),
		sums: digests{
			clusters:  slices.Clone(l.sums.clusters),
			endpoints: slices.Clone(l.sums.endpoints),
			api:       slices.Clone(l.sums.api),
			routes:    slices.Clone(l.sums.routes),
		},
	}
	for _, i := range changed {
		bs := built[i]
		out.listeners[i], out.sums.api[i] = bs.listener.msg, bs.listener.sum
		out.routes[i], out.sums.routes[i] = bs.routes.msg, bs.routes.sum
		out.vhosts[i], out.vhostFields[i] = bs.vhost, bs.vhostField
		for _, c := range bs.clusters {
			j, found := indexByName(out.clusters, c.msg.GetName(), (*clusterv3.Cluster).GetName)
			if !found {
				return nil, false
			}
			out.clusters[j], out.sums.clusters[j] = c.msg, c.sum
		}
		for _, e := range bs.endpoints {
			j, found := indexByName(out.endpoints, e.msg.GetClusterName(), (*endpointv3.ClusterLoadAssignment).GetClusterName)
			if !found {
				return nil, false
			}
			out.endpoints[j], out.sums.endpoints[j] = e.msg, e.sum
		}
	}
	return out, true
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
		listeners:   make([]*listenerv3.Listener, n),
		routes:      make([]*routev3.RouteConfiguration, n),
		vhosts:      make([]*routev3.VirtualHost, n),
		vhostFields: make([][]byte, n),
		sums:        digests{api: make([]digest, n), routes: make([]digest, n)},
	}
	clusters := make([]hashed[*clusterv3.Cluster], 0, 2*n)
	endpoints := make([]hashed[*endpointv3.ClusterLoadAssignment], 0, 2*n)
	for i, bs := range built {
		clusters = append(clusters, bs.clusters...)
		endpoints = append(endpoints, bs.endpoints...)
		l.listeners[i], l.sums.api[i] = bs.listener.msg, bs.listener.sum
		l.routes[i], l.sums.routes[i] = bs.routes.msg, bs.routes.sum
		l.vhosts[i], l.vhostFields[i] = bs.vhost, bs.vhostField
	}
	l.clusters, l.sums.clusters = sortedByName(clusters, (*clusterv3.Cluster).GetName)
	l.endpoints, l.sums.endpoints = sortedByName(endpoints, (*endpointv3.ClusterLoadAssignment).GetClusterName)
	return l
}

// sortedByName sorts items by name and splits them into messages and digests.
// Services come sorted, but ClusterName's "/" separator does not sort like
// the service name alone ("a/v1" > "a-b/v1" although "a" < "a-b").
func sortedByName[M resource](items []hashed[M], name func(M) string) ([]M, []digest) {
	slices.SortFunc(items, func(a, b hashed[M]) int { return cmp.Compare(name(a.msg), name(b.msg)) })
	msgs := make([]M, len(items))
	sums := make([]digest, len(items))
	for i, it := range items {
		msgs[i], sums[i] = it.msg, it.sum
	}
	return msgs, sums
}

// snapshot returns the resources of l, routes (RouteConfigName, which
// sorts before every service's own) and sidecar, and their digests.
func (l *lists) snapshot(routes hashed[*routev3.RouteConfiguration], sidecar hashed[*listenerv3.Listener]) (*Snapshot, digests) {
	snap := &Snapshot{Resources: Resources{
		Clusters:         l.clusters,
		Endpoints:        l.endpoints,
		APIListeners:     l.listeners,
		SidecarListeners: []*listenerv3.Listener{sidecar.msg},
		Routes:           append([]*routev3.RouteConfiguration{routes.msg}, l.routes...),
	}}
	d := l.sums
	d.sidecar = []digest{sidecar.sum}
	d.routes = append([]digest{routes.sum}, l.sums.routes...)
	return snap, d
}
