package envoy

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
)

// routerAny is the router filter's (empty) configuration.
var routerAny = mustAny(&routerv3.Router{})

// HTTPConnectionManager returns an HTTP connection manager that fetches the
// route configuration routeConfigName over ADS and ends its filter chain with
// the router, which both Envoy and grpc-go require.
func HTTPConnectionManager(statPrefix, routeConfigName string) *hcmv3.HttpConnectionManager {
	return &hcmv3.HttpConnectionManager{
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		StatPrefix: statPrefix,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsConfigSource(),
			RouteConfigName: routeConfigName,
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       wellknown.Router,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: constAny(routerAny)},
		}},
	}
}

// APIListener returns the listener a proxyless gRPC client asks for: its name
// must be exactly the target's authority (xds:///greeter asks for "greeter").
func APIListener(name, routeConfigName string) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name: name,
		ApiListener: &listenerv3.ApiListener{
			ApiListener: mustAny(HTTPConnectionManager(name, routeConfigName)),
		},
	}
}

// HTTPListener returns an Envoy listener on address:port that routes HTTP
// (and gRPC) with the route configuration routeConfigName.
func HTTPListener(name, address string, port uint32, routeConfigName string) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:    name,
		Address: socketAddress(address, port),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{
				Name: wellknown.HTTPConnectionManager,
				ConfigType: &listenerv3.Filter_TypedConfig{
					TypedConfig: mustAny(HTTPConnectionManager(name, routeConfigName)),
				},
			}},
		}},
	}
}
