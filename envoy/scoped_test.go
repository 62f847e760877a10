package envoy

import (
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// fromJSON decodes m from the JSON form Envoy's documentation uses.
func fromJSON[M proto.Message](t *testing.T, m M, text string) M {
	t.Helper()
	if err := protojson.Unmarshal([]byte(text), m); err != nil {
		t.Fatalf("%s: %v", text, err)
	}
	return m
}

// wantScopedHCM is the connection manager of Envoy's scoped routing
// example, keyed by the host as ScopedHTTPConnectionManager promises.
func wantScopedHCM(t *testing.T, statPrefix, scopes string) *hcmv3.HttpConnectionManager {
	want := fromJSON(t, new(hcmv3.HttpConnectionManager), `{
		"codecType": "AUTO",
		"statPrefix": "`+statPrefix+`",
		"scopedRoutes": {
			"name": "`+scopes+`",
			"scopeKeyBuilder": {"fragments": [{"headerValueExtractor": {"name": ":authority", "elementSeparator": ":", "index": 0}}]},
			"rdsConfigSource": {"ads": {}, "resourceApiVersion": "V3"},
			"scopedRds": {"scopedRdsConfigSource": {"ads": {}, "resourceApiVersion": "V3"}}
		}
	}`)
	want.HttpFilters = wantHCM(t, statPrefix, "").GetHttpFilters()
	return want
}

func TestScopedHTTPConnectionManager(t *testing.T) {
	check(t, wantScopedHCM(t, "outbound", "out"), ScopedHTTPConnectionManager("outbound", "out"))
}

func TestScopedRoute(t *testing.T) {
	want := fromJSON(t, new(routev3.ScopedRouteConfiguration), `{
		"name": "greeter.service.consul",
		"routeConfigurationName": "out/greeter",
		"key": {"fragments": [{"stringKey": "greeter.service.consul"}]}
	}`)
	check(t, want, ScopedRoute("greeter.service.consul", "out/greeter"))
}

func TestHTTPListener(t *testing.T) {
	want := &listenerv3.Listener{
		Name:    "outbound",
		Address: tcp("127.0.0.1", 15001),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{
				Name:       "envoy.filters.network.http_connection_manager",
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: testAny(t, wantScopedHCM(t, "outbound", "out"))},
			}},
		}},
	}
	check(t, want, HTTPListener("outbound", "127.0.0.1", 15001, ScopedHTTPConnectionManager("outbound", "out")))
}
