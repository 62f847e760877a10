package snapshot

import (
	"fmt"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
)

// Bridge returns the snapshot to serve between prev and next so that no
// proxy loses a cluster it still routes to: next's routes, but every
// cluster that prev routes traffic to and next stops routing to keeps its
// cluster and prev's endpoints if next would remove it or leave it without
// serving endpoints. Once proxies have applied the bridge's routes, next
// itself is safe to serve (make before break).
//
// Bridge returns next itself when no bridge is needed, which is always the
// case for Bridge(Bridge(prev, next), next).
func Bridge(prev, next *Snapshot) (*Snapshot, error) {
	routedBefore := RoutedClusters(prev.Resources)
	routedAfter := RoutedClusters(next.Resources)
	prevClusters := byName(prev.Clusters, (*clusterv3.Cluster).GetName)
	prevCLAs := byName(prev.Endpoints, (*endpointv3.ClusterLoadAssignment).GetClusterName)
	nextClusters := byName(next.Clusters, (*clusterv3.Cluster).GetName)
	nextCLAs := byName(next.Endpoints, (*endpointv3.ClusterLoadAssignment).GetClusterName)

	bridged := next.Resources
	bridged.Clusters = slices.Clone(next.Clusters)
	bridged.Endpoints = slices.Clone(next.Endpoints)
	kept := 0
	for _, name := range routedBefore {
		if slices.Contains(routedAfter, name) || prevCLAs[name] == nil {
			continue
		}
		switch {
		case nextClusters[name] == nil:
			bridged.Clusters = append(bridged.Clusters, prevClusters[name])
			bridged.Endpoints = append(bridged.Endpoints, prevCLAs[name])
		case !hasServing(nextCLAs[name]):
			i := slices.Index(bridged.Endpoints, nextCLAs[name])
			bridged.Endpoints[i] = prevCLAs[name]
		default:
			continue
		}
		kept++
	}
	if kept == 0 {
		return next, nil
	}
	bridged.sort()
	if err := Consistent(bridged); err != nil {
		return nil, fmt.Errorf("snapshot: bridge is inconsistent: %w", err)
	}
	version, err := hash(bridged)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return &Snapshot{Resources: bridged, Version: version, Report: next.Report}, nil
}

// RoutedClusters returns, sorted, the clusters that some route sends a
// share of traffic to.
func RoutedClusters(r Resources) []string {
	var names []string
	for _, rc := range r.Routes {
		for _, vh := range rc.GetVirtualHosts() {
			for _, route := range vh.GetRoutes() {
				action := route.GetRoute()
				if c := action.GetCluster(); c != "" {
					names = append(names, c)
				}
				for _, wc := range action.GetWeightedClusters().GetClusters() {
					if wc.GetWeight().GetValue() > 0 {
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
