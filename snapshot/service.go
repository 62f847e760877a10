package snapshot

import (
	"maps"
	"slices"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/envoy"
	"github.com/weir-mesh/weir/policy"
)

// serviceResources is what one service contributes to a snapshot.
type serviceResources struct {
	clusters  []*clusterv3.Cluster
	endpoints []*endpointv3.ClusterLoadAssignment
	vhost     *routev3.VirtualHost
	report    serviceReport
}

// serviceReport is what one service contributes to the Report.
type serviceReport struct {
	unserved        []string // desired versions without serving instances
	noServing       bool
	duplicates      []string // versions that listed one address:port twice
	unservedMatches []string // match route versions without serving instances
}

// buildService returns a cluster and endpoints per version of svc (and the
// combined cluster of a sticky service) and the virtual host routing to
// them: match routes first, in policy order, then the catch-all route, then
// the warming route naming every cluster.
func buildService(svc discovery.Service, routing policy.Routing, hasPolicy bool) serviceResources {
	var out serviceResources
	byVersion, dups := endpointsByVersion(svc)
	out.report.duplicates = dups
	for _, v := range slices.Sorted(maps.Keys(byVersion)) {
		name := ClusterName(svc.Name, v)
		out.clusters = append(out.clusters, envoy.Cluster(name))
		out.endpoints = append(out.endpoints, envoy.ClusterLoadAssignment(name, byVersion[v]))
	}
	weights := routeWeights(svc, routing.Weights, hasPolicy, &out.report)
	routes := matchRoutes(svc.Name, routing.Matches, byVersion, &out.report)
	if routing.Sticky != nil {
		name := ClusterName(svc.Name, StickyVersion)
		out.clusters = append(out.clusters, envoy.RingHashCluster(name))
		out.endpoints = append(out.endpoints, envoy.ClusterLoadAssignment(name, stickyEndpoints(byVersion, weights)))
		routes = append(routes, envoy.ClusterRoute("", name, nil, hashPolicy(*routing.Sticky)))
	} else {
		routes = append(routes, envoy.WeightedRoute(envoy.WeightedClusters(clusterWeights(svc.Name, weights))))
	}
	warming := make([]string, len(out.clusters))
	for i, c := range out.clusters {
		warming[i] = c.GetName()
	}
	slices.Sort(warming)
	out.vhost = envoy.VirtualHost(svc.Name, domains(svc), routes, warming)
	return out
}

// endpointsByVersion returns the endpoints of every version of svc, in
// instance ID order (the model keeps instances sorted by ID). A service
// without instances has the one version "" without endpoints, so that its
// route still names a cluster that exists. grpc-go NACKs an assignment that
// lists one address twice, so only the first instance at an address counts;
// dups names the versions where that happened.
func endpointsByVersion(svc discovery.Service) (byVersion map[string][]envoy.Endpoint, dups []string) {
	byVersion = make(map[string][]envoy.Endpoint)
	if len(svc.Instances) == 0 {
		byVersion[""] = nil
		return byVersion, nil
	}
	type key struct {
		version, address string
		port             uint32
	}
	seen := make(map[key]bool, len(svc.Instances))
	for _, in := range svc.Instances {
		eps := byVersion[in.Version] // every version gets an entry, even with no endpoints
		status, ok := healthStatus(in.Health)
		k := key{in.Version, in.Address, in.Port}
		switch {
		case !ok:
		case seen[k]:
			dups = append(dups, in.Version)
		default:
			seen[k] = true
			eps = append(eps, envoy.Endpoint{Address: in.Address, Port: in.Port, Health: status})
		}
		byVersion[in.Version] = eps
	}
	slices.Sort(dups)
	return byVersion, slices.Compact(dups)
}

// healthStatus maps an instance's health to its endpoint's; ok is false for
// instances that must not be endpoints at all. DRAINING keeps a maintenance
// instance known to Envoy (existing connections finish) but gets it no new
// requests.
func healthStatus(h discovery.Health) (status corev3.HealthStatus, ok bool) {
	switch h {
	case discovery.Passing, discovery.Warning:
		return corev3.HealthStatus_HEALTHY, true
	case discovery.Maintenance:
		return corev3.HealthStatus_DRAINING, true
	default:
		return corev3.HealthStatus_UNKNOWN, false
	}
}

// routeWeights decides each version's share of svc's traffic, recording in
// report what the caller should warn about.
func routeWeights(svc discovery.Service, desired policy.Weights, hasPolicy bool, report *serviceReport) policy.Weights {
	if len(svc.Instances) == 0 {
		report.noServing = true
		if hasPolicy {
			_, report.unserved = policy.Effective(desired, nil)
		}
		return policy.Weights{"": policy.Full}
	}
	serving := svc.ServingCount()
	report.noServing = true
	for _, n := range serving {
		if n > 0 {
			report.noServing = false
		}
	}
	if !hasPolicy {
		return policy.Spread(serving)
	}
	weights, unserved := policy.Effective(desired, serving)
	report.unserved = unserved
	return weights
}

// clusterWeights lists weights by version; envoy.WeightedClusters drops the zeros.
func clusterWeights(service string, weights policy.Weights) []envoy.ClusterWeight {
	out := make([]envoy.ClusterWeight, 0, len(weights))
	for _, v := range slices.Sorted(maps.Keys(weights)) {
		out = append(out, envoy.ClusterWeight{Name: ClusterName(service, v), Weight: uint32(weights[v])})
	}
	return out
}

// domains returns the names clients may use for svc, sorted: the bare name for
// proxyless gRPC targets (xds:///svc, which must match exactly, port included)
// and the Consul DNS name for sidecar traffic, each with and without every port.
func domains(svc discovery.Service) []string {
	// Instances mostly share their port: format each port once.
	ports := make([]uint32, len(svc.Instances))
	for i, in := range svc.Instances {
		ports[i] = in.Port
	}
	slices.Sort(ports)
	ports = slices.Compact(ports)
	names := []string{svc.Name, svc.Name + ".service.consul"}
	out := make([]string, 0, len(names)*(1+len(ports)))
	out = append(out, names...)
	for _, p := range ports {
		port := ":" + strconv.FormatUint(uint64(p), 10)
		for _, n := range names {
			out = append(out, n+port)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
