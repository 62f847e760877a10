package main

import (
	"context"
	"slices"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/weir-mesh/weir/snapshot"
)

// proxy is one simulated xDS client on one ADS stream. Envoy-shaped proxies
// subscribe to LDS and CDS by wildcard, then to RDS weir_outbound and to EDS
// by the cluster names CDS returned. gRPC-shaped proxies subscribe to LDS by
// their service's name and to RDS weir_outbound, then to CDS and EDS by the
// clusters their service's virtual host names. Every response is ACKed at
// once, echoing its version and nonce, and the ACK is reported to the fleet.
type proxy struct {
	idx    int
	grpc   bool
	svc    string // the service a gRPC-shaped proxy calls
	node   *corev3.Node
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	subs   map[string]*subscription // by type URL
	fleet  *fleet
}

// subscription is what a proxy asked for and last ACKed of one type.
type subscription struct {
	names   []string // nil: wildcard
	version string
	nonce   string
}

func (p *proxy) run(ctx context.Context, conn *grpc.ClientConn) error {
	var err error
	p.stream, err = discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	p.subs = map[string]*subscription{}
	if p.grpc {
		err = p.subscribe(resourcev3.ListenerType, []string{p.svc})
		if err == nil {
			err = p.subscribe(resourcev3.RouteType, []string{snapshot.RouteConfigName})
		}
	} else {
		err = p.subscribe(resourcev3.ListenerType, nil)
		if err == nil {
			err = p.subscribe(resourcev3.ClusterType, nil)
		}
	}
	for err == nil {
		var resp *discoveryv3.DiscoveryResponse
		if resp, err = p.stream.Recv(); err == nil {
			err = p.handle(resp)
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// subscribe sends a request for names of typeURL (nil: wildcard), keeping
// the version and nonce last ACKed.
func (p *proxy) subscribe(typeURL string, names []string) error {
	sub := p.subs[typeURL]
	if sub == nil {
		sub = &subscription{}
		p.subs[typeURL] = sub
	}
	sub.names = names
	return p.send(typeURL, sub)
}

func (p *proxy) send(typeURL string, sub *subscription) error {
	return p.stream.Send(&discoveryv3.DiscoveryRequest{
		Node: p.node, TypeUrl: typeURL, ResourceNames: sub.names, VersionInfo: sub.version, ResponseNonce: sub.nonce,
	})
}

// handle ACKs resp and follows up with the subscriptions it implies.
func (p *proxy) handle(resp *discoveryv3.DiscoveryResponse) error {
	typeURL := resp.GetTypeUrl()
	sub := p.subs[typeURL]
	if sub == nil {
		return nil // not asked for
	}
	changed := sub.version != resp.GetVersionInfo()
	sub.version, sub.nonce = resp.GetVersionInfo(), resp.GetNonce()
	if err := p.send(typeURL, sub); err != nil {
		return err
	}
	p.fleet.acked(p.idx, typeURL, sub.version, time.Now())
	if !changed || p.fleet.settled.Load() {
		return nil
	}
	switch {
	case typeURL == resourcev3.ListenerType && p.subs[resourcev3.RouteType] == nil:
		return p.subscribe(resourcev3.RouteType, []string{snapshot.RouteConfigName})
	case typeURL == resourcev3.RouteType && p.grpc:
		return p.follow(resourcev3.ClusterType, routedClusters(resp, p.svc))
	case typeURL == resourcev3.ClusterType:
		return p.follow(resourcev3.EndpointType, clusterNames(resp))
	}
	return nil
}

// follow subscribes to names of typeURL unless that is the subscription already.
func (p *proxy) follow(typeURL string, names []string) error {
	if sub := p.subs[typeURL]; sub != nil && slices.Equal(sub.names, names) {
		return nil
	}
	return p.subscribe(typeURL, names)
}

// clusterNames returns the sorted names of the clusters in a CDS response.
func clusterNames(resp *discoveryv3.DiscoveryResponse) []string {
	names := make([]string, 0, len(resp.GetResources()))
	for _, a := range resp.GetResources() {
		var c clusterv3.Cluster
		if proto.Unmarshal(a.GetValue(), &c) == nil {
			names = append(names, c.GetName())
		}
	}
	slices.Sort(names)
	return names
}

// routedClusters returns, sorted, the clusters svc's virtual host names in
// an RDS response.
func routedClusters(resp *discoveryv3.DiscoveryResponse, svc string) []string {
	var names []string
	for _, a := range resp.GetResources() {
		var rc routev3.RouteConfiguration
		if proto.Unmarshal(a.GetValue(), &rc) != nil {
			continue
		}
		for _, vh := range rc.GetVirtualHosts() {
			if vh.GetName() != svc {
				continue
			}
			for _, r := range vh.GetRoutes() {
				if c := r.GetRoute().GetCluster(); c != "" {
					names = append(names, c)
				}
				for _, wc := range r.GetRoute().GetWeightedClusters().GetClusters() {
					names = append(names, wc.GetName())
				}
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// snapshotClusters returns, sorted, the clusters of snap a proxy subscribes
// to EDS for: all of them for Envoy, svc's for gRPC.
func snapshotClusters(snap *snapshot.Snapshot, grpcShaped bool, svc string) []string {
	var names []string
	for _, c := range snap.Clusters {
		if !grpcShaped || strings.HasPrefix(c.GetName(), svc+"/") {
			names = append(names, c.GetName())
		}
	}
	slices.Sort(names)
	return names
}
