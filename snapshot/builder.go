package snapshot

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/envoy"
	"github.com/weir-mesh/weir/policy"
)

// Builder builds snapshots like Build, but remembers what it built last: a
// service whose instances and routing did not change reuses its resources —
// the very same messages, validated and hashed once — and a rebuilt
// resource that encodes as before stays the message it was, so an xDS cache
// that remembers messages need not marshal it again either. A service's
// own route configuration (see ServiceRouteConfigName) is a per-service
// resource like its clusters; the shared one is a new message only when a
// virtual host changed, and even then only the changed virtual hosts are
// encoded again. The result is the same as Build's. Its zero value is
// ready for use; it is not safe for concurrent use, and must not be copied
// after its first Build (its ledger's maps would be shared).
type Builder struct {
	services List[*builtService] // the last build's, sorted by name
	index    map[string]int      // where each of services is, by name
	model    discovery.Model     // the last build's
	routing  policy.Table        // the last build's Input.Routing
	// policies are the routing of each of services that has a policy, as
	// it was built: a map of values, which compares with the next
	// build's routing without visiting every built service.
	policies map[string]policy.Routing
	noted    []*builtService // the last build's services with findings to report, sorted by name
	routes   *SharedRoutes
	sidecar  hashed[*listenerv3.Listener]
	ledger   ledger        // the names of the last build's resources (see recount)
	last     *lists        // the last build's lists (see Builder.lists)
	buf      []byte        // scratch space for encoding, reused across builds
	shapes   clusterShapes // of the clusters validated so far
}

// hashed is a validated resource with the digest of its deterministic
// encoding.
type hashed[M resource] struct {
	msg M
	sum digest
}

// builtService is one service's inputs and what was built from them.
type builtService struct {
	svc       discovery.Service
	routing   policy.Routing
	hasPolicy bool
	report    serviceReport
	clusters  []hashed[*clusterv3.Cluster]
	endpoints []hashed[*endpointv3.ClusterLoadAssignment]
	listener  hashed[*listenerv3.Listener]
	hcms      []*hcmv3.HttpConnectionManager // listener's one, for the consistency check
	vhost     *routev3.VirtualHost
	vhostSum  digest                              // of vhost
	routes    hashed[*routev3.RouteConfiguration] // holds vhost alone, for listener
	// hcm backs hcms, allocated with the rest. A later build that keeps
	// the listener copies it rather than sharing hcms: a slice into this
	// builtService would keep all of it alive, old instances included.
	hcm [1]*hcmv3.HttpConnectionManager
}

// unbuilt stands for the last build of a service that had none: nothing
// to reuse. It is only read.
var unbuilt = new(builtService)

// Build returns the resources for in, reusing what an earlier Build made
// for services whose inputs are unchanged. When in.Model came from the last
// build's model through discovery.Model.Next and no service came or went,
// only the services whose instances changed (the model's history names
// them) or whose routing changed (in.Routing's history names them, when
// it follows the last build's table; else every policy is compared with
// what its service was built with) are looked at, rather than every
// service, and the snapshot's lists share all but the changed resources
// with the last build's: the work follows the change, not the catalog,
// RouteConfigName's list of every service's virtual host included (see
// SharedRoutes).
func (b *Builder) Build(in Input) (*Snapshot, error) {
	in = withDefaults(in)
	built, ch, err := b.buildServices(in)
	if err != nil {
		return nil, fmt.Errorf("snapshot: built invalid resources: %w", err)
	}
	l := b.lists(built, ch)
	routes, routesErr := sharedRoutes(&b.buf, b.routes, RouteConfigName, l.vhosts, l.vhostSum)
	sidecar, sidecarErr := hashResource(&b.buf, listenerType,
		envoy.HTTPListener(SidecarListenerName, in.SidecarAddress, in.SidecarPort, RouteConfigName),
		(*listenerv3.Listener).GetName, validateAll, []hashed[*listenerv3.Listener]{b.sidecar})
	if err := errors.Join(routesErr, sidecarErr); err != nil {
		return nil, fmt.Errorf("snapshot: built invalid resources: %w", err)
	}
	snap, sums := l.snapshot(routes, sidecar, b.last)
	recounted, err := b.recount(snap.Resources, built, ch, routes, sidecar.msg)
	if err != nil {
		return nil, fmt.Errorf("snapshot: built inconsistent resources: %w", err)
	}
	b.services, b.model, b.routing, b.routes, b.sidecar, b.last = built, in.Model, in.Routing, routes, sidecar, l
	b.reindex(ch)
	b.repolicy(ch)
	b.noted = b.notedAfter(ch)
	snap.Report = report(b.noted, len(b.policies), in)
	snap.Report.Recounted = recounted
	snap.Version = sums.version()
	return snap, nil
}

