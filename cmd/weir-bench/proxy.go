package main

import (
	"context"
	"maps"
	"slices"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// proxy is one simulated xDS client on one ADS stream. Both shapes follow
// the route configuration names in the listeners they receive, as Envoy and
// grpc-go do, rather than assume weir's. Envoy-shaped proxies subscribe to
// LDS and CDS by wildcard, then to RDS by the name in the sidecar
// listener's filter chain (weir_outbound) and to EDS by the cluster names
// CDS returned. gRPC-shaped proxies subscribe to LDS by their service's
// name, then to RDS by the name in its api_listener (their service's own
// route configuration), then to CDS and EDS by the clusters their
// service's virtual host names. Every response is ACKed at once and the
// ACK reported to the fleet. Over delta xDS the same subscriptions are
// made incrementally (wildcard the legacy way: no names).
type proxy struct {
	idx   int
	grpc  bool
	svc   string // the service a gRPC-shaped proxy calls
	node  *corev3.Node
	fleet *fleet
	// verify makes this proxy parse every route and endpoint response, even
	// once settled, so that the harness can check that what it timed is
	// the change it made.
	verify bool

	stream transport
	subs   map[string]*subscription // by type URL
}

// subscription is what a proxy asked for and last ACKed of one type.
type subscription struct {
	names   []string // nil: wildcard
	version string
	nonce   string
	known   map[string]bool // delta: resources held, by name
}

// response is a SotW or delta response reduced to what a proxy uses.
type response struct {
	typeURL, version, nonce string
	resources               []*anypb.Any
	delta                   bool
	names                   []string // delta: resources added or updated
	removed                 []string // delta
}

// transport is an ADS stream of either protocol.
type transport interface {
	subscribe(typeURL string, sub *subscription, previous []string) error
	ack(typeURL string, sub *subscription) error
	recv() (response, error)
}

func (p *proxy) run(ctx context.Context, conn *grpc.ClientConn, delta bool) error {
	var err error
	if delta {
		client := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
		var s discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
		s, err = client.DeltaAggregatedResources(ctx)
		p.stream = &deltaStream{node: p.node, s: s}
	} else {
		var s grpc.ClientStream
		s, err = openSotw(ctx, conn)
		p.stream = &sotwStream{node: p.node, s: s, nodeOnce: p.grpc, bodies: p.needsBodies}
	}
	if err != nil {
		return err
	}
	p.subs = map[string]*subscription{}
	if p.grpc {
		err = p.subscribe(resourcev3.ListenerType, []string{p.svc})
	} else {
		err = p.subscribe(resourcev3.ListenerType, nil)
		if err == nil {
			err = p.subscribe(resourcev3.ClusterType, nil)
		}
	}
	for err == nil {
		var resp response
		if resp, err = p.stream.recv(); err == nil {
			err = p.handle(resp)
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// subscribe asks for names of typeURL (nil: wildcard).
func (p *proxy) subscribe(typeURL string, names []string) error {
	sub := p.subs[typeURL]
	if sub == nil {
		sub = &subscription{known: map[string]bool{}}
		p.subs[typeURL] = sub
	}
	previous := sub.names
	sub.names = names
	return p.stream.subscribe(typeURL, sub, previous)
}

// handle ACKs resp and follows up with the subscriptions it implies.
func (p *proxy) handle(resp response) error {
	sub := p.subs[resp.typeURL]
	if sub == nil {
		return nil // not asked for
	}
	changed := sub.version != resp.version
	sub.version, sub.nonce = resp.version, resp.nonce
	for _, n := range resp.removed {
		delete(sub.known, n)
	}
	for _, n := range resp.names {
		sub.known[n] = true
	}
	if err := p.stream.ack(resp.typeURL, sub); err != nil {
		return err
	}
	p.fleet.acked(p.idx, resp.typeURL, sub.version, time.Now())
	if p.verify {
		p.fleet.observe(resp)
	}
	if !changed || p.fleet.settled.Load() {
		return nil
	}
	switch {
	case resp.typeURL == resourcev3.ListenerType:
		return p.follow(resourcev3.RouteType, routeConfigNames(resp.resources, p.grpc))
	case resp.typeURL == resourcev3.RouteType && p.grpc:
		return p.follow(resourcev3.ClusterType, routedClusters(resp.resources, p.svc))
	case resp.typeURL == resourcev3.ClusterType && resp.delta:
		return p.follow(resourcev3.EndpointType, slices.Sorted(maps.Keys(sub.known)))
	case resp.typeURL == resourcev3.ClusterType:
		return p.follow(resourcev3.EndpointType, clusterNames(resp.resources))
	}
	return nil
}

// needsBodies reports whether the proxy reads the resources of its next
// response: while the fleet settles (it follows the names they hold), and
// always when it verifies.
func (p *proxy) needsBodies() bool {
	return p.verify || !p.fleet.settled.Load()
}

// follow subscribes to names of typeURL unless that is the subscription
// already. No names leaves the subscription as it is rather than make it a
// wildcard: a response that says nothing of them (a delta response that
// only removed listeners, or a route or endpoint response that carries only
// what changed) says nothing about what to follow.
func (p *proxy) follow(typeURL string, names []string) error {
	if len(names) == 0 {
		return nil
	}
	if sub := p.subs[typeURL]; sub != nil && slices.Equal(sub.names, names) {
		return nil
	}
	return p.subscribe(typeURL, names)
}

// sotwStream is state-of-the-world ADS: every request carries the whole
// subscription, an ACK echoes the version and nonce.
type sotwStream struct {
	node   *corev3.Node
	s      grpc.ClientStream // opened by openSotw
	bodies func() bool       // whether the next response's resources are read
	// nodeOnce sends the node on the first request only, as grpc-go does;
	// Envoy sends it on every request unless told otherwise.
	nodeOnce bool
	sent     bool
}

func (t *sotwStream) subscribe(typeURL string, sub *subscription, _ []string) error {
	return t.ack(typeURL, sub)
}

func (t *sotwStream) ack(typeURL string, sub *subscription) error {
	req := &discoveryv3.DiscoveryRequest{TypeUrl: typeURL, ResourceNames: sub.names, VersionInfo: sub.version, ResponseNonce: sub.nonce}
	if !t.nodeOnce || !t.sent {
		req.Node, t.sent = t.node, true
	}
	return t.s.SendMsg(req)
}

func (t *sotwStream) recv() (response, error) {
	w := &wireResponse{bodies: t.bodies()}
	if err := t.s.RecvMsg(w); err != nil {
		return response{}, err
	}
	return w.resp, nil
}

// deltaStream is incremental ADS: requests name what is added to and
// removed from a subscription, an ACK carries the nonce. A response has no
// version of its own that covers what the proxy holds, so its nonce stands
// for one: every delta response is a change.
type deltaStream struct {
	node *corev3.Node
	s    discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	sent bool // the node goes on the first request only
}

func (t *deltaStream) subscribe(typeURL string, sub *subscription, previous []string) error {
	req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: typeURL}
	for _, n := range sub.names {
		if !slices.Contains(previous, n) {
			req.ResourceNamesSubscribe = append(req.ResourceNamesSubscribe, n)
		}
	}
	for _, n := range previous {
		if !slices.Contains(sub.names, n) {
			req.ResourceNamesUnsubscribe = append(req.ResourceNamesUnsubscribe, n)
		}
	}
	return t.send(req)
}

func (t *deltaStream) ack(typeURL string, sub *subscription) error {
	return t.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: typeURL, ResponseNonce: sub.nonce})
}

func (t *deltaStream) send(req *discoveryv3.DeltaDiscoveryRequest) error {
	if !t.sent {
		req.Node, t.sent = t.node, true
	}
	return t.s.Send(req)
}

func (t *deltaStream) recv() (response, error) {
	r, err := t.s.Recv()
	if err != nil {
		return response{}, err
	}
	resp := response{typeURL: r.GetTypeUrl(), version: r.GetNonce(), nonce: r.GetNonce(),
		removed: r.GetRemovedResources(), delta: true}
	for _, res := range r.GetResources() {
		resp.names = append(resp.names, res.GetName())
		resp.resources = append(resp.resources, res.GetResource())
	}
	return resp, nil
}

// clusterNames returns the sorted names of the clusters in a CDS response.
// Only the name (field 1 of a Cluster) is read, straight from the wire:
// decoding 100 whole clusters for each of thousands of Envoy-shaped
// proxies would spend on the generator the cores the server under test
// needs.
func clusterNames(resources []*anypb.Any) []string {
	names := make([]string, 0, len(resources))
	for _, a := range resources {
		if name, ok := clusterName(a.GetValue()); ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// clusterName returns the name of an encoded Cluster.
func clusterName(b []byte) (string, bool) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", false
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			return string(v), n >= 0
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return "", false
		}
		b = b[n:]
	}
	return "", false
}

