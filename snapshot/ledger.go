package snapshot

import (
	"fmt"
	"iter"
	"slices"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
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
