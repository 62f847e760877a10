package snapshot

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

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

// any reports whether r has a finding.
func (r serviceReport) any() bool {
	return len(r.unserved) > 0 || r.noServing || len(r.duplicates) > 0 || len(r.unservedMatches) > 0
}

// buildService returns a cluster and endpoints per version of svc (and the
// combined cluster of a sticky service) and the virtual host routing to
// them: match routes first, in policy order, then the catch-all route, then
// the warming route naming the clusters no other route names.
func buildService(svc discovery.Service, routing policy.Routing, hasPolicy bool) serviceResources {
	var out serviceResources
	bv, dups := endpointsByVersion(svc)
	out.report.duplicates = dups
	names := make([]string, len(bv))
	out.clusters = make([]*clusterv3.Cluster, 0, len(bv)+1)
	out.endpoints = make([]*endpointv3.ClusterLoadAssignment, 0, len(bv)+1)
	for i, ve := range bv {
		names[i] = ClusterName(svc.Name, ve.version)
		out.clusters = append(out.clusters, envoy.Cluster(names[i]))
		out.endpoints = append(out.endpoints, envoy.ClusterLoadAssignment(names[i], ve.endpoints))
	}
	weights := routeWeights(svc, bv, routing.Weights, hasPolicy, &out.report)
	routes := matchRoutes(svc.Name, routing.Matches, bv, &out.report)
	if routing.Sticky != nil {
		name := ClusterName(svc.Name, StickyVersion)
		out.clusters = append(out.clusters, envoy.RingHashCluster(name))
		out.endpoints = append(out.endpoints, envoy.ClusterLoadAssignment(name, stickyEndpoints(bv.asMap(), weights)))
		routes = append(routes, envoy.ClusterRoute("", name, nil, hashPolicy(*routing.Sticky)))
	} else {
		routes = append(routes, envoy.WeightedRoute(envoy.WeightedClusters(clusterWeights(bv, names, weights))))
	}
	clusters := make([]string, len(out.clusters))
	for i, c := range out.clusters {
		clusters[i] = c.GetName()
	}
	out.vhost = envoy.VirtualHost(svc.Name, domains(svc), routes, unrouted(clusters, routes))
	return out
}

