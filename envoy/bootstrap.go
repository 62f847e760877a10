package envoy

import (
	"net/netip"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
)

// XDSClusterName is the static cluster through which a sidecar reaches weir.
const XDSClusterName = "weir_xds"

// Envoy rejects a safe_regex whose compiled RE2 program is larger than the
// runtime value of maxRegexProgramSizeKey, 100 by default. The cookie
// matchers weir builds wrap the value regex in a larger one, so an ordinary
// value regex (a UUID's) comes to 108, and one matcher too large makes every
// sidecar reject the route configuration they all share. weir's bootstraps
// raise the limit as Istio's do; a bootstrap written by hand needs the key
// as well.
const (
	maxRegexProgramSizeKey = "re2.max_program_size.error_level"
	maxRegexProgramSize    = 32768
)

// BootstrapOptions describes one Envoy sidecar and where weir serves xDS.
type BootstrapOptions struct {
	NodeID  string // node.id: unique per proxy
	Cluster string // node.cluster: the proxy's class, usually its service name
	XDSHost string // an IP literal, or a DNS name resolved with STRICT_DNS
	XDSPort uint32
	// AdminPort is where Envoy's admin interface listens on 127.0.0.1;
	// 0 means 9901.
	AdminPort uint32
}

// Bootstrap returns an Envoy bootstrap that takes listeners and clusters (and
// through them routes and endpoints) from weir over one ADS stream.
func Bootstrap(o BootstrapOptions) *bootstrapv3.Bootstrap {
	adminPort := o.AdminPort
	if adminPort == 0 {
		adminPort = defaultAdminPort
	}
	return &bootstrapv3.Bootstrap{
		Node: &corev3.Node{Id: o.NodeID, Cluster: o.Cluster},
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &corev3.ApiConfigSource{
				ApiType:             corev3.ApiConfigSource_GRPC,
				TransportApiVersion: corev3.ApiVersion_V3,
				GrpcServices: []*corev3.GrpcService{{
					TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
						EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: XDSClusterName},
					},
				}},
			},
			LdsConfig: adsConfigSource(),
			CdsConfig: adsConfigSource(),
		},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{
			Clusters: []*clusterv3.Cluster{xdsCluster(o.XDSHost, o.XDSPort)},
		},
		Admin:          &bootstrapv3.Admin{Address: socketAddress(loopback, adminPort)},
		LayeredRuntime: layeredRuntime(),
	}
}

// layeredRuntime raises the regex program size limit in a static layer. An
// admin layer comes last, as in Istio's bootstraps and in what Envoy makes of
// a layered runtime with no layers, so that an operator can still override
// any key, this one included, with /runtime_modify on the admin interface.
func layeredRuntime() *bootstrapv3.LayeredRuntime {
	return &bootstrapv3.LayeredRuntime{Layers: []*bootstrapv3.RuntimeLayer{{
		Name: "static",
		LayerSpecifier: &bootstrapv3.RuntimeLayer_StaticLayer{StaticLayer: &structpb.Struct{
			Fields: map[string]*structpb.Value{maxRegexProgramSizeKey: structpb.NewNumberValue(maxRegexProgramSize)},
		}},
	}, {
		Name:           "admin",
		LayerSpecifier: &bootstrapv3.RuntimeLayer_AdminLayer_{AdminLayer: &bootstrapv3.RuntimeLayer_AdminLayer{}},
	}}}
}

// xdsCluster is the static HTTP/2 cluster of weir's ADS server. A host name
// needs STRICT_DNS: a STATIC cluster accepts only IP literals.
func xdsCluster(host string, port uint32) *clusterv3.Cluster {
	discovery := clusterv3.Cluster_STATIC
	if _, err := netip.ParseAddr(host); err != nil {
		discovery = clusterv3.Cluster_STRICT_DNS
	}
	return &clusterv3.Cluster{
		Name:                 XDSClusterName,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: discovery},
		ConnectTimeout:       durationpb.New(defaultConnectTimeout),
		TypedExtensionProtocolOptions: map[string]*anypb.Any{
			httpProtocolOptionsKey: mustAny(http2ProtocolOptions()),
		},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: XDSClusterName,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{
				LbEndpoints: []*endpointv3.LbEndpoint{{
					HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
						Address: socketAddress(host, port),
					}},
				}},
			}},
		},
	}
}
