package envoy

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// ClusterWeight is one cluster's share of a route's traffic.
type ClusterWeight struct {
	Name   string
	Weight uint32
}

// WeightedClusters returns the clusters with a non-zero weight, in the given
// order. grpc-go drops weight-0 entries anyway; leaving them out keeps both
// client kinds identical. total_weight is deprecated: clients sum the weights.
func WeightedClusters(weights []ClusterWeight) *routev3.WeightedCluster {
	return weightedClusters(len(weights), func(i int) ClusterWeight { return weights[i] })
}

// weightedClusters is WeightedClusters of the n weights that weight
// returns, so that WarmingRoute need not make a slice of them first.
func weightedClusters(n int, weight func(i int) ClusterWeight) *routev3.WeightedCluster {
	wc := &routev3.WeightedCluster{}
	nonZero := 0
	for i := range n {
		if weight(i).Weight > 0 {
			nonZero++
		}
	}
	if nonZero == 0 {
		return wc
	}
	// One allocation for every entry's messages rather than two per entry.
	type entry struct {
		cw     routev3.WeightedCluster_ClusterWeight
		weight wrapperspb.UInt32Value
	}
	entries := make([]entry, nonZero)
	wc.Clusters = make([]*routev3.WeightedCluster_ClusterWeight, nonZero)
	j := 0
	for i := range n {
		w := weight(i)
		if w.Weight == 0 {
			continue
		}
		e := &entries[j]
		e.weight.Value = w.Weight
		e.cw.Name, e.cw.Weight = w.Name, &e.weight
		wc.Clusters[j] = &e.cw
		j++
	}
	return wc
}

// WarmingRouteName names the route that keeps clusters known to clients
// without sending them traffic.
const WarmingRouteName = "weir_warming"

// VirtualHost returns a virtual host with routes, in order. When warming
// names clusters, a warming route after them references those too (see
// WarmingRoute).
func VirtualHost(name string, domains []string, routes []*routev3.Route, warming []string) *routev3.VirtualHost {
	vh := &routev3.VirtualHost{Name: name, Domains: domains, Routes: routes}
	if len(warming) > 0 {
		vh.Routes = append(vh.Routes, WarmingRoute(warming))
	}
	return vh
}

// WeightedRoute returns a route that sends every request ("/" prefix) to the
// weighted clusters of action.
func WeightedRoute(action *routev3.WeightedCluster) *routev3.Route {
	p := new(weightedRouteParts)
	p.weighted.WeightedClusters = action
	p.action.ClusterSpecifier = &p.weighted
	p.wrapper.Route = &p.action
	p.route.Match, p.route.Action = everyRequest, &p.wrapper
	return &p.route
}

// weightedRouteParts holds the messages of a WeightedRoute, allocated
// together: every service's virtual host has one.
type weightedRouteParts struct {
	route    routev3.Route
	wrapper  routev3.Route_Route
	action   routev3.RouteAction
	weighted routev3.RouteAction_WeightedClusters
}

// ClusterRoute returns a route named name that sends every request ("/"
// prefix) on which all headers match to the one cluster, hashed by hash
// (for a RING_HASH cluster; nil otherwise).
func ClusterRoute(name, cluster string, headers []*routev3.HeaderMatcher, hash []*routev3.RouteAction_HashPolicy) *routev3.Route {
	return &routev3.Route{
		Name: name,
		Match: &routev3.RouteMatch{
			PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
			Headers:       headers,
		},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
			HashPolicy:       hash,
		}},
	}
}

// WarmingRoute returns a route that matches no request — a 0 % runtime
// fraction, after a catch-all route — but names clusters. Proxyless gRPC
// clients learn clusters only from routes: a cluster named here is created
// and connected before any route gives it traffic, so that shifting weight
// to it later cannot race the client's own set-up.
func WarmingRoute(clusters []string) *routev3.Route {
	warm := weightedClusters(len(clusters), func(i int) ClusterWeight { return ClusterWeight{Name: clusters[i], Weight: 1} })
	return &routev3.Route{
		Name:  WarmingRouteName,
		Match: noRequest,
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: warm},
		}},
	}
}

// Route matches that many routes have, shared (see the package comment):
// every request ("/" prefix), and none (the same, on a 0 % runtime
// fraction).
var (
	everyRequest = &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
	noRequest    = &routev3.RouteMatch{
		PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
		RuntimeFraction: &corev3.RuntimeFractionalPercent{
			DefaultValue: &typev3.FractionalPercent{Numerator: 0, Denominator: typev3.FractionalPercent_HUNDRED},
		},
	}
)

// RouteConfiguration returns a route configuration holding vhosts.
func RouteConfiguration(name string, vhosts []*routev3.VirtualHost) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: vhosts}
}
