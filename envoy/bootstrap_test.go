package envoy

import (
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
)

func wantBootstrap(t *testing.T, xdsType clusterv3.Cluster_DiscoveryType, host string, adminPort uint32) *bootstrapv3.Bootstrap {
	return &bootstrapv3.Bootstrap{
		Node: &corev3.Node{Id: "greeter-1", Cluster: "greeter"},
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &corev3.ApiConfigSource{
				ApiType:             corev3.ApiConfigSource_GRPC,
				TransportApiVersion: corev3.ApiVersion_V3,
				GrpcServices: []*corev3.GrpcService{{
					TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
						EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "weir_xds"},
					},
				}},
			},
			LdsConfig: ads(),
			CdsConfig: ads(),
		},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{Clusters: []*clusterv3.Cluster{{
			Name:                 "weir_xds",
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: xdsType},
			ConnectTimeout:       &durationpb.Duration{Seconds: 1},
			TypedExtensionProtocolOptions: map[string]*anypb.Any{
				"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": testAny(t, &httpv3.HttpProtocolOptions{
					UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
						ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
							ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
								Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
							},
						},
					},
				}),
			},
			LoadAssignment: &endpointv3.ClusterLoadAssignment{
				ClusterName: "weir_xds",
				Endpoints: []*endpointv3.LocalityLbEndpoints{{
					LbEndpoints: []*endpointv3.LbEndpoint{{
						HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
							Address: tcp(host, 18000),
						}},
					}},
				}},
			},
		}}},
		Admin: &bootstrapv3.Admin{Address: tcp("127.0.0.1", adminPort)},
		LayeredRuntime: &bootstrapv3.LayeredRuntime{Layers: []*bootstrapv3.RuntimeLayer{{
			Name: "static",
			LayerSpecifier: &bootstrapv3.RuntimeLayer_StaticLayer{StaticLayer: &structpb.Struct{Fields: map[string]*structpb.Value{
				"re2.max_program_size.error_level": structpb.NewNumberValue(32768),
			}}},
		}, {
			Name:           "admin",
			LayerSpecifier: &bootstrapv3.RuntimeLayer_AdminLayer_{AdminLayer: &bootstrapv3.RuntimeLayer_AdminLayer{}},
		}}},
	}
}

func TestBootstrap(t *testing.T) {
	tests := []struct {
		name string
		opts BootstrapOptions
		want *bootstrapv3.Bootstrap
	}{{
		name: "ip literal is static, admin defaults to 9901",
		opts: BootstrapOptions{NodeID: "greeter-1", Cluster: "greeter", XDSHost: "10.0.0.9", XDSPort: 18000},
		want: wantBootstrap(t, clusterv3.Cluster_STATIC, "10.0.0.9", 9901),
	}, {
		name: "ipv6 literal is static",
		opts: BootstrapOptions{NodeID: "greeter-1", Cluster: "greeter", XDSHost: "::1", XDSPort: 18000, AdminPort: 19000},
		want: wantBootstrap(t, clusterv3.Cluster_STATIC, "::1", 19000),
	}, {
		name: "host name is strict dns",
		opts: BootstrapOptions{NodeID: "greeter-1", Cluster: "greeter", XDSHost: "weir.internal", XDSPort: 18000},
		want: wantBootstrap(t, clusterv3.Cluster_STRICT_DNS, "weir.internal", 9901),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Bootstrap(tt.opts)
			check(t, tt.want, got)

			data, err := BootstrapYAML(got)
			if err != nil {
				t.Fatal(err)
			}
			again, err := BootstrapYAML(got)
			if err != nil {
				t.Fatal(err)
			}
			if string(data) != string(again) {
				t.Errorf("BootstrapYAML is not deterministic:\n%s\n---\n%s", data, again)
			}
			parsed, err := ParseBootstrapYAML(data)
			if err != nil {
				t.Fatalf("ParseBootstrapYAML:\n%s\n%v", data, err)
			}
			check(t, got, parsed)
		})
	}
}

func TestBootstrapYAMLShape(t *testing.T) {
	data, err := BootstrapYAML(Bootstrap(BootstrapOptions{NodeID: "n", Cluster: "c", XDSHost: "127.0.0.1", XDSPort: 18000}))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"'@type': type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
		"clusterName: weir_xds",
		"portValue: 9901",
		"connectTimeout: 1s",
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("bootstrap YAML lacks %q:\n%s", want, data)
		}
	}
	if strings.ContainsAny(string(data), "[\"") {
		t.Errorf("bootstrap YAML is not block style:\n%s", data)
	}
}

// TestBootstrapRaisesRegexProgramSize checks that the bootstrap file, as
// Envoy reads it, lifts the RE2 program size limit above what cookie
// matchers need: at Envoy's default of 100 a cookie matcher on a UUID regex
// (108) would make every sidecar reject the shared route configuration.
func TestBootstrapRaisesRegexProgramSize(t *testing.T) {
	data, err := BootstrapYAML(Bootstrap(BootstrapOptions{NodeID: "n", Cluster: "c", XDSHost: "127.0.0.1", XDSPort: 18000}))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseBootstrapYAML(data)
	if err != nil {
		t.Fatal(err)
	}
	// Later layers override earlier ones; only the admin layer may follow.
	var limit *structpb.Value
	for _, l := range b.GetLayeredRuntime().GetLayers() {
		if v, ok := l.GetStaticLayer().GetFields()["re2.max_program_size.error_level"]; ok {
			limit = v
		} else if l.GetAdminLayer() == nil {
			t.Errorf("runtime layer %q may override the limit", l.GetName())
		}
	}
	if got := limit.GetNumberValue(); got != 32768 {
		t.Errorf("re2.max_program_size.error_level = %v, want 32768:\n%s", limit, data)
	}
}

// TestBootstrapYAMLQuotesYAML11Booleans checks that a node id or cluster
// that YAML 1.1 reads as a boolean is written quoted: Envoy reads YAML with
// yaml-cpp, which would read "id: on" as a bool and reject the bootstrap.
func TestBootstrapYAMLQuotesYAML11Booleans(t *testing.T) {
	for _, v := range []string{
		"y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
		"on", "On", "ON", "off", "Off", "OFF",
		"true", "True", "TRUE", "false", "False", "FALSE",
	} {
		t.Run(v, func(t *testing.T) {
			data, err := BootstrapYAML(Bootstrap(BootstrapOptions{NodeID: v, Cluster: v, XDSHost: "127.0.0.1", XDSPort: 18000}))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"\n  id: '" + v + "'\n", "\n  cluster: '" + v + "'\n"} {
				if !strings.Contains(string(data), want) {
					t.Errorf("bootstrap YAML lacks %q:\n%s", strings.TrimSpace(want), data)
				}
			}
			if strings.Contains(string(data), `"`) {
				t.Errorf("bootstrap YAML has double quotes:\n%s", data)
			}
			b, err := ParseBootstrapYAML(data)
			if err != nil {
				t.Fatal(err)
			}
			if got := b.GetNode(); got.GetId() != v || got.GetCluster() != v {
				t.Errorf("node read back is {id: %q, cluster: %q}, want %q for both", got.GetId(), got.GetCluster(), v)
			}
		})
	}
}

func TestParseBootstrapYAMLRejects(t *testing.T) {
	for _, in := range []string{"node: [", "nodes: {id: x}", "node: {id: 1.5}"} {
		if _, err := ParseBootstrapYAML([]byte(in)); err == nil {
			t.Errorf("ParseBootstrapYAML(%q) succeeded, want error", in)
		}
	}
}