// routeConfigNames returns, sorted, the route configurations that the HTTP
// connection managers of the listeners in an LDS response fetch over RDS:
// for grpc-go an api_listener's, for Envoy every filter chain's (Envoy
// refuses a listener with an api_listener; it would fetch nothing for it).
func routeConfigNames(resources []*anypb.Any, grpc bool) []string {
	var names []string
	for _, a := range resources {
		var l listenerv3.Listener
		if proto.Unmarshal(a.GetValue(), &l) != nil {
			continue
		}
		var configs []*anypb.Any
		if grpc {
			configs = append(configs, l.GetApiListener().GetApiListener())
		} else {
			for _, fc := range l.GetFilterChains() {
				for _, f := range fc.GetFilters() {
					configs = append(configs, f.GetTypedConfig())
				}
			}
		}
		for _, c := range configs {
			var hcm hcmv3.HttpConnectionManager
			if c.MessageIs(&hcm) && c.UnmarshalTo(&hcm) == nil && hcm.GetRds() != nil {
				names = append(names, hcm.GetRds().GetRouteConfigName())
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// routedClusters returns, sorted, the clusters svc's virtual host names in
// an RDS response.
func routedClusters(resources []*anypb.Any, svc string) []string {
	var names []string
	for _, vh := range virtualHosts(resources, svc) {
		for _, r := range vh.GetRoutes() {
			if c := r.GetRoute().GetCluster(); c != "" {
				names = append(names, c)
			}
			for _, wc := range r.GetRoute().GetWeightedClusters().GetClusters() {
				names = append(names, wc.GetName())
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// virtualHosts returns svc's virtual hosts in RDS resources.
func virtualHosts(resources []*anypb.Any, svc string) []*routev3.VirtualHost {
	var out []*routev3.VirtualHost
	for _, a := range resources {
		var rc routev3.RouteConfiguration
		if proto.Unmarshal(a.GetValue(), &rc) != nil {
			continue
		}
		for _, vh := range rc.GetVirtualHosts() {
			if vh.GetName() == svc {
				out = append(out, vh)
			}
		}
	}
	return out
}

// clusterWeights returns the weight of each cluster svc's default route
// splits traffic over, by cluster name: the last route that is not weir's
// warming route (a 0 % route that makes clients fetch clusters early).
func clusterWeights(resources []*anypb.Any, svc string) map[string]uint32 {
	out := map[string]uint32{}
	for _, vh := range virtualHosts(resources, svc) {
		var def *routev3.Route
		for _, r := range vh.GetRoutes() {
			if r.GetName() != "weir_warming" {
				def = r
			}
		}
		for _, wc := range def.GetRoute().GetWeightedClusters().GetClusters() {
			out[wc.GetName()] = wc.GetWeight().GetValue()
		}
	}
	return out
}

// endpointPorts returns, per cluster in EDS resources, the ports of its
// endpoints.
func endpointPorts(resources []*anypb.Any) map[string][]uint32 {
	out := map[string][]uint32{}
	for _, a := range resources {
		var cla endpointv3.ClusterLoadAssignment
		if proto.Unmarshal(a.GetValue(), &cla) != nil {
			continue
		}
		for _, lep := range cla.GetEndpoints() {
			for _, ep := range lep.GetLbEndpoints() {
				port := ep.GetEndpoint().GetAddress().GetSocketAddress().GetPortValue()
				out[cla.GetClusterName()] = append(out[cla.GetClusterName()], port)
			}
		}
	}
	return out
}
