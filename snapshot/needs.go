package snapshot

import (
	"cmp"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// What a client that holds some resources goes on to subscribe to: the
// clusters its routes name, and the endpoints of its clusters. A proxyless
// gRPC client ACKs routes before it subscribes to the clusters they name,
// and clusters before it subscribes to their endpoints, and it routes as
// before until it has them all; knowing what it needs tells when it has.

// ClustersOfRoutes returns, sorted and without repeats, every cluster that
// r's route configurations named names route to or warm (the warming route
// included: a gRPC client sets up every cluster its routes name). Names r
// has no route configuration of name nothing.
func ClustersOfRoutes(r Resources, names []string) []string {
	var out []string
	add := func(vh *routev3.VirtualHost) {
		for _, route := range vh.GetRoutes() {
			eachCluster(route, func(c string, _ uint32) { out = append(out, c) })
		}
	}
	for _, name := range names {
		if r.Outbound != nil && name == r.Outbound.Name() {
			for vh := range r.Outbound.Hosts().Values() {
				add(vh)
			}
			continue
		}
		if rc, ok := named(r.Routes, name, (*routev3.RouteConfiguration).GetName); ok {
			for _, vh := range rc.GetVirtualHosts() {
				add(vh)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// EDSNames returns, sorted and without repeats, the names that r's EDS
// clusters named names (all of them, if wildcard) ask EDS for: their
// service_name, else their own name. Names r has no cluster of name
// nothing.
func EDSNames(r Resources, names []string, wildcard bool) []string {
	var out []string
	add := func(c *clusterv3.Cluster) {
		if c.GetType() == clusterv3.Cluster_EDS {
			out = append(out, cmp.Or(c.GetEdsClusterConfig().GetServiceName(), c.GetName()))
		}
	}
	if wildcard {
		for c := range r.Clusters.Values() {
			add(c)
		}
	} else {
		for _, name := range names {
			if c, ok := named(r.Clusters, name, (*clusterv3.Cluster).GetName); ok {
				add(c)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
