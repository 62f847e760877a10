package envoy

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
)

// HTTPConnectionManager returns an HTTP connection manager that fetches the
// route configuration routeConfigName over ADS and ends its filter chain with
// the router, which both Envoy and grpc-go require.
func HTTPConnectionManager(statPrefix, routeConfigName string) *hcmv3.HttpConnectionManager {
	return &hcmv3.HttpConnectionManager{
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		StatPrefix: statPrefix,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsSource,
			RouteConfigName: routeConfigName,
		}},
		HttpFilters: []*hcmv3.HttpFilter{routerFilter},
	}
}

// routerFilter is the router filter with its (empty) configuration, shared
// (see the package comment).
var routerFilter = &hcmv3.HttpFilter{
	Name:       wellknown.Router,
	ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})},
}

// APIListener returns the listener a proxyless gRPC client asks for, with
// hcm (see HTTPConnectionManager) as its api_listener: its name must be
// exactly the target's authority (xds:///greeter asks for "greeter"). The
// caller passes hcm in, so that it can keep the message rather than decode
// it from the listener again.
func APIListener(name string, hcm *hcmv3.HttpConnectionManager) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:        name,
		ApiListener: &listenerv3.ApiListener{ApiListener: mustAny(hcm)},
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
