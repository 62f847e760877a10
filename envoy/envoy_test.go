package envoy

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// validator is what every generated Envoy message implements.
type validator interface {
	proto.Message
	ValidateAll() error
}

// check compares got with want and validates got as Envoy would.
func check(t *testing.T, want, got validator) {
	t.Helper()
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if err := got.ValidateAll(); err != nil {
		t.Errorf("ValidateAll: %v", err)
	}
}

// testAny is anypb.New that fails the test instead of returning an error.
func testAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

func tcp(address string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Protocol:      corev3.SocketAddress_TCP,
		Address:       address,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

func TestCluster(t *testing.T) {
	want := &clusterv3.Cluster{
		Name:                 "greeter/v1",
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads()},
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		ConnectTimeout:       &durationpb.Duration{Seconds: 1},
		CommonLbConfig: &clusterv3.Cluster_CommonLbConfig{
			HealthyPanicThreshold: &typev3.Percent{Value: 0},
		},
		TypedExtensionProtocolOptions: map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": testAny(t, &httpv3.HttpProtocolOptions{
				UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{
					UseDownstreamProtocolConfig: &httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{
						HttpProtocolOptions:  &corev3.Http1ProtocolOptions{},
						Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
					},
				},
			}),
		},
	}
	check(t, want, Cluster("greeter/v1"))
}

// TestClustersDisablePanicMode: every kind of cluster sets
// healthy_panic_threshold to 0 %, and the field survives encoding (a Percent
// of 0 encodes as an empty message, which only its presence tells apart from
// no threshold at all, Envoy's 50 %).
func TestClustersDisablePanicMode(t *testing.T) {
	for _, kind := range []struct {
		name string
		make func(string) *clusterv3.Cluster
	}{{"round robin", Cluster}, {"ring hash", RingHashCluster}} {
		t.Run(kind.name, func(t *testing.T) {
			enc, err := AppendDeterministic(nil, kind.make("greeter/v1"))
			if err != nil {
				t.Fatal(err)
			}
			var got clusterv3.Cluster
			if err := proto.Unmarshal(enc, &got); err != nil {
				t.Fatal(err)
			}
			p := got.GetCommonLbConfig().GetHealthyPanicThreshold()
			if p == nil {
				t.Fatal("common_lb_config.healthy_panic_threshold unset: Envoy's default of 50 % lets it route to DRAINING and UNHEALTHY endpoints")
			}
			if p.GetValue() != 0 {
				t.Errorf("healthy_panic_threshold %v %%, want 0 %%", p.GetValue())
			}
		})
	}
}

func TestClusterLoadAssignment(t *testing.T) {
	lbEndpoint := func(addr string, port uint32, h corev3.HealthStatus) *endpointv3.LbEndpoint {
		return &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: tcp(addr, port)}},
			HealthStatus:   h,
		}
	}
	tests := []struct {
		name      string
		endpoints []Endpoint
		want      *endpointv3.ClusterLoadAssignment
	}{{
		name: "empty",
		want: &endpointv3.ClusterLoadAssignment{ClusterName: "c"},
	}, {
		name: "order and health kept",
		endpoints: []Endpoint{
			{Address: "10.0.0.2", Port: 8080, Health: corev3.HealthStatus_HEALTHY},
			{Address: "10.0.0.1", Port: 9090, Health: corev3.HealthStatus_DRAINING},
			{Address: "::1", Port: 80, Health: corev3.HealthStatus_HEALTHY},
		},
		want: &endpointv3.ClusterLoadAssignment{
			ClusterName: "c",
			Endpoints: []*endpointv3.LocalityLbEndpoints{{
				Locality: &corev3.Locality{},
				LbEndpoints: []*endpointv3.LbEndpoint{
					lbEndpoint("10.0.0.2", 8080, corev3.HealthStatus_HEALTHY),
					lbEndpoint("10.0.0.1", 9090, corev3.HealthStatus_DRAINING),
					lbEndpoint("::1", 80, corev3.HealthStatus_HEALTHY),
				},
				LoadBalancingWeight: wrapperspb.UInt32(1),
			}},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, tt.want, ClusterLoadAssignment("c", tt.endpoints))
		})
	}
}