// repolicy updates b.policies to b.services, which differ from the last
// build's by ch.
func (b *Builder) repolicy(ch serviceChanges) {
	if b.policies == nil {
		b.policies = make(map[string]policy.Routing)
	}
	for _, bs := range ch.gone {
		delete(b.policies, bs.svc.Name)
	}
	for _, bs := range ch.came {
		if bs.hasPolicy {
			b.policies[bs.svc.Name] = bs.routing
		}
	}
}

// reindex updates b.index to b.services, which differ from the last
// build's by ch: when no service came or went, every one is where it was.
func (b *Builder) reindex(ch serviceChanges) {
	if b.index != nil && ch.sameSet {
		return
	}
	b.index = make(map[string]int, b.services.Len())
	for i, bs := range b.services.All() {
		b.index[bs.svc.Name] = i
	}
}

// notedAfter returns the services with findings to report after a build
// whose services differ from the last build's by ch, in name order.
func (b *Builder) notedAfter(ch serviceChanges) []*builtService {
	var came []*builtService
	for _, bs := range ch.came {
		if bs.report.any() {
			came = append(came, bs)
		}
	}
	if len(b.noted) == 0 && len(came) == 0 {
		return nil
	}
	gone := make(map[*builtService]bool, len(ch.gone))
	for _, bs := range ch.gone {
		gone[bs] = true
	}
	noted := slices.DeleteFunc(slices.Clone(b.noted), func(bs *builtService) bool { return gone[bs] })
	noted = append(noted, came...)
	slices.SortFunc(noted, byServiceName)
	return noted
}

func byServiceName(a, b *builtService) int { return cmp.Compare(a.svc.Name, b.svc.Name) }

// report returns what an operator should know about a build: the findings
// of noted, its services that have any, in name order, and the services
// that have a policy but that in's model does not know. withPolicy is how
// many of its services have a policy: when every policy has a service, no
// policy's service is unknown, and none is looked up.
func report(noted []*builtService, withPolicy int, in Input) Report {
	var r Report
	for _, bs := range noted {
		r.add(bs.svc.Name, bs.report)
	}
	if withPolicy < in.Routing.Len() { // else every policy's service is known
		r.UnknownServices = unknownServices(in.Model, in.Routing)
	}
	return r
}

// buildServices returns the build of each of in's services, in name order,
// and how they differ from the last build's, or the errors. It looks only
// at the services that may have changed when it can tell which (see
// changedSince and rebuilt), else at all of them.
func (b *Builder) buildServices(in Input) (List[*builtService], serviceChanges, error) {
	if names, ok := b.changedSince(in); ok {
		if built, ch, ok, err := b.rebuilt(names, in); ok {
			return built, ch, err
		}
	}
	return b.buildAll(in.Model.Services(), in.Routing)
}

// changedSince returns the names of the services whose instances or
// routing may differ from the last build's, and whether it could tell.
// The routing table tells which services' routing changed when it follows
// the last build's (see policy.Table.ChangedSince); else every policy is
// compared with what its service was built with.
func (b *Builder) changedSince(in Input) ([]string, bool) {
	if b.last == nil {
		return nil, false
	}
	names, ok := in.Model.ChangedSince(b.model)
	if !ok {
		return nil, false
	}
	if routed, ok := in.Routing.ChangedSince(b.routing); ok {
		names = append(names, routed...)
	} else {
		names = append(names, b.changedRouting(in.Routing)...)
	}
	slices.Sort(names)
	return slices.Compact(names), true
}

