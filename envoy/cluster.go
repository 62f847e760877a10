package envoy

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Cluster returns an EDS cluster whose endpoints arrive over ADS, balanced
// round robin (which every gRPC client supports, unlike LEAST_REQUEST).
// Envoy speaks to the upstream in the protocol the request came in with, so
// gRPC (HTTP/2) and HTTP/1 both pass through a sidecar; grpc-go ignores that
// option. Envoy's panic mode is off (see noPanic).
func Cluster(name string) *clusterv3.Cluster {
	return cluster(name, clusterv3.Cluster_ROUND_ROBIN)
}

// Ring sizes of RingHashCluster. grpc-go caps the ring at 4096 entries
// (GRPC_RING_HASH_CAP) whatever the cluster asks for, and Envoy would build
// up to 8M entries per worker for a tiny share; asking both for at most 4096
// gives every client a ring of the same size and keeps Envoy's small. Shares
// are then accurate to about 1/4096 (0.025 %).
const (
	minRingSize = 1024
	maxRingSize = 4096
)

// RingHashCluster returns an EDS cluster like Cluster, balanced by a
// consistent hash ring (RING_HASH with xxHash, the one hash function grpc-go
// accepts): requests whose route hash policy yields the same value go to the
// same endpoint, and endpoint weights set each endpoint's share of the ring.
func RingHashCluster(name string) *clusterv3.Cluster {
	c := cluster(name, clusterv3.Cluster_RING_HASH)
	c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{
		MinimumRingSize: wrapperspb.UInt64(minRingSize),
		MaximumRingSize: wrapperspb.UInt64(maxRingSize),
		HashFunction:    clusterv3.Cluster_RingHashLbConfig_XX_HASH,
	}}
	return c
}

func cluster(name string, lb clusterv3.Cluster_LbPolicy) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                          name,
		ClusterDiscoveryType:          edsDiscoveryType,
		EdsClusterConfig:              edsClusterConfig,
		LbPolicy:                      lb,
		ConnectTimeout:                connectTimeout,
		CommonLbConfig:                noPanic,
		TypedExtensionProtocolOptions: protocolOptions,
	}
}

// What every cluster of Cluster and RingHashCluster has in common, shared
// (see the package comment). The map is shared too: a map of its own per
// cluster cost two allocations, and protobuf only reads it.
var (
	edsDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}
	edsClusterConfig = &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource}
	connectTimeout   = durationpb.New(defaultConnectTimeout)
	protocolOptions  = map[string]*anypb.Any{httpProtocolOptionsKey: downstreamProtocolOptionsAny}
)

// noPanic sets a healthy panic threshold of 0 %, which turns Envoy's panic
// mode off, as Istio does. With Envoy's default of 50 %, a cluster with
// fewer than half of its endpoints HEALTHY is balanced over all of them,
// DRAINING and UNHEALTHY ones included; with 0 %, only HEALTHY endpoints get
// requests, and a cluster without any answers 503 (no healthy upstream).
// grpc-go ignores common_lb_config: it never picks such endpoints anyway.
// Shared like the values above.
var noPanic = &clusterv3.Cluster_CommonLbConfig{HealthyPanicThreshold: &typev3.Percent{Value: 0}}

// downstreamProtocolOptionsAny makes Envoy use the downstream request's
// protocol upstream.
var downstreamProtocolOptionsAny = mustAny(&httpv3.HttpProtocolOptions{
	UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{
		UseDownstreamProtocolConfig: &httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{
			HttpProtocolOptions:  &corev3.Http1ProtocolOptions{},
			Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
		},
	},
})

// http2ProtocolOptions makes Envoy speak HTTP/2 to the upstream, as gRPC needs.
func http2ProtocolOptions() *httpv3.HttpProtocolOptions {
	return &httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
					Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
				},
			},
		},
	}
}

// Endpoint is one upstream address of a cluster.
type Endpoint struct {
	Address string // an IP literal: gRPC clients other than grpc-go reject host names
	Port    uint32
	Health  corev3.HealthStatus
	// Weight is the endpoint's load_balancing_weight within its locality;
	// 0 leaves it unset, which clients read as 1.
	Weight uint32
}

// ClusterLoadAssignment returns the endpoints of cluster in one locality, in
// the given order. The locality carries an explicit identity and
// load_balancing_weight: grpc-go rejects a locality without identity and
// silently drops one without weight. No endpoints yields an assignment without
// localities, which clients read as "no endpoints".
func ClusterLoadAssignment(cluster string, endpoints []Endpoint) *endpointv3.ClusterLoadAssignment {
	if len(endpoints) == 0 {
		return &endpointv3.ClusterLoadAssignment{ClusterName: cluster}
	}
	a := new(assignmentParts)
	a.cla.ClusterName = cluster
	a.localities[0] = &a.locality
	a.cla.Endpoints = a.localities[:]
	a.locality.Locality, a.locality.LoadBalancingWeight = noLocality, localityWeight
	a.locality.LbEndpoints = lbEndpoints(endpoints)
	return &a.cla
}

// The one locality of every ClusterLoadAssignment, shared (see the package
// comment).
var (
	noLocality     = &corev3.Locality{}
	localityWeight = wrapperspb.UInt32(1)
)

// assignmentParts holds the messages of a ClusterLoadAssignment with one
// locality, allocated together.
type assignmentParts struct {
	cla        endpointv3.ClusterLoadAssignment
	locality   endpointv3.LocalityLbEndpoints
	localities [1]*endpointv3.LocalityLbEndpoints
}

// lbEndpoints returns an LbEndpoint per endpoint, in order. Their messages
// are allocated in one go for all of them rather than seven times per
// endpoint, and weights only when some endpoint has one.
func lbEndpoints(endpoints []Endpoint) []*endpointv3.LbEndpoint {
	out := make([]*endpointv3.LbEndpoint, len(endpoints))
	parts := make([]lbEndpointParts, len(endpoints))
	var weights []wrapperspb.UInt32Value
	for i, e := range endpoints {
		out[i] = parts[i].lbEndpoint(e)
		if e.Weight > 0 {
			if weights == nil {
				weights = make([]wrapperspb.UInt32Value, len(endpoints))
			}
			weights[i].Value = e.Weight
			out[i].LoadBalancingWeight = &weights[i]
		}
	}
	return out
}

// lbEndpointParts holds the messages of one LbEndpoint but its weight.
type lbEndpointParts struct {
	lb       endpointv3.LbEndpoint
	host     endpointv3.LbEndpoint_Endpoint
	endpoint endpointv3.Endpoint
	address  corev3.Address
	socket   corev3.Address_SocketAddress
	sa       corev3.SocketAddress
	port     corev3.SocketAddress_PortValue
}

// lbEndpoint fills p with e, but its weight, and returns its LbEndpoint.
func (p *lbEndpointParts) lbEndpoint(e Endpoint) *endpointv3.LbEndpoint {
	p.port.PortValue = e.Port
	p.sa.Protocol, p.sa.Address, p.sa.PortSpecifier = corev3.SocketAddress_TCP, e.Address, &p.port
	p.socket.SocketAddress = &p.sa
	p.address.Address = &p.socket
	p.endpoint.Address = &p.address
	p.host.Endpoint = &p.endpoint
	p.lb.HostIdentifier, p.lb.HealthStatus = &p.host, e.Health
	return &p.lb
}
