// Package snapshot turns what discovery knows and what policy wants into the
// xDS resources weir serves. Build is pure: the same Input always yields the
// same resources and Version, so an unchanged world pushes nothing and the
// Version can key ACK gating.
package snapshot

import (
	"iter"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/policy"
)

const (
	// RouteConfigName is the route configuration holding every service's
	// virtual host, which the Envoy sidecar listener uses. Proxyless gRPC
	// clients use their service's own instead (see ServiceRouteConfigName).
	RouteConfigName = "weir_outbound"
	// SidecarListenerName is the Envoy sidecar's outbound HTTP listener.
	SidecarListenerName = "weir_outbound_http"

	defaultSidecarPort    = 15001
	defaultSidecarAddress = "127.0.0.1"
)

// Input is everything Build needs.
type Input struct {
	Model discovery.Model
	// Routing is, per service, what its traffic should do. A service
	// without an entry has no policy: its traffic is spread over its
	// serving instances. A Builder takes the very table its last build was
	// given as the same routing and compares no policy
	// (policy.Engine.Routing returns one table until some routing
	// changes); in a table that follows it (see policy.Table.Next) it
	// looks at the services the table says changed; in another, it
	// compares each policy with the one its service was last built with,
	// which shares the policy's Weights map. So change weights by giving a
	// new Weights map, never by changing one once given.
	Routing policy.Table
	// SidecarPort is the Envoy outbound listener port; 0 means 15001.
	SidecarPort uint32
	// SidecarAddress is the Envoy outbound listener address; "" means 127.0.0.1.
	SidecarAddress string
}

// Resources are the xDS resources of one snapshot, each list sorted by
// name. A Builder's snapshots share what did not change between them (see
// List): a list that is Same as the last snapshot's holds the same
// resources, and Changed finds the few that differ.
type Resources struct {
	Clusters         List[*clusterv3.Cluster]
	Endpoints        List[*endpointv3.ClusterLoadAssignment]
	Outbound         *SharedRoutes                     // RouteConfigName; nil in resources that have none
	Routes           List[*routev3.RouteConfiguration] // each service's own (ServiceRouteConfigName)
	SidecarListeners List[*listenerv3.Listener]        // served to Envoy proxies (wildcard LDS)
	APIListeners     List[*listenerv3.Listener]        // served to proxyless gRPC clients (named LDS)
}

// RouteConfigurations returns every route configuration of r, sorted by
// name: Outbound's, made whole, then Routes. It costs a pointer per
// virtual host and route configuration, which serving r does not need.
func (r Resources) RouteConfigurations() []*routev3.RouteConfiguration {
	out := make([]*routev3.RouteConfiguration, 0, 1+r.Routes.Len())
	if r.Outbound != nil {
		out = append(out, r.Outbound.Message())
	}
	return append(out, r.Routes.Slice()...)
}

// virtualHosts yields the virtual hosts of every route configuration of
// r: Outbound's, then those of Routes.
func (r Resources) virtualHosts() iter.Seq[*routev3.VirtualHost] {
	return func(yield func(*routev3.VirtualHost) bool) {
		for vh := range r.Outbound.Hosts().Values() {
			if !yield(vh) {
				return
			}
		}
		for rc := range r.Routes.Values() {
			for _, vh := range rc.GetVirtualHosts() {
				if !yield(vh) {
					return
				}
			}
		}
	}
}

// virtualHost returns the virtual host named name of r's route
// configuration named rc, or nil. Virtual hosts are looked up by name, as
// a Builder sorts them (by service).
func (r Resources) virtualHost(rc, name string) *routev3.VirtualHost {
	if rc == r.Outbound.Name() {
		vh, _ := named(r.Outbound.Hosts(), name, (*routev3.VirtualHost).GetName)
		return vh
	}
	c, _ := named(r.Routes, rc, (*routev3.RouteConfiguration).GetName)
	for _, vh := range c.GetVirtualHosts() {
		if vh.GetName() == name {
			return vh
		}
	}
	return nil
}

// Snapshot is the result of Build.
type Snapshot struct {
	Resources
	// Version is a short hex content hash of Resources: equal Resources, equal Version.
	Version string
	// Report lists what the caller should warn about; it does not stop a push.
	Report Report
}

// ServiceRouteConfigName names the route configuration holding only
// service's virtual host — the very one RouteConfigName holds — which the
// service's API listener uses: a proxyless gRPC client calls one service,
// so a routing change of another service need not reach it, nor the whole
// of RouteConfigName with every change. Service names are DNS labels,
// without "/", so no two names collide, and they sort right after
// RouteConfigName.
func ServiceRouteConfigName(service string) string { return RouteConfigName + "/" + service }

// ClusterName names the cluster of one version of a service.
func ClusterName(service, version string) string { return service + "/" + version }

// StickyVersion is the pseudo-version of a sticky service's combined
// cluster, ClusterName(service, StickyVersion): "*" is no valid version name.
const StickyVersion = "*"

// Build returns the resources for in. It fails only if its own output is
// invalid or inconsistent, which means a bug here or in package envoy; the
// caller should then keep serving its last good snapshot.
func Build(in Input) (*Snapshot, error) { return new(Builder).Build(in) }

// withDefaults returns in with the defaults for what it leaves zero.
func withDefaults(in Input) Input {
	if in.SidecarPort == 0 {
		in.SidecarPort = defaultSidecarPort
	}
	if in.SidecarAddress == "" {
		in.SidecarAddress = defaultSidecarAddress
	}
	return in
}

// unknownServices returns, sorted, the services that have a policy but that
// discovery does not know.
func unknownServices(model discovery.Model, routing policy.Table) []string {
	var unknown []string
	for name := range routing.All() {
		if _, ok := model.Service(name); !ok {
			unknown = append(unknown, name)
		}
	}
	slices.Sort(unknown)
	return unknown
}
