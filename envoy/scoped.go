package envoy

import (
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// The Envoy sidecar routes by scopes (scoped RDS): each request's host —
// its :authority up to the port, "greeter" of "greeter:8080" — picks a
// scope (a ScopedRouteConfiguration, fetched over ADS), and the scope names
// the route configuration that routes it, the host's service's own. A
// change to one service's routes then sends Envoy that service's route
// configuration alone, not one holding every service's virtual host.

// hostHeader is the header a scope key is taken from: Envoy keeps the
// HTTP/1 Host header as :authority too.
const hostHeader = ":authority"

// hostScopeKey builds a request's scope key from its host: the
// :authority's value up to the first ":", the whole value when it names
// no port.
var hostScopeKey = &hcmv3.ScopedRoutes_ScopeKeyBuilder{
	Fragments: []*hcmv3.ScopedRoutes_ScopeKeyBuilder_FragmentBuilder{{
		Type: &hcmv3.ScopedRoutes_ScopeKeyBuilder_FragmentBuilder_HeaderValueExtractor_{
			HeaderValueExtractor: &hcmv3.ScopedRoutes_ScopeKeyBuilder_FragmentBuilder_HeaderValueExtractor{
				Name:             hostHeader,
				ElementSeparator: ":",
				ExtractType:      &hcmv3.ScopedRoutes_ScopeKeyBuilder_FragmentBuilder_HeaderValueExtractor_Index{Index: 0},
			},
		},
	}},
}

// ScopedHTTPConnectionManager returns an HTTP connection manager that
// picks each request's route configuration by its host (see hostScopeKey)
// among the scopes it fetches over ADS, the set named scopesName, and
// fetches the route configurations they name over ADS too.
func ScopedHTTPConnectionManager(statPrefix, scopesName string) *hcmv3.HttpConnectionManager {
	return &hcmv3.HttpConnectionManager{
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		StatPrefix: statPrefix,
		RouteSpecifier: &hcmv3.HttpConnectionManager_ScopedRoutes{ScopedRoutes: &hcmv3.ScopedRoutes{
			Name:            scopesName,
			ScopeKeyBuilder: hostScopeKey,
			RdsConfigSource: adsSource,
			ConfigSpecifier: &hcmv3.ScopedRoutes_ScopedRds{ScopedRds: &hcmv3.ScopedRds{ScopedRdsConfigSource: adsSource}},
		}},
		HttpFilters: []*hcmv3.HttpFilter{routerFilter},
	}
}

// ScopedRoute returns the scope that routes requests for host (see
// hostScopeKey) with the route configuration routeConfigName. It is named
// after its host, which no other scope may have.
func ScopedRoute(host, routeConfigName string) *routev3.ScopedRouteConfiguration {
	p := new(scopeParts)
	p.stringKey.StringKey = host
	p.fragment.Type = &p.stringKey
	p.fragments[0] = &p.fragment
	p.key.Fragments = p.fragments[:]
	p.scope.Name, p.scope.RouteConfigurationName, p.scope.Key = host, routeConfigName, &p.key
	return &p.scope
}

// scopeParts holds the messages of a ScopedRoute, allocated together.
type scopeParts struct {
	scope     routev3.ScopedRouteConfiguration
	key       routev3.ScopedRouteConfiguration_Key
	fragments [1]*routev3.ScopedRouteConfiguration_Key_Fragment
	fragment  routev3.ScopedRouteConfiguration_Key_Fragment
	stringKey routev3.ScopedRouteConfiguration_Key_Fragment_StringKey
}
