package snapshot

import (
	"cmp"
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// visitResources visits every resource of r and returns the errors of
// those wrong on their own: a listener whose connection manager cannot be
// decoded, a route configuration with one virtual host that lists a
// domain twice (see visitDomains). If seen is not nil, a virtual host that
// several route configurations hold (a service's own and RouteConfigName)
// wants its clusters only once, which is enough for counting; explaining
// wants every referrer. A Builder counts a service's virtual host once in
// the same way (see visitService): that it holds the very same message in
// both route configurations is what makes the two counts agree.
func visitResources(r Resources, v visit, seen map[*routev3.VirtualHost]bool) []error {
	for c := range r.Clusters.Values() {
		visitCluster(c, v)
	}
	for cla := range r.Endpoints.Values() {
		visitAssignment(cla, v)
	}
	var errs []error
	for l := range r.SidecarListeners.Values() {
		errs = append(errs, visitListener(l, sidecarName, connectionManagers, v)...)
	}
	for l := range r.APIListeners.Values() {
		errs = append(errs, visitListener(l, apiName, connectionManagers, v)...)
	}
	if r.Outbound != nil {
		errs = append(errs, visitRoutes(r.Outbound.Name(), r.Outbound.Hosts().Slice(), v, seen)...)
	}
	for rc := range r.Routes.Values() {
		errs = append(errs, visitRoutes(rc.GetName(), rc.GetVirtualHosts(), v, seen)...)
	}
	return errs
}

// visitRoutes visits route configuration rc, which holds hosts: it gives
// its name and wants its virtual hosts' clusters, but those of a virtual
// host in seen, unless seen is nil (see visitResources), and gives their
// domains if it has several; else it returns the domains its one virtual
// host lists twice (see visitDomains).
func visitRoutes(rc string, hosts []*routev3.VirtualHost, v visit, seen map[*routev3.VirtualHost]bool) []error {
	from := origin{noun: nouns[routesName], name: rc}
	v(key{kind: routesName, name: rc}, false, from)
	var errs []error
	for _, vh := range hosts {
		if !sawBefore(seen, vh) {
			visitClusters(vh, from, v)
		}
		if len(hosts) > 1 {
			visitDomains(rc, vh, v)
		} else {
			errs = append(errs, duplicateDomains(rc, vh)...)
		}
	}
	return errs
}

// sawBefore reports whether vh is in seen, and puts it there; a nil seen
// has seen nothing, and stays empty.
func sawBefore(seen map[*routev3.VirtualHost]bool, vh *routev3.VirtualHost) bool {
	if seen == nil {
		return false
	}
	if seen[vh] {
		return true
	}
	seen[vh] = true
	return false
}

// visitCluster: a cluster gives its name; an EDS cluster also gives the
// name it asks EDS for and wants that ClusterLoadAssignment.
func visitCluster(c *clusterv3.Cluster, v visit) {
	v(key{kind: clusterName, name: c.GetName()}, false, origin{noun: "cluster", name: c.GetName()})
	if c.GetType() != clusterv3.Cluster_EDS {
		return
	}
	from := origin{noun: "EDS cluster", name: c.GetName()}
	eds := cmp.Or(c.GetEdsClusterConfig().GetServiceName(), c.GetName())
	v(key{kind: edsName, name: eds}, false, from)
	v(key{kind: assignmentName, name: eds}, true, from)
}

// visitAssignment: an assignment gives its name and wants an EDS cluster
// that asks for it.
func visitAssignment(cla *endpointv3.ClusterLoadAssignment, v visit) {
	from := origin{noun: "ClusterLoadAssignment", name: cla.GetClusterName()}
	v(key{kind: assignmentName, name: cla.GetClusterName()}, false, from)
	v(key{kind: edsName, name: cla.GetClusterName()}, true, from)
}

// hcmsFunc returns the HTTP connection managers of a listener: decoded
// (connectionManagers), or those a Builder built it with.
type hcmsFunc func(*listenerv3.Listener) ([]*hcmv3.HttpConnectionManager, error)

// visitListener: a listener gives its name, as a listener of kind k, and
// wants the route configurations its connection managers name; an inline
// route configuration wants its clusters. It returns the error of a
// connection manager it cannot decode.
func visitListener(l *listenerv3.Listener, k kind, hcms hcmsFunc, v visit) []error {
	v(key{kind: k, name: l.GetName()}, false, origin{noun: nouns[k], name: l.GetName()})
	managers, err := hcms(l)
	if err != nil {
		return []error{fmt.Errorf("listener %q: %w", l.GetName(), err)}
	}
	from := origin{noun: "listener", name: l.GetName()}
	for _, hcm := range managers {
		if rds := hcm.GetRds(); rds != nil {
			v(key{kind: routesName, name: rds.GetRouteConfigName()}, true, from)
		}
		for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
			visitClusters(vh, from, v)
		}
	}
	return nil
}

// visitDomains gives vh's domains within route configuration rc. Envoy
// rejects a route configuration that lists a domain in two virtual hosts
// (or twice in one); the ledger counts the domains of one with several
// virtual hosts, the shared one, so that a Builder need not look at every
// service's domains when one changes, and those of one with a single
// virtual host are checked on their own (see duplicateDomains).
func visitDomains(rc string, vh *routev3.VirtualHost, v visit) {
	from := origin{noun: nouns[routesName], name: rc, vhost: vh.GetName()}
	for _, d := range vh.GetDomains() {
		v(key{kind: domainName, scope: rc, name: d}, false, from)
	}
}

// visitClusters wants every cluster vh's routes send to.
func visitClusters(vh *routev3.VirtualHost, from origin, v visit) {
	from.vhost = vh.GetName()
	for _, route := range vh.GetRoutes() {
		action := route.GetRoute()
		if c := action.GetCluster(); c != "" {
			v(key{kind: clusterName, name: c}, true, from)
		}
		for _, cw := range action.GetWeightedClusters().GetClusters() {
			v(key{kind: clusterName, name: cw.GetName()}, true, from)
		}
	}
}
