package snapshot

import (
	"errors"
	"fmt"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// Consistent reports, as an error naming each missing or repeated resource and
// who refers to it, whether r can be served as it is: every route
// configuration a listener uses (in a filter chain or an api_listener) is in
// Routes, every cluster a route uses is in Clusters, every EDS cluster has its
// ClusterLoadAssignment and every assignment its cluster, and no name appears
// twice within one kind. Clients wait ~15 s for a name that is never served
// and NACK a response that repeats one. Envoy also rejects a route
// configuration that lists a domain in two virtual hosts (services "a" and
// "a.service.consul" would), so that is checked too. A route configuration
// that no listener uses is no error, as an unused cluster is none: a
// client only fetches what it is referred to.
func Consistent(r Resources) error { return consistent(r, connectionManagers) }

// hcmsFunc returns the HTTP connection managers of a listener.
type hcmsFunc func(*listenerv3.Listener) ([]*hcmv3.HttpConnectionManager, error)

// consistent is Consistent with hcms for connectionManagers: a Builder
// remembers them rather than decode every listener on every build.
func consistent(r Resources, hcms hcmsFunc) error {
	var errs []error
	clusters := names(&errs, "cluster", r.Clusters, (*clusterv3.Cluster).GetName)
	routes := names(&errs, "route configuration", r.Routes, (*routev3.RouteConfiguration).GetName)
	names(&errs, "sidecar listener", r.SidecarListeners, (*listenerv3.Listener).GetName)
	names(&errs, "api listener", r.APIListeners, (*listenerv3.Listener).GetName)
	assignments := make(map[string]bool, len(r.Endpoints))
	for _, cla := range r.Endpoints {
		if assignments[cla.GetClusterName()] {
			errs = append(errs, fmt.Errorf("ClusterLoadAssignment %q is listed twice", cla.GetClusterName()))
		}
		assignments[cla.GetClusterName()] = true
	}

	for _, l := range append(append([]*listenerv3.Listener(nil), r.SidecarListeners...), r.APIListeners...) {
		errs = append(errs, listenerRefs(l, hcms, routes, clusters)...)
	}
	served := make(map[*routev3.VirtualHost]bool, len(r.Routes))
	for _, rc := range r.Routes {
		errs = append(errs, clusterRefs("route configuration", rc.GetName(), rc, clusters, served)...)
		errs = append(errs, duplicateDomains(rc)...)
	}
	errs = append(errs, edsPairs(r, assignments)...)
	return errors.Join(errs...)
}

// names returns the set of names of items, recording an error for each
// name listed twice.
func names[T any](errs *[]error, kind string, items []T, name func(T) string) map[string]bool {
	set := make(map[string]bool, len(items))
	for _, it := range items {
		n := name(it)
		if set[n] {
			*errs = append(*errs, fmt.Errorf("%s %q is listed twice", kind, n))
		}
		set[n] = true
	}
	return set
}

// listenerRefs checks the route configurations that l's connection managers
// use: by RDS name, or inline.
func listenerRefs(l *listenerv3.Listener, hcms hcmsFunc, routes, clusters map[string]bool) []error {
	managers, err := hcms(l)
	if err != nil {
		return []error{fmt.Errorf("listener %q: %w", l.GetName(), err)}
	}
	var errs []error
	for _, hcm := range managers {
		if rds := hcm.GetRds(); rds != nil && !routes[rds.GetRouteConfigName()] {
			errs = append(errs, fmt.Errorf("listener %q references route configuration %q, which is not served", l.GetName(), rds.GetRouteConfigName()))
		}
		if rc := hcm.GetRouteConfig(); rc != nil {
			errs = append(errs, clusterRefs("listener", l.GetName(), rc, clusters, nil)...)
		}
	}
	return errs
}

// connectionManagers returns the HTTP connection managers of l: from its
// filter chains, its default filter chain and its api_listener.
// go-control-plane's Snapshot.Consistent looks only at filter chains.
func connectionManagers(l *listenerv3.Listener) ([]*hcmv3.HttpConnectionManager, error) {
	configs := []*anypb.Any{l.GetApiListener().GetApiListener()}
	chains := append([]*listenerv3.FilterChain{l.GetDefaultFilterChain()}, l.GetFilterChains()...)
	for _, fc := range chains {
		for _, f := range fc.GetFilters() {
			configs = append(configs, f.GetTypedConfig())
		}
	}
	var out []*hcmv3.HttpConnectionManager
	for _, a := range configs {
		if a == nil || !a.MessageIs((*hcmv3.HttpConnectionManager)(nil)) {
			continue
		}
		hcm := new(hcmv3.HttpConnectionManager)
		if err := a.UnmarshalTo(hcm); err != nil {
			return nil, fmt.Errorf("decode http connection manager: %w", err)
		}
		out = append(out, hcm)
	}
	return out, nil
}

// clusterRefs checks that every cluster rc routes to is served; rc is in
// (or is) the resource of kind whose name is name. served, unless nil,
// holds the virtual hosts found to route to served clusters only, which are
// not checked again: a route configuration can share its virtual hosts
// with another (see ServiceRouteConfigName).
func clusterRefs(kind, name string, rc *routev3.RouteConfiguration, clusters map[string]bool, served map[*routev3.VirtualHost]bool) []error {
	var errs []error
	for _, vh := range rc.GetVirtualHosts() {
		if served[vh] {
			continue
		}
		n := len(errs)
		for _, route := range vh.GetRoutes() {
			action := route.GetRoute()
			if c := action.GetCluster(); c != "" && !clusters[c] {
				errs = append(errs, missingCluster(kind, name, vh, c))
			}
			for _, cw := range action.GetWeightedClusters().GetClusters() {
				if !clusters[cw.GetName()] {
					errs = append(errs, missingCluster(kind, name, vh, cw.GetName()))
				}
			}
		}
		if served != nil && len(errs) == n {
			served[vh] = true
		}
	}
	return errs
}

func missingCluster(kind, name string, vh *routev3.VirtualHost, cluster string) error {
	return fmt.Errorf("%s %q (virtual host %q) references cluster %q, which is not served", kind, name, vh.GetName(), cluster)
}

// duplicateDomains reports domains that more than one virtual host of rc lists.
func duplicateDomains(rc *routev3.RouteConfiguration) []error {
	if vhs := rc.GetVirtualHosts(); len(vhs) == 1 && len(vhs[0].GetDomains()) <= fewDomains {
		return repeatedDomains(rc.GetName(), vhs[0])
	}
	var errs []error
	n := 0
	for _, vh := range rc.GetVirtualHosts() {
		n += len(vh.GetDomains())
	}
	owner := make(map[string]string, n)
	for _, vh := range rc.GetVirtualHosts() {
		for _, d := range vh.GetDomains() {
			if first, ok := owner[d]; ok {
				errs = append(errs, domainTwice(rc.GetName(), d, first, vh.GetName()))
				continue
			}
			owner[d] = vh.GetName()
		}
	}
	return errs
}

// fewDomains is how many domains a virtual host may have for
// repeatedDomains to compare each with every other rather than make a map:
// a service's own route configuration has one virtual host, with a few.
const fewDomains = 16

// repeatedDomains is duplicateDomains of a route configuration named rc
// whose one virtual host is vh.
func repeatedDomains(rc string, vh *routev3.VirtualHost) []error {
	var errs []error
	domains := vh.GetDomains()
	for i, d := range domains {
		if slices.Contains(domains[:i], d) {
			errs = append(errs, domainTwice(rc, d, vh.GetName(), vh.GetName()))
		}
	}
	return errs
}

func domainTwice(rc, domain, first, second string) error {
	return fmt.Errorf("route configuration %q: domain %q is in virtual hosts %q and %q", rc, domain, first, second)
}

// edsPairs checks that EDS clusters and assignments come in pairs.
func edsPairs(r Resources, assignments map[string]bool) []error {
	var errs []error
	eds := make(map[string]bool, len(r.Clusters))
	for _, c := range r.Clusters {
		if c.GetType() != clusterv3.Cluster_EDS {
			continue
		}
		// An EDS cluster asks for its service_name, or its own name without one.
		want := c.GetEdsClusterConfig().GetServiceName()
		if want == "" {
			want = c.GetName()
		}
		eds[want] = true
		if !assignments[want] {
			errs = append(errs, fmt.Errorf("EDS cluster %q has no ClusterLoadAssignment %q", c.GetName(), want))
		}
	}
	for _, cla := range r.Endpoints {
		if !eds[cla.GetClusterName()] {
			errs = append(errs, fmt.Errorf("ClusterLoadAssignment %q belongs to no EDS cluster", cla.GetClusterName()))
		}
	}
	return errs
}
