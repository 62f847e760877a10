package snapshot

import (
	"cmp"
	"fmt"
	"iter"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// kind is what a name names, in the consistency check: resources give
// names and refer to (want) names, and a snapshot is consistent when every
// wanted name is given and no name is given twice.
type kind uint8

const (
	clusterName    kind = iota
	assignmentName      // a ClusterLoadAssignment's cluster_name
	edsName             // what an EDS cluster asks EDS for: its service_name, or else its own name
	routesName          // a route configuration
	sidecarName         // a sidecar listener
	apiName             // an API listener
	domainName          // a virtual host's domain, within one route configuration (key.scope); the last kind
)

// kinds counts the kinds a ledger keeps one map each of: all but
// domainName, which it keeps per route configuration.
const kinds = domainName

// nouns name the resources whose names a kind holds, for "listed twice".
var nouns = [...]string{
	clusterName:    "cluster",
	assignmentName: "ClusterLoadAssignment",
	edsName:        "EDS service name",
	domainName:     "domain",
	routesName:     "route configuration",
	sidecarName:    "sidecar listener",
	apiName:        "api listener",
}

// key is one name of one kind.
type key struct {
	kind  kind
	scope string // a domainName's route configuration; "" for the other kinds
	name  string
}

// origin says which resource gives or wants a name, for error messages.
type origin struct {
	noun, name string // e.g. "listener", "greeter"
	vhost      string // the virtual host that wants a cluster or gives a domain
}

// visit is called for every name a resource gives (want false) or wants.
type visit func(k key, want bool, from origin)

// tally counts, for one name, the resources that give it (in the upper 32
// bits) and the references to it (in the lower 32 bits): one int64, so
// that counting a name is one map operation.
type tally int64

const (
	oneGiven  tally = 1 << 32
	oneWanted tally = 1
)

func (t tally) given() int64  { return int64(t >> 32) }
func (t tally) wanted() int64 { return int64(t & (oneGiven - 1)) }

// wrong reports whether a name of kind k counted t makes the resources
// inconsistent: given twice (but an EDS name, which clusters may share), or
// wanted and not given.
func (t tally) wrong(k kind) bool {
	return t.given() > 1 && k != edsName || t.wanted() > 0 && t.given() == 0
}

// ledger counts the names a set of resources gives and wants, so that
// taking away the resources that changed and adding their new versions
// tells whether the new set is consistent by looking only at their names,
// without checking every resource again. Its zero value is the empty set.
type ledger struct {
	tallies [kinds]map[string]tally     // a map per kind: smaller, and faster than one keyed by key
	domains map[string]map[string]tally // per route configuration
	broken  int                         // resources found wrong on their own (see visitResources)
}

// names returns the tallies of k's kind (and scope), made if need be.
func (l *ledger) names(k key) map[string]tally {
	if k.kind != domainName {
		return l.tallies[k.kind]
	}
	m := l.domains[k.scope]
	if m == nil {
		m = make(map[string]tally)
		l.domains[k.scope] = m
	}
	return m
}

// count adds sign (1 or -1) times the names of the resources visitAll
// visits; a resource wrong on its own counts as broken. Maps yet to be
// made are made for the names of r.
func (l *ledger) count(sign tally, r Resources, visitAll func(visit) []error) {
	if l.tallies[0] == nil {
		l.make(r)
	}
	var scope string
	var scoped map[string]tally // the domains of scope: most domains come one scope after another
	errs := visitAll(func(k key, want bool, _ origin) {
		var names map[string]tally
		switch {
		case k.kind != domainName:
			names = l.tallies[k.kind]
		case scoped != nil && k.scope == scope:
			names = scoped
		default:
			scope, scoped = k.scope, l.names(k)
			names = scoped
		}
		if want {
			names[k.name] += sign * oneWanted
		} else {
			names[k.name] += sign * oneGiven
		}
	})
	l.broken += int(sign) * len(errs)
}

// make makes l's maps, with room for the names of r.
func (l *ledger) make(r Resources) {
	l.tallies = [kinds]map[string]tally{
		clusterName:    make(map[string]tally, r.Clusters.Len()),
		assignmentName: make(map[string]tally, r.Endpoints.Len()),
		edsName:        make(map[string]tally, r.Clusters.Len()),
		routesName:     make(map[string]tally, 1+r.Routes.Len()),
		sidecarName:    make(map[string]tally, r.SidecarListeners.Len()),
		apiName:        make(map[string]tally, r.APIListeners.Len()),
	}
	l.domains = make(map[string]map[string]tally)
	l.makeDomains(r.Outbound.Name(), r.Outbound.Hosts().Values())
	for rc := range r.Routes.Values() {
		l.makeDomains(rc.GetName(), slices.Values(rc.GetVirtualHosts()))
	}
}

// makeDomains makes the map of the domains of route configuration rc,
// with room for those of vhosts, if it has several virtual hosts (see
// visitDomains).
func (l *ledger) makeDomains(rc string, vhosts iter.Seq[*routev3.VirtualHost]) {
	n, hosts := 0, 0
	for vh := range vhosts {
		n, hosts = n+len(vh.GetDomains()), hosts+1
	}
	if hosts > 1 {
		l.domains[rc] = make(map[string]tally, n)
	}
}

// ok reports whether every counted name is right; O(names).
func (l *ledger) ok() bool {
	if l.broken != 0 {
		return false
	}
	for k, names := range l.tallies {
		for _, t := range names {
			if t.wrong(kind(k)) {
				return false
			}
		}
	}
	for _, names := range l.domains {
		for _, t := range names {
			if t.wrong(domainName) {
				return false
			}
		}
	}
	return true
}

// recheck reports whether the names of the resources visitAll visits are
// right, which is whether l is consistent after counting them if it was
// before: only their names can have gone wrong. It also forgets those of
// them that no resource gives or wants any more.
func (l *ledger) recheck(visitAll func(visit) []error) bool {
	ok := l.broken == 0
	visitAll(func(k key, _ bool, _ origin) {
		names := l.names(k)
		t, counted := names[k.name]
		switch {
		case !counted:
		case t == 0:
			delete(names, k.name)
			if len(names) == 0 && k.kind == domainName {
				delete(l.domains, k.scope)
			}
		case t.wrong(k.kind):
			ok = false
		}
	})
	return ok
}

// explain returns an error for every wrong name of the resources visitAll
// visits, which l has counted, naming who gives or wants it, and the
// errors of the resources that could not be read.
func (l *ledger) explain(visitAll func(visit) []error) []error {
	givers := make(map[key][]origin)
	wanters := make(map[key][]origin)
	var order []key
	errs := visitAll(func(k key, want bool, from origin) {
		if !l.names(k)[k.name].wrong(k.kind) {
			return
		}
		if len(givers[k])+len(wanters[k]) == 0 {
			order = append(order, k)
		}
		if want {
			wanters[k] = append(wanters[k], from)
		} else {
			givers[k] = append(givers[k], from)
		}
	})
	for _, k := range order {
		if k.kind == domainName && l.tallies[routesName][k.scope].given() > 1 {
			continue // the route configuration is listed twice, which says it all
		}
		if len(givers[k]) > 1 {
			errs = append(errs, givenTwice(k, givers[k])...)
		}
		if len(givers[k]) == 0 {
			for _, from := range wanters[k] {
				errs = append(errs, notGiven(k, from))
			}
		}
	}
	return errs
}

// givenTwice explains a name given more than once: a domain once for each
// virtual host after the first that lists it.
func givenTwice(k key, givers []origin) []error {
	if k.kind != domainName {
		return []error{fmt.Errorf("%s %q is listed twice", nouns[k.kind], k.name)}
	}
	var errs []error
	for _, later := range givers[1:] {
		errs = append(errs, domainTwice(k.scope, k.name, givers[0].vhost, later.vhost))
	}
	return errs
}

// notGiven explains a name from wants that nothing gives. Only route
// configurations, clusters, assignments and EDS service names are wanted.
func notGiven(k key, from origin) error {
	switch k.kind {
	case routesName:
		return fmt.Errorf("%s %q references route configuration %q, which is not served", from.noun, from.name, k.name)
	case clusterName:
		return fmt.Errorf("%s %q (virtual host %q) references cluster %q, which is not served", from.noun, from.name, from.vhost, k.name)
	case assignmentName:
		return fmt.Errorf("EDS cluster %q has no ClusterLoadAssignment %q", from.name, k.name)
	default: // edsName
		return fmt.Errorf("ClusterLoadAssignment %q belongs to no EDS cluster", from.name)
	}
}

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
		errs = append(errs, visitSharedRoutes(r.Outbound, v, seen)...)
	}
	for rc := range r.Routes.Values() {
		visitRouteConfiguration(rc, v, seen)
		if len(rc.GetVirtualHosts()) > 1 {
			for _, vh := range rc.GetVirtualHosts() {
				visitDomains(rc.GetName(), vh, v)
			}
		} else {
			errs = append(errs, duplicateDomains(rc)...)
		}
	}
	return errs
}

