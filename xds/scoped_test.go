package xds

import (
	"slices"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weir-mesh/weir/policy"
	"github.com/weir-mesh/weir/snapshot"
)

// TestEnvoyRoutesByScope follows an Envoy over ADS the way it routes by
// scopes: wildcard SRDS gives a scope per host of greeter, each naming
// greeter's route configuration, which RDS then gives. A weight change
// pushes that route configuration alone: pushes are ordered (scopes before
// routes), so a scope push would come first.
func TestEnvoyRoutesByScope(t *testing.T) {
	srv := startServer(t)
	mustSet(t, srv.cache, greeterSnapshot(t, policy.Weights{"v1": 9000, "v2": 1000}, "v1", "v2"))
	envoy := dialADS(t, srv.addr, envoyNode)
	envoy.subscribe(resourcev3.ScopedRouteType)
	srds := envoy.recv()
	if got, want := resourceNames(t, srds), []string{"greeter", "greeter.service.consul"}; srds.TypeUrl != resourcev3.ScopedRouteType || !slices.Equal(got, want) {
		t.Fatalf("wildcard SRDS = %s %v, want the scopes %v", srds.TypeUrl, got, want)
	}
	var routes []string
	for _, a := range srds.Resources {
		var sc routev3.ScopedRouteConfiguration
		if err := a.UnmarshalTo(&sc); err != nil {
			t.Fatal(err)
		}
		routes = append(routes, sc.GetRouteConfigurationName())
	}
	routes = slices.Compact(routes)
	if want := []string{snapshot.ServiceRouteConfigName("greeter")}; !slices.Equal(routes, want) {
		t.Fatalf("the scopes name route configurations %v, want %v", routes, want)
	}
	envoy.ack(srds)
	envoy.subscribe(resourcev3.RouteType, routes...)
	rds := envoy.recv()
	if got := resourceNames(t, rds); rds.TypeUrl != resourcev3.RouteType || !slices.Equal(got, routes) {
		t.Fatalf("RDS = %s %v, want %v", rds.TypeUrl, got, routes)
	}
	envoy.ack(rds, routes...)

	mustSet(t, srv.cache, greeterSnapshot(t, policy.Weights{"v1": 5000, "v2": 5000}, "v1", "v2"))
	next := envoy.recv()
	if next.TypeUrl != resourcev3.RouteType || !slices.Equal(resourceNames(t, next), routes) {
		t.Errorf("after a weight change: %s %v, want only the route configuration %v", next.TypeUrl, resourceNames(t, next), routes)
	}
}