func TestWeightedClusters(t *testing.T) {
	cw := func(name string, w uint32) *routev3.WeightedCluster_ClusterWeight {
		return &routev3.WeightedCluster_ClusterWeight{Name: name, Weight: wrapperspb.UInt32(w)}
	}
	tests := []struct {
		name string
		in   []ClusterWeight
		want *routev3.WeightedCluster
	}{{
		name: "one",
		in:   []ClusterWeight{{"a/v1", 10000}},
		want: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{cw("a/v1", 10000)}},
	}, {
		name: "order kept, zero dropped",
		in:   []ClusterWeight{{"a/v2", 1}, {"a/v3", 0}, {"a/v1", 9999}},
		want: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{
			cw("a/v2", 1), cw("a/v1", 9999),
		}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, tt.want, WeightedClusters(tt.in))
		})
	}
}

func TestVirtualHostAndRouteConfiguration(t *testing.T) {
	wc := &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{
		{Name: "greeter/v1", Weight: wrapperspb.UInt32(9000)},
		{Name: "greeter/v2", Weight: wrapperspb.UInt32(1000)},
	}}
	wantVH := &routev3.VirtualHost{
		Name:    "greeter",
		Domains: []string{"greeter", "greeter:8080"},
		Routes: []*routev3.Route{{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: wc},
			}},
		}},
	}
	vh := VirtualHost("greeter", []string{"greeter", "greeter:8080"}, []*routev3.Route{WeightedRoute(WeightedClusters([]ClusterWeight{
		{"greeter/v1", 9000}, {"greeter/v2", 1000},
	}))}, nil)
	check(t, wantVH, vh)

	wantWarming := &routev3.Route{
		Name: WarmingRouteName,
		Match: &routev3.RouteMatch{
			PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
			RuntimeFraction: &corev3.RuntimeFractionalPercent{
				DefaultValue: &typev3.FractionalPercent{Numerator: 0, Denominator: typev3.FractionalPercent_HUNDRED},
			},
		},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
				Clusters: []*routev3.WeightedCluster_ClusterWeight{
					{Name: "greeter/v1", Weight: wrapperspb.UInt32(1)}, {Name: "greeter/v3", Weight: wrapperspb.UInt32(1)},
				},
			}},
		}},
	}
	warmed := VirtualHost("greeter", []string{"greeter", "greeter:8080"}, []*routev3.Route{WeightedRoute(WeightedClusters([]ClusterWeight{
		{"greeter/v1", 9000}, {"greeter/v2", 1000},
	}))}, []string{"greeter/v1", "greeter/v3"})
	wantWarmed := proto.Clone(wantVH).(*routev3.VirtualHost)
	wantWarmed.Routes = append(wantWarmed.Routes, wantWarming)
	check(t, wantWarmed, warmed)
	check(t, &routev3.RouteConfiguration{Name: "out", VirtualHosts: []*routev3.VirtualHost{wantVH}},
		RouteConfiguration("out", []*routev3.VirtualHost{vh}))
}

func wantHCM(t *testing.T, statPrefix, rds string) *hcmv3.HttpConnectionManager {
	return &hcmv3.HttpConnectionManager{
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		StatPrefix: statPrefix,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    ads(),
			RouteConfigName: rds,
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: testAny(t, &routerv3.Router{})},
		}},
	}
}

func TestHTTPConnectionManager(t *testing.T) {
	check(t, wantHCM(t, "greeter", "out"), HTTPConnectionManager("greeter", "out"))
}

func TestListeners(t *testing.T) {
	tests := []struct {
		name string
		got  *listenerv3.Listener
		want *listenerv3.Listener
	}{{
		name: "api listener",
		got:  APIListener("greeter:8080", HTTPConnectionManager("greeter:8080", "out")),
		want: &listenerv3.Listener{
			Name:        "greeter:8080",
			ApiListener: &listenerv3.ApiListener{ApiListener: testAny(t, wantHCM(t, "greeter:8080", "out"))},
		},
	}, {
		name: "http listener",
		got:  HTTPListener("outbound", "127.0.0.1", 15001, "out"),
		want: &listenerv3.Listener{
			Name:    "outbound",
			Address: tcp("127.0.0.1", 15001),
			FilterChains: []*listenerv3.FilterChain{{
				Filters: []*listenerv3.Filter{{
					Name:       "envoy.filters.network.http_connection_manager",
					ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: testAny(t, wantHCM(t, "outbound", "out"))},
				}},
			}},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, tt.want, tt.got)
		})
	}
}
