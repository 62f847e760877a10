package snapshot

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"

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
	services []*builtService // the last build's, sorted by name
	routes   hashed[*routev3.RouteConfiguration]
	sidecar  hashed[*listenerv3.Listener]
	ledger   ledger // the names of the last build's resources (see recount)
	buf      []byte // scratch space for encoding, reused across builds
}

// hashed is a validated resource with the digest of its deterministic
// encoding.
type hashed[M resource] struct {
	msg M
	sum digest
}

// builtService is one service's inputs and what was built from them.
type builtService struct {
	svc        discovery.Service
	routing    policy.Routing
	hasPolicy  bool
	report     serviceReport
	clusters   []hashed[*clusterv3.Cluster]
	endpoints  []hashed[*endpointv3.ClusterLoadAssignment]
	listener   hashed[*listenerv3.Listener]
	hcms       []*hcmv3.HttpConnectionManager // listener's one, for the consistency check
	vhost      *routev3.VirtualHost
	vhostField []byte                              // vhost as a virtual_hosts field, see virtualHostField
	routes     hashed[*routev3.RouteConfiguration] // holds vhost alone, for listener
}

// unbuilt stands for the last build of a service that had none: nothing
// to reuse. It is only read.
var unbuilt = new(builtService)

// Build returns the resources for in, reusing what an earlier Build made
// for services whose inputs are unchanged.
func (b *Builder) Build(in Input) (*Snapshot, error) {
	in = withDefaults(in)
	services := in.Model.Services()
	built, errs := b.buildServices(services, in.Routing)
	p := newParts(len(services))
	for i, bs := range built {
		if errs[i] == nil {
			p.add(bs)
		}
	}
	routes, err := routeConfiguration(&b.buf, b.routes, RouteConfigName, p.vhosts, p.vhostFields)
	errs = append(errs, err)
	sidecar, err := hashResource(&b.buf, listenerType,
		envoy.HTTPListener(SidecarListenerName, in.SidecarAddress, in.SidecarPort, RouteConfigName),
		(*listenerv3.Listener).GetName, []hashed[*listenerv3.Listener]{b.sidecar})
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("snapshot: built invalid resources: %w", err)
	}
	snap, d := p.snapshot(routes, sidecar)
	snap.Report.UnknownServices = unknownServices(in.Model, in.Routing)
	// Every service built (else Build returned above), so built holds them all.
	recounted, err := b.recount(snap.Resources, built, routes.msg, sidecar.msg)
	if err != nil {
		return nil, fmt.Errorf("snapshot: built inconsistent resources: %w", err)
	}
	snap.Report.Recounted = recounted
	snap.Version = version(d)
	b.services, b.routes, b.sidecar = built, routes, sidecar
	return snap, nil
}

// buildServices returns service of each of svcs, in order, and the
// errors. svcs, like b.services, are sorted by name: walking both in step
// finds each service's last build without a map.
func (b *Builder) buildServices(svcs []discovery.Service, routing map[string]policy.Routing) ([]*builtService, []error) {
	built := make([]*builtService, len(svcs))
	errs := make([]error, len(svcs))
	last := b.services
	for i, svc := range svcs {
		for len(last) > 0 && last[0].svc.Name < svc.Name {
			last = last[1:]
		}
		var prev *builtService
		if len(last) > 0 && last[0].svc.Name == svc.Name {
			prev = last[0]
		}
		built[i], errs[i] = b.service(&b.buf, svc, routing, prev)
	}
	return built, errs
}

