package envoy

import (
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
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
	wc := &routev3.WeightedCluster{}
	for _, w := range weights {
		if w.Weight == 0 {
			continue
		}
		wc.Clusters = append(wc.Clusters, &routev3.WeightedCluster_ClusterWeight{
			Name:   w.Name,
			Weight: wrapperspb.UInt32(w.Weight),
		})
	}
	return wc
}

// VirtualHost returns a virtual host that sends every request ("/" prefix) to
// the weighted clusters of action.
func VirtualHost(name string, domains []string, action *routev3.WeightedCluster) *routev3.VirtualHost {
	return &routev3.VirtualHost{
		Name:    name,
		Domains: domains,
		Routes: []*routev3.Route{{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: action},
			}},
		}},
	}
}

// RouteConfiguration returns a route configuration holding vhosts.
func RouteConfiguration(name string, vhosts []*routev3.VirtualHost) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: vhosts}
}