// changedRouting returns, in no order, the last build's services whose
// routing in routing differs from what they were built with (see
// b.policies). A policy without a service has nothing built; discovery's
// model names the service when it comes.
func (b *Builder) changedRouting(routing policy.Table) []string {
	var changed []string
	kept := 0 // policies of the last build still in routing
	for name, r := range routing.All() {
		last, had := b.policies[name]
		if had {
			kept++
		}
		if had && routingEqual(last, r) {
			continue
		}
		if _, built := b.index[name]; built {
			changed = append(changed, name)
		}
	}
	if kept < len(b.policies) { // some service's policy is gone
		for name := range b.policies {
			if _, ok := routing.Get(name); !ok {
				changed = append(changed, name)
			}
		}
	}
	return changed
}

// sameMap reports whether a and b are the very same map (or both nil).
func sameMap[M ~map[K]V, K comparable, V any](a, b M) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// rebuilt returns the build of each of in's services when only those
// named, sorted, may differ from the last build's: the last build's
// services, with those named built again. It reports false, having built
// nothing, when one of them came or went, which moves the others.
func (b *Builder) rebuilt(names []string, in Input) (List[*builtService], serviceChanges, bool, error) {
	at := make([]int, len(names)) // -1: neither built last time nor known now
	svcs := make([]discovery.Service, len(names))
	for k, name := range names {
		i, built := b.index[name]
		svc, known := in.Model.Service(name)
		if built != known {
			return List[*builtService]{}, serviceChanges{}, false, nil
		}
		at[k], svcs[k] = -1, svc
		if built {
			at[k] = i
		}
	}
	built := b.services
	ch := serviceChanges{sameSet: true}
	var errs []error
	for k, i := range at {
		if i < 0 {
			continue
		}
		prev := built.At(i)
		bs, err := b.service(&b.buf, svcs[k], in.Routing, prev)
		if err != nil {
			errs = append(errs, err)
		}
		set(&built, i, bs)
		ch.add(i, prev, bs)
	}
	return built, ch, true, errors.Join(errs...)
}

// buildAll returns the build of each of svcs and how they differ from the
// last build's, or the errors. svcs, like b.services, are sorted by name:
// walking both in step finds each service's last build without a map.
func (b *Builder) buildAll(svcs []discovery.Service, routing policy.Table) (List[*builtService], serviceChanges, error) {
	built := make([]*builtService, len(svcs))
	ch := serviceChanges{sameSet: true}
	var errs []error
	last := b.services.Slice()
	for i, svc := range svcs {
		for len(last) > 0 && last[0].svc.Name < svc.Name {
			ch.gone, last, ch.sameSet = append(ch.gone, last[0]), last[1:], false
		}
		var prev *builtService
		if len(last) > 0 && last[0].svc.Name == svc.Name {
			prev, last = last[0], last[1:]
		}
		var err error
		if built[i], err = b.service(&b.buf, svc, routing, prev); err != nil {
			errs = append(errs, err)
		}
		ch.add(i, prev, built[i])
	}
	if len(last) > 0 {
		ch.gone, ch.sameSet = append(ch.gone, last...), false
	}
	return ListOf(built...), ch, errors.Join(errs...)
}

// serviceChanges is how a build's services differ from the last build's.
type serviceChanges struct {
	gone    []*builtService // the last build's services that are gone or rebuilt
	came    []*builtService // the services that are new or rebuilt
	rebuilt []int           // the indexes, among the build's services, of those rebuilt
	sameSet bool            // whether no service came or went
}

