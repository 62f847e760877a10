package snapshot

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weir-mesh/weir/envoy"
	"github.com/weir-mesh/weir/policy"
)

// Bridge returns the snapshot to serve between prev and next so that no
// proxy ever routes to a cluster it does not have (make before break):
//
//   - A cluster that next routes traffic to but that no route of prev even
//     names is new to the clients: the bridge withholds its weight (keeping
//     prev's routing where nothing else is left), while next's warming
//     route (see envoy.WarmingRoute) already names it, so that clients set
//     it up before any traffic depends on it. A match route to such a
//     cluster is left out of the bridge: its requests follow the catch-all
//     route meanwhile, as they did under prev. A sticky service's combined
//     cluster (see StickyVersion) is new in the same way when stickiness is
//     turned on.
//   - A cluster that prev or the bridge routes traffic to, and that next
//     would remove or leave without serving endpoints, stays with prev's
//     endpoints until proxies apply routes that no longer use it.
//
// Serving Bridge(prev, next), waiting for proxies to apply its routes, and
// repeating reaches next in at most three steps; Bridge returns next itself
// when no bridge is needed.
//
// stillRouted names clusters that proxies may still route to although prev
// does not — those of earlier snapshots not every proxy has applied yet —
// which the bridge keeps as well.
func Bridge(prev, next *Snapshot, stillRouted ...string) (*Snapshot, error) {
	bridged := next.Resources
	withheld := withholdNew(&bridged, prev.Resources)
	leaving := slices.Concat(RoutedClusters(prev.Resources), RoutedClusters(bridged), stillRouted)
	kept := keepLeaving(&bridged, prev.Resources, leaving, RoutedClusters(next.Resources))
	if withheld+kept == 0 {
		return next, nil
	}
	if err := Consistent(bridged); err != nil {
		return nil, fmt.Errorf("snapshot: bridge is inconsistent: %w", err)
	}
	version, err := contentVersion(bridged)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return &Snapshot{Resources: bridged, Version: version, Report: next.Report}, nil
}

// withholdNew replaces r's routes with copies in which clusters that no
// route of prev names get no traffic. A match route to such a cluster is
// dropped (its requests follow the catch-all route, as they did in prev). A
// catch-all route left with no cluster takes prev's catch-all route of the
// same virtual host instead; a virtual host that prev did not have is new,
// and nothing routes to it yet. A route configuration with nothing to
// withhold stays the very message it was, so that a service's own route
// configuration (see ServiceRouteConfigName) that a change does not touch
// is neither encoded nor sent again. It returns how many routes it changed.
func withholdNew(r *Resources, prev Resources) int {
	known := ReferencedClusters(prev)
	prevRoutes := mainRoutes(prev)
	changed := 0
	routes := slices.Clone(r.Routes)
	for i, rc := range routes {
		out, n := withholdIn(rc, known, prevRoutes)
		routes[i] = out
		changed += n
	}
	if changed > 0 {
		r.Routes = routes
	}
	return changed
}

// withholdIn returns rc, or a copy of it with the routes withhold changes,
// and how many it changed.
func withholdIn(rc *routev3.RouteConfiguration, known []string, prevRoutes map[string]*routev3.Route) (*routev3.RouteConfiguration, int) {
	out := proto.Clone(rc).(*routev3.RouteConfiguration)
	changed := 0
	for _, vh := range out.GetVirtualHosts() {
		kept := make([]*routev3.Route, 0, len(vh.GetRoutes()))
		for _, route := range vh.GetRoutes() {
			r, withheld := withhold(route, known, prevRoutes[vh.GetName()])
			if withheld {
				changed++
			}
			if r != nil {
				kept = append(kept, r)
			}
		}
		vh.Routes = kept
	}
	if changed == 0 {
		return rc, 0
	}
	return out, changed
}

// withhold returns route without traffic to clusters that are not known:
// with fewer weighted clusters (changed in place: route is a clone),
// replaced by prevMain, or nil when it is a match route to drop. withheld
// reports whether it changed anything.
func withhold(route *routev3.Route, known []string, prevMain *routev3.Route) (out *routev3.Route, withheld bool) {
	if route.GetName() == envoy.WarmingRouteName {
		return route, false
	}
	action := route.GetRoute()
	if c := action.GetCluster(); c != "" {
		switch {
		case slices.Contains(known, c):
			return route, false
		case isMatchRoute(route):
			return nil, true
		case prevMain != nil:
			return prevMain, true
		default:
			return route, false
		}
	}
	wc := action.GetWeightedClusters()
	kept := knownOnly(wc.GetClusters(), known)
	switch {
	case len(kept) == len(wc.GetClusters()):
		return route, false
	case len(kept) > 0:
		wc.Clusters = kept
		return route, true
	case prevMain != nil:
		return prevMain, true
	default:
		return route, false
	}
}