// service returns svc's resources: prev, its last build (nil if none), if
// its instances and routing are unchanged, else new ones. buf is scratch
// space for encoding.
func (b *Builder) service(buf *[]byte, svc discovery.Service, routing map[string]policy.Routing, prev *builtService) (*builtService, error) {
	r, hasPolicy := routing[svc.Name]
	if prev == nil {
		prev = unbuilt
	} else if prev.hasPolicy == hasPolicy && slices.Equal(prev.svc.Instances, svc.Instances) && routingEqual(prev.routing, r) {
		return prev, nil
	}
	out := buildService(svc, r, hasPolicy)
	bs := &builtService{svc: svc, routing: r, hasPolicy: hasPolicy, report: out.report}
	var errs [5]error
	bs.clusters, errs[0] = hashAll(buf, clusterType, out.clusters, (*clusterv3.Cluster).GetName, prev.clusters)
	bs.endpoints, errs[1] = hashAll(buf, endpointType, out.endpoints,
		(*endpointv3.ClusterLoadAssignment).GetClusterName, prev.endpoints)
	routeConfigName := ServiceRouteConfigName(svc.Name)
	hcm := envoy.HTTPConnectionManager(svc.Name, routeConfigName)
	bs.listener, errs[2] = hashResource(buf, listenerType, envoy.APIListener(svc.Name, hcm),
		(*listenerv3.Listener).GetName, []hashed[*listenerv3.Listener]{prev.listener})
	bs.hcms = prev.hcms
	if bs.listener.msg != prev.listener.msg {
		bs.hcms = []*hcmv3.HttpConnectionManager{hcm}
	}
	bs.vhost, bs.vhostField, errs[3] = virtualHost(buf, out.vhost, prev)
	bs.routes, errs[4] = routeConfiguration(buf, prev.routes, routeConfigName,
		[]*routev3.VirtualHost{bs.vhost}, [][]byte{bs.vhostField})
	return bs, errors.Join(errs[:]...)
}

// routingEqual reports whether a and b are the same routing, at a fraction
// of reflect.DeepEqual's cost, which Build would pay for every service.
// TestRoutingEqualComparesEveryField fails when policy adds a field.
func routingEqual(a, b policy.Routing) bool {
	return maps.Equal(a.Weights, b.Weights) &&
		slices.EqualFunc(a.Matches, b.Matches, func(x, y policy.MatchRoute) bool {
			return x.Version == y.Version && slices.Equal(x.Conditions, y.Conditions)
		}) &&
		(a.Sticky == b.Sticky || a.Sticky != nil && b.Sticky != nil && *a.Sticky == *b.Sticky)
}

