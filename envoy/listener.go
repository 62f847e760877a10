package envoy

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/anypb"
)

// HTTPConnectionManager returns an HTTP connection manager that fetches the
// route configuration routeConfigName over ADS and ends its filter chain with
// the router, which both Envoy and grpc-go require.
func HTTPConnectionManager(statPrefix, routeConfigName string) *hcmv3.HttpConnectionManager {
	p := new(hcmParts)
	p.rds.ConfigSource, p.rds.RouteConfigName = adsSource, routeConfigName
	p.specifier.Rds = &p.rds
	p.filters[0] = routerFilter
	p.hcm.CodecType, p.hcm.StatPrefix = hcmv3.HttpConnectionManager_AUTO, statPrefix
	p.hcm.RouteSpecifier, p.hcm.HttpFilters = &p.specifier, p.filters[:]
	return &p.hcm
}

// hcmParts holds the messages of an HTTPConnectionManager, allocated
// together.
type hcmParts struct {
	hcm       hcmv3.HttpConnectionManager
	specifier hcmv3.HttpConnectionManager_Rds
	rds       hcmv3.Rds
	filters   [1]*hcmv3.HttpFilter
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
	p := new(apiListenerParts)
	mustMarshalAny(&p.any, hcmTypeURL, hcm)
	p.api.ApiListener = &p.any
	p.listener.Name, p.listener.ApiListener = name, &p.api
	return &p.listener
}

var hcmTypeURL = typeURL(&hcmv3.HttpConnectionManager{})

// apiListenerParts holds the messages of an APIListener, allocated
// together.
type apiListenerParts struct {
	listener listenerv3.Listener
	api      listenerv3.ApiListener
	any      anypb.Any
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