func isMatchRoute(route *routev3.Route) bool {
	return strings.HasPrefix(route.GetName(), matchRoutePrefix)
}

func knownOnly(clusters []*routev3.WeightedCluster_ClusterWeight, known []string) []*routev3.WeightedCluster_ClusterWeight {
	var kept []*routev3.WeightedCluster_ClusterWeight
	for _, c := range clusters {
		if slices.Contains(known, c.GetName()) {
			kept = append(kept, c)
		}
	}
	return kept
}

// mainRoutes returns the catch-all route of every virtual host (neither a
// match route nor the warming route), by virtual host name.
func mainRoutes(r Resources) map[string]*routev3.Route {
	m := make(map[string]*routev3.Route)
	for _, rc := range r.Routes {
		for _, vh := range rc.GetVirtualHosts() {
			for _, route := range vh.GetRoutes() {
				if route.GetName() != envoy.WarmingRouteName && !isMatchRoute(route) {
					m[vh.GetName()] = route
				}
			}
		}
	}
	return m
}

// keepLeaving adds back to r, with prev's endpoints, every cluster in
// leaving that next does not route to and that r would remove or leave
// without serving endpoints, keeping r's clusters and assignments sorted.
// It returns how many it kept. It changes copies of r's lists only: a
// Builder's later snapshots share them.
func keepLeaving(r *Resources, prev Resources, leaving, routedNext []string) int {
	prevClusters := byName(prev.Clusters, (*clusterv3.Cluster).GetName)
	prevCLAs := byName(prev.Endpoints, (*endpointv3.ClusterLoadAssignment).GetClusterName)
	nextClusters := byName(r.Clusters, (*clusterv3.Cluster).GetName)
	nextCLAs := byName(r.Endpoints, (*endpointv3.ClusterLoadAssignment).GetClusterName)
	r.Clusters = slices.Clone(r.Clusters)
	r.Endpoints = slices.Clone(r.Endpoints)
	kept := 0
	slices.Sort(leaving)
	for _, name := range slices.Compact(leaving) {
		if slices.Contains(routedNext, name) || prevCLAs[name] == nil {
			continue
		}
		switch {
		case nextClusters[name] == nil:
			r.Clusters = append(r.Clusters, prevClusters[name])
			r.Endpoints = append(r.Endpoints, prevCLAs[name])
		case !hasServing(nextCLAs[name]):
			r.Endpoints[slices.Index(r.Endpoints, nextCLAs[name])] = prevCLAs[name]
		default:
			continue
		}
		kept++
	}
	slices.SortFunc(r.Clusters, func(a, b *clusterv3.Cluster) int { return cmp.Compare(a.GetName(), b.GetName()) })
	slices.SortFunc(r.Endpoints, func(a, b *endpointv3.ClusterLoadAssignment) int {
		return cmp.Compare(a.GetClusterName(), b.GetClusterName())
	})
	return kept
}

// RoutedClusters returns, sorted, the clusters that some route sends a
// share of traffic to: a weighted cluster with a non-zero weight, or the
// one cluster of a match route or a sticky catch-all route. The warming
// route sends none.
func RoutedClusters(r Resources) []string {
	return routeClusters(r, func(route *routev3.Route, weight uint32) bool {
		return route.GetName() != envoy.WarmingRouteName && weight > 0
	})
}

// ReferencedClusters returns, sorted, every cluster some route names,
// warming route included: the clusters proxyless gRPC clients have set up.
func ReferencedClusters(r Resources) []string {
	return routeClusters(r, func(*routev3.Route, uint32) bool { return true })
}

// routeClusters returns the clusters of routes for which include holds,
// given the cluster's weight; a route's one cluster has all its traffic.
func routeClusters(r Resources, include func(route *routev3.Route, weight uint32) bool) []string {
	var names []string
	for _, rc := range r.Routes {
		for _, vh := range rc.GetVirtualHosts() {
			for _, route := range vh.GetRoutes() {
				if c := route.GetRoute().GetCluster(); c != "" && include(route, uint32(policy.Full)) {
					names = append(names, c)
				}
				for _, wc := range route.GetRoute().GetWeightedClusters().GetClusters() {
					if include(route, wc.GetWeight().GetValue()) {
						names = append(names, wc.GetName())
					}
				}
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// hasServing reports whether an assignment has an endpoint that takes new
// requests.
func hasServing(cla *endpointv3.ClusterLoadAssignment) bool {
	for _, locality := range cla.GetEndpoints() {
		for _, ep := range locality.GetLbEndpoints() {
			switch ep.GetHealthStatus() {
			case corev3.HealthStatus_HEALTHY, corev3.HealthStatus_UNKNOWN:
				return true
			}
		}
	}
	return false
}

func byName[T any](items []T, name func(T) string) map[string]T {
	m := make(map[string]T, len(items))
	for _, it := range items {
		m[name(it)] = it
	}
	return m
}