// add records that the build's i-th service is bs, whose last build was
// prev (nil if it had none).
func (ch *serviceChanges) add(i int, prev, bs *builtService) {
	switch {
	case bs == prev:
	case prev == nil:
		ch.came, ch.sameSet = append(ch.came, bs), false
	default:
		ch.gone, ch.came, ch.rebuilt = append(ch.gone, prev), append(ch.came, bs), append(ch.rebuilt, i)
	}
}

// service returns svc's resources: prev, its last build (nil if none), if
// its instances and routing are unchanged, else new ones. buf is scratch
// space for encoding.
func (b *Builder) service(buf *[]byte, svc discovery.Service, routing policy.Table, prev *builtService) (*builtService, error) {
	r, hasPolicy := routing.Get(svc.Name)
	if prev == nil {
		prev = unbuilt
	} else if prev.hasPolicy == hasPolicy && slices.Equal(prev.svc.Instances, svc.Instances) && routingEqual(prev.routing, r) {
		return prev, nil
	}
	out := buildService(svc, r, hasPolicy)
	bs := &builtService{svc: svc, routing: r, hasPolicy: hasPolicy, report: out.report}
	var errs [5]error
	bs.clusters, errs[0] = hashAll(buf, clusterType, out.clusters, (*clusterv3.Cluster).GetName, b.shapes.validate, prev.clusters)
	bs.endpoints, errs[1] = hashAll(buf, endpointType, out.endpoints,
		(*endpointv3.ClusterLoadAssignment).GetClusterName, validateAll, prev.endpoints)
	routeConfigName := ServiceRouteConfigName(svc.Name)
	hcm := envoy.HTTPConnectionManager(svc.Name, routeConfigName)
	bs.listener, errs[2] = hashResource(buf, listenerType, envoy.APIListener(svc.Name, hcm),
		(*listenerv3.Listener).GetName, validateAll, []hashed[*listenerv3.Listener]{prev.listener})
	bs.hcm = prev.hcm
	if bs.listener.msg != prev.listener.msg {
		bs.hcm[0] = hcm
	}
	bs.hcms = bs.hcm[:]
	bs.vhost, bs.vhostSum, errs[3] = virtualHost(buf, out.vhost, prev)
	var vhostSum digestSum
	vhostSum.add(&bs.vhostSum)
	// A list of its own, not one inside bs: a later build may keep the
	// route configuration, and with it whatever its list points into.
	bs.routes, errs[4] = routeConfiguration(buf, prev.routes, routeConfigName, []*routev3.VirtualHost{bs.vhost}, vhostSum)
	return bs, errors.Join(errs[:]...)
}

// routingEqual reports whether a and b are the same routing, at a fraction
// of reflect.DeepEqual's cost, which Build would pay for every service.
// TestRoutingEqualComparesEveryField fails when policy adds a field.
func routingEqual(a, b policy.Routing) bool {
	return (sameMap(a.Weights, b.Weights) || maps.Equal(a.Weights, b.Weights)) &&
		slices.EqualFunc(a.Matches, b.Matches, func(x, y policy.MatchRoute) bool {
			return x.Version == y.Version && slices.Equal(x.Conditions, y.Conditions)
		}) &&
		(a.Sticky == b.Sticky || a.Sticky != nil && b.Sticky != nil && *a.Sticky == *b.Sticky)
}

// hashAll returns hashResource of every one of ms.
func hashAll[M resource](buf *[]byte, typ string, ms []M, name func(M) string, validate func(M, []byte) error, prev []hashed[M]) ([]hashed[M], error) {
	out := make([]hashed[M], 0, len(ms))
	var errs []error
	for _, m := range ms {
		h, err := hashResource(buf, typ, m, name, validate, prev)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, h)
	}
	return out, errors.Join(errs...)
}