// visitSharedRoutes visits s as visitRouteConfiguration would visit it
// whole, and gives its domains if it has several virtual hosts; else it
// returns the domains its virtual host lists twice.
func visitSharedRoutes(s *SharedRoutes, v visit, seen map[*routev3.VirtualHost]bool) []error {
	from := origin{noun: nouns[routesName], name: s.Name()}
	v(key{kind: routesName, name: s.Name()}, false, from)
	counted := s.Hosts().Len() > 1
	for vh := range s.Hosts().Values() {
		if !sawBefore(seen, vh) {
			visitClusters(vh, from, v)
		}
		if counted {
			visitDomains(s.Name(), vh, v)
		}
	}
	if counted {
		return nil
	}
	return duplicateDomains(s.Message())
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

// visitRouteConfiguration: a route configuration gives its name and wants
// its virtual hosts' clusters, but those of a virtual host in seen, unless
// seen is nil (see visitResources).
func visitRouteConfiguration(rc *routev3.RouteConfiguration, v visit, seen map[*routev3.VirtualHost]bool) {
	from := origin{noun: nouns[routesName], name: rc.GetName()}
	v(key{kind: routesName, name: rc.GetName()}, false, from)
	for _, vh := range rc.GetVirtualHosts() {
		if !sawBefore(seen, vh) {
			visitClusters(vh, from, v)
		}
	}
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