// unrouted returns, sorted, those of clusters that no route names: what a
// warming route (see envoy.WarmingRoute) adds, so that a virtual host names
// every cluster of its service and the warming route repeats none.
func unrouted(clusters []string, routes []*routev3.Route) []string {
	var out []string
	for _, c := range clusters {
		if !slices.ContainsFunc(routes, func(r *routev3.Route) bool { return routeNamesCluster(r, c) }) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

// routeNamesCluster reports whether route names cluster.
func routeNamesCluster(route *routev3.Route, cluster string) bool {
	found := false
	eachCluster(route, func(c string, _ uint32) { found = found || c == cluster })
	return found
}

// versionEndpoints are the endpoints of one version of a service.
type versionEndpoints struct {
	version   string
	endpoints []envoy.Endpoint
	serving   int // instances that serve (see discovery.Health.Serving)
}

// byVersion are the endpoints of every version of a service, sorted by
// version: a sorted slice rather than a map, which Build would make, fill
// and sort the keys of for every service.
type byVersion []versionEndpoints

// endpoints returns those of version, if it has any.
func (bv byVersion) endpoints(version string) []envoy.Endpoint {
	i, ok := slices.BinarySearchFunc(bv, version, func(ve versionEndpoints, v string) int { return cmp.Compare(ve.version, v) })
	if !ok {
		return nil
	}
	return bv[i].endpoints
}

// servingCount returns how many instances of each version serve, as
// discovery.Service.ServingCount does for the service bv is of if it has
// instances, with one map operation per version rather than several per
// instance.
func (bv byVersion) servingCount() map[string]int {
	m := make(map[string]int, len(bv))
	for _, ve := range bv {
		m[ve.version] = ve.serving
	}
	return m
}

// asMap returns bv as a map from version to endpoints.
func (bv byVersion) asMap() map[string][]envoy.Endpoint {
	m := make(map[string][]envoy.Endpoint, len(bv))
	for _, ve := range bv {
		m[ve.version] = ve.endpoints
	}
	return m
}

// endpointsByVersion returns the endpoints of every version of svc, in
// instance ID order (the model keeps instances sorted by ID), and how many
// of each version's instances serve (see byVersion.servingCount). A service
// without instances has the one version "" without endpoints, so that its
// route still names a cluster that exists. grpc-go NACKs an assignment that
// lists one address twice, so only the first instance at an address counts,
// but as HEALTHY if any instance there is: a version that serves (its weight
// follows its serving count) then has a HEALTHY endpoint, also when an older
// registration at the same address is in maintenance. dups names the
// versions where that happened. The endpoints of all versions share one
// array.
func endpointsByVersion(svc discovery.Service) (bv byVersion, dups []string) {
	if len(svc.Instances) == 0 {
		return byVersion{{}}, nil
	}
	versions := distinct(svc.Instances, func(in discovery.Instance) string { return in.Version })
	counts := make([]int, len(versions)) // endpoints of each version
	bv = make(byVersion, len(versions))
	for _, in := range svc.Instances {
		i := versionIndex(versions, in.Version)
		if _, ok := healthStatus(in.Health); ok {
			counts[i]++
		}
		if in.Health.Serving() {
			bv[i].serving++
		}
	}
	all := make([]envoy.Endpoint, len(svc.Instances))
	for i, v := range versions {
		// Every version gets an entry, even with no endpoints.
		bv[i].version, bv[i].endpoints = v, all[:0:counts[i]]
		all = all[counts[i]:]
	}
	seen := make([]addressSet, len(versions))
	for _, in := range svc.Instances {
		status, ok := healthStatus(in.Health)
		if !ok {
			continue
		}
		i := versionIndex(versions, in.Version)
		e := envoy.Endpoint{Address: in.Address, Port: in.Port, Health: status}
		if at := seen[i].index(bv[i].endpoints, e); at >= 0 {
			if status == corev3.HealthStatus_HEALTHY {
				bv[i].endpoints[at].Health = status
			}
			dups = append(dups, in.Version)
			continue
		}
		bv[i].endpoints = append(bv[i].endpoints, e) // within its capacity: no allocation
	}
	slices.Sort(dups)
	return bv, slices.Compact(dups)
}

// distinct returns the distinct values of field over instances, sorted.
func distinct[T cmp.Ordered](instances []discovery.Instance, field func(discovery.Instance) T) []T {
	values := make([]T, len(instances))
	for i, in := range instances {
		values[i] = field(in)
	}
	slices.Sort(values)
	return slices.Compact(values)
}

// versionIndex returns the index of version in versions, which holds it.
func versionIndex(versions []string, version string) int {
	i, _ := slices.BinarySearch(versions, version)
	return i
}

// addressSet finds which endpoint listed before another is at its address
// and port. A version's endpoints are mostly few: it compares with each
// until there are more than linearAddressSearch, and only then makes a map.
// Its zero value is ready for use.
type addressSet struct {
	seen map[addressPort]int // the index of the endpoint at each
}

type addressPort struct {
	address string
	port    uint32
}

const linearAddressSearch = 16

// index returns the index in eps, the endpoints before e, of the one at
// e's address and port, or -1 if there is none; then it remembers e's, at
// the index e will have.
func (s *addressSet) index(eps []envoy.Endpoint, e envoy.Endpoint) int {
	if s.seen == nil && len(eps) < linearAddressSearch {
		return slices.IndexFunc(eps, func(o envoy.Endpoint) bool { return o.Port == e.Port && o.Address == e.Address })
	}
	if s.seen == nil {
		s.seen = make(map[addressPort]int, 2*len(eps))
		for i, o := range eps {
			s.seen[addressPort{o.Address, o.Port}] = i
		}
	}
	k := addressPort{e.Address, e.Port}
	if i, ok := s.seen[k]; ok {
		return i
	}
	s.seen[k] = len(eps)
	return -1
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

// routeWeights decides each version's share of svc's traffic, whose
// endpoints by version are bv (see endpointsByVersion), recording in
// report what the caller should warn about.
func routeWeights(svc discovery.Service, bv byVersion, desired policy.Weights, hasPolicy bool, report *serviceReport) policy.Weights {
	if len(svc.Instances) == 0 {
		report.noServing = true
		if hasPolicy {
			_, report.unserved = policy.Effective(desired, nil)
		}
		return policy.Weights{"": policy.Full}
	}
	serving := bv.servingCount()
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

// clusterWeights lists weights by version, naming each version's cluster
// names[i] as bv does; envoy.WeightedClusters drops the zeros. Every
// version with a weight has endpoints (see routeWeights), so bv lists it.
func clusterWeights(bv byVersion, names []string, weights policy.Weights) []envoy.ClusterWeight {
	out := make([]envoy.ClusterWeight, 0, len(weights))
	for i, ve := range bv {
		if w, ok := weights[ve.version]; ok {
			out = append(out, envoy.ClusterWeight{Name: names[i], Weight: uint32(w)})
		}
	}
	return out
}

// domains returns the names clients may use for svc, sorted: the bare name for
// proxyless gRPC targets (xds:///svc, which must match exactly, port included)
// and the Consul DNS name for sidecar traffic, each with and without every port.
// Those but the bare name are substrings of one string: one allocation for
// all of them.
func domains(svc discovery.Service) []string {
	const consul = ".service.consul"
	ports := distinct(svc.Instances, func(in discovery.Instance) uint32 { return in.Port })
	var b strings.Builder
	b.Grow((2*len(svc.Name)+len(consul)+2*len(":65535"))*len(ports) + len(svc.Name) + len(consul))
	ends := make([]int, 0, 1+2*len(ports)) // where each domain in b ends; each begins where the last ended
	b.WriteString(svc.Name)
	b.WriteString(consul)
	ends = append(ends, b.Len())
	var buf [1 + 10]byte // ":" and a uint32
	for _, p := range ports {
		port := strconv.AppendUint(append(buf[:0], ':'), uint64(p), 10)
		b.WriteString(svc.Name)
		b.Write(port)
		ends = append(ends, b.Len())
		b.WriteString(svc.Name)
		b.WriteString(consul)
		b.Write(port)
		ends = append(ends, b.Len())
	}
	all := b.String()
	out := make([]string, 0, 1+len(ends))
	out = append(out, svc.Name)
	begin := 0
	for _, end := range ends {
		out = append(out, all[begin:end])
		begin = end
	}
	slices.Sort(out)
	return slices.Compact(out)
}