// hashResource returns the one of prev with m's name and encoding, if there
// is one, so that an unchanged resource stays the very same message; else
// m, validated by validate (given m and its encoding), with its digest.
// buf is scratch space for encoding.
func hashResource[M resource](buf *[]byte, typ string, m M, name func(M) string, validate func(M, []byte) error, prev []hashed[M]) (hashed[M], error) {
	sum, b, err := digestOf(m, *buf)
	*buf = b
	if err != nil {
		return hashed[M]{}, fmt.Errorf("marshal %s %q: %w", typ, name(m), err)
	}
	for _, p := range prev {
		if p.sum == sum && name(p.msg) == name(m) {
			return p, nil
		}
	}
	if err := validate(m, *buf); err != nil {
		return hashed[M]{}, fmt.Errorf("%s %q: %w", typ, name(m), err)
	}
	return hashed[M]{m, sum}, nil
}

// validateAll is m.ValidateAll(), for hashResource.
func validateAll[M resource](m M, _ []byte) error { return m.ValidateAll() }

// virtualHost returns prev's virtual host if it encodes like vh, else vh,
// validated; and its digest. buf is scratch space for encoding.
func virtualHost(buf *[]byte, vh *routev3.VirtualHost, prev *builtService) (*routev3.VirtualHost, digest, error) {
	sum, b, err := digestOf(vh, *buf)
	*buf = b
	if err != nil {
		return nil, digest{}, fmt.Errorf("marshal %s %q: virtual host %q: %w", routeType, RouteConfigName, vh.GetName(), err)
	}
	if prev.vhost != nil && sum == prev.vhostSum {
		return prev.vhost, prev.vhostSum, nil
	}
	if err := validateVirtualHost(vh); err != nil {
		return nil, digest{}, fmt.Errorf("%s %q: virtual host %q: %w", routeType, RouteConfigName, vh.GetName(), err)
	}
	return vh, sum, nil
}

// domainRule is the rule go-control-plane's validator checks each of a
// virtual host's domains against (a header value, not strict).
const domainRule = "^[^\x00\n\r]*$"

// validateVirtualHost is vh.ValidateAll() with the domains after the first
// checked without a regular expression: matching domainRule against every
// domain took a tenth of a full build. They are checked by the same rule,
// which rejects NUL, LF and CR, and the rest of vh, with its first domain,
// by its validator. vh must be nobody else's: its domains are set aside
// while the validator runs.
func validateVirtualHost(vh *routev3.VirtualHost) error {
	domains := vh.GetDomains()
	for i, d := range domains[min(1, len(domains)):] {
		if strings.ContainsAny(d, "\x00\n\r") {
			return fmt.Errorf("invalid VirtualHost.Domains[%d]: value does not match regex pattern %q", i+1, domainRule)
		}
	}
	if len(domains) > 1 {
		vh.Domains = domains[:1]
		defer func() { vh.Domains = domains }()
	}
	return vh.ValidateAll()
}

// routeConfiguration returns the route configuration name holding vhosts,
// whose digests add up to vhostSum: last if it is the same, else a new
// one. The virtual hosts were validated and hashed with their services, so
// none is encoded again. buf is scratch space for encoding.
func routeConfiguration(buf *[]byte, last hashed[*routev3.RouteConfiguration], name string, vhosts []*routev3.VirtualHost, vhostSum digestSum) (hashed[*routev3.RouteConfiguration], error) {
	// Encode (and, if it is new, validate) the other fields before the
	// virtual hosts join them: rc is nobody else's yet, and this saves
	// copying it without them (see withoutVirtualHosts).
	rc := envoy.RouteConfiguration(name, nil)
	rest, err := envoy.AppendDeterministic((*buf)[:0], rc)
	*buf = rest
	if err != nil {
		return hashed[*routev3.RouteConfiguration]{}, fmt.Errorf("marshal %s %q: %w", routeType, rc.GetName(), err)
	}
	sum := routesDigest(rest, vhostSum)
	if last.msg != nil && last.sum == sum {
		return last, nil
	}
	if err := rc.ValidateAll(); err != nil {
		return hashed[*routev3.RouteConfiguration]{}, fmt.Errorf("%s %q: %w", routeType, rc.GetName(), err)
	}
	rc.VirtualHosts = vhosts
	return hashed[*routev3.RouteConfiguration]{rc, sum}, nil
}