// hashAll returns hashResource of every one of ms.
func hashAll[M resource](buf *[]byte, typ string, ms []M, name func(M) string, prev []hashed[M]) ([]hashed[M], error) {
	out := make([]hashed[M], 0, len(ms))
	var errs []error
	for _, m := range ms {
		h, err := hashResource(buf, typ, m, name, prev)
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
// m, validated, with its digest. buf is scratch space for encoding.
func hashResource[M resource](buf *[]byte, typ string, m M, name func(M) string, prev []hashed[M]) (hashed[M], error) {
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
	if err := m.ValidateAll(); err != nil {
		return hashed[M]{}, fmt.Errorf("%s %q: %w", typ, name(m), err)
	}
	return hashed[M]{m, sum}, nil
}

// virtualHost returns prev's virtual host if it encodes like vh, else vh,
// validated; and its encoding as a virtual_hosts field. buf is scratch
// space for encoding.
func virtualHost(buf *[]byte, vh *routev3.VirtualHost, prev *builtService) (*routev3.VirtualHost, []byte, error) {
	field, err := virtualHostField(vh, buf)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal %s %q: virtual host %q: %w", routeType, RouteConfigName, vh.GetName(), err)
	}
	if bytes.Equal(field, prev.vhostField) {
		return prev.vhost, prev.vhostField, nil
	}
	if err := vh.ValidateAll(); err != nil {
		return nil, nil, fmt.Errorf("%s %q: virtual host %q: %w", routeType, RouteConfigName, vh.GetName(), err)
	}
	return vh, field, nil
}

// routeConfiguration returns the route configuration name holding vhosts:
// last if it holds these very virtual hosts, else a new one. fields are the
// virtual hosts' encodings (see virtualHostField); they were validated with
// their services, so neither they nor unchanged ones are encoded again.
// buf is scratch space for encoding.
func routeConfiguration(buf *[]byte, last hashed[*routev3.RouteConfiguration], name string, vhosts []*routev3.VirtualHost, fields [][]byte) (hashed[*routev3.RouteConfiguration], error) {
	if last.msg != nil && last.msg.GetName() == name && slices.Equal(last.msg.GetVirtualHosts(), vhosts) {
		return last, nil
	}
	// Validate and encode the other fields before the virtual hosts join
	// them: rc is nobody else's yet, and this saves copying it without them
	// (see withoutVirtualHosts).
	rc := envoy.RouteConfiguration(name, nil)
	if err := rc.ValidateAll(); err != nil {
		return hashed[*routev3.RouteConfiguration]{}, fmt.Errorf("%s %q: %w", routeType, rc.GetName(), err)
	}
	rest, err := envoy.AppendDeterministic((*buf)[:0], rc)
	*buf = rest
	if err != nil {
		return hashed[*routev3.RouteConfiguration]{}, fmt.Errorf("marshal %s %q: %w", routeType, rc.GetName(), err)
	}
	rc.VirtualHosts = vhosts
	return hashed[*routev3.RouteConfiguration]{rc, routesDigest(rest, fields)}, nil
}

// parts gathers what every service contributes to one snapshot.
type parts struct {
	clusters    []hashed[*clusterv3.Cluster]
	endpoints   []hashed[*endpointv3.ClusterLoadAssignment]
	listeners   []hashed[*listenerv3.Listener]
	routes      []hashed[*routev3.RouteConfiguration] // the services' own
	vhosts      []*routev3.VirtualHost
	vhostFields [][]byte
	report      Report
}

// newParts returns parts sized for services with two versions each.
func newParts(services int) *parts {
	return &parts{
		clusters:    make([]hashed[*clusterv3.Cluster], 0, 2*services),
		endpoints:   make([]hashed[*endpointv3.ClusterLoadAssignment], 0, 2*services),
		listeners:   make([]hashed[*listenerv3.Listener], 0, services),
		routes:      make([]hashed[*routev3.RouteConfiguration], 0, services+1),
		vhosts:      make([]*routev3.VirtualHost, 0, services),
		vhostFields: make([][]byte, 0, services),
	}
}

// add gathers bs. Build adds services in name order, which keeps the
// virtual hosts and the report sorted.
func (p *parts) add(bs *builtService) {
	p.clusters = append(p.clusters, bs.clusters...)
	p.endpoints = append(p.endpoints, bs.endpoints...)
	p.listeners = append(p.listeners, bs.listener)
	p.routes = append(p.routes, bs.routes)
	p.vhosts = append(p.vhosts, bs.vhost)
	p.vhostFields = append(p.vhostFields, bs.vhostField)
	p.report.add(bs.svc.Name, bs.report)
}

// snapshot returns the gathered resources, each slice sorted by name, and
// their digests.
func (p *parts) snapshot(routes hashed[*routev3.RouteConfiguration], sidecar hashed[*listenerv3.Listener]) (*Snapshot, digests) {
	snap := &Snapshot{Report: p.report}
	var d digests
	snap.Clusters, d.clusters = sortedByName(p.clusters, (*clusterv3.Cluster).GetName)
	snap.Endpoints, d.endpoints = sortedByName(p.endpoints, (*endpointv3.ClusterLoadAssignment).GetClusterName)
	snap.APIListeners, d.api = sortedByName(p.listeners, (*listenerv3.Listener).GetName)
	snap.SidecarListeners, d.sidecar = []*listenerv3.Listener{sidecar.msg}, []digest{sidecar.sum}
	snap.Routes, d.routes = sortedByName(append(p.routes, routes), (*routev3.RouteConfiguration).GetName)
	return snap, d
}

// sortedByName sorts items by name and splits them into messages and digests.
// Services come sorted, but ClusterName's "/" separator does not sort like
// the service name alone ("a/v1" > "a-b/v1" although "a" < "a-b").
func sortedByName[M resource](items []hashed[M], name func(M) string) ([]M, []digest) {
	slices.SortFunc(items, func(a, b hashed[M]) int { return cmp.Compare(name(a.msg), name(b.msg)) })
	msgs := make([]M, len(items))
	sums := make([]digest, len(items))
	for i, it := range items {
		msgs[i], sums[i] = it.msg, it.sum
	}
	return msgs, sums
}
