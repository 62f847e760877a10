package snapshot

import (
	"path/filepath"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weir-mesh/weir/envoy"
)

// good returns the consistent resources of a two-version service.
func good(t *testing.T) Resources {
	t.Helper()
	snap := buildInput(t, filepath.Join("testdata", "fixed-90-10.yaml"))
	return snap.Resources
}

func TestConsistent(t *testing.T) {
	tests := []struct {
		name    string
		breakIt func(r *Resources)
		want    []string // substrings of the error; none means consistent
	}{{
		name:    "as built",
		breakIt: func(*Resources) {},
	}, {
		name:    "missing route configuration",
		breakIt: func(r *Resources) { r.Outbound, r.Routes = nil, List[*routev3.RouteConfiguration]{} },
		want: []string{
			`listener "weir_outbound_http" references route configuration "weir_outbound", which is not served`,
			`listener "greeter" references route configuration "weir_outbound/greeter", which is not served`,
		},
	}, {
		// RDS absence is not deletion, and a client that asks for a name it
		// is not served waits for it: a route configuration no listener
		// uses is harmless, as an unused cluster is.
		name: "route configuration no listener uses",
		breakIt: func(r *Resources) {
			r.SidecarListeners, r.APIListeners = List[*listenerv3.Listener]{}, List[*listenerv3.Listener]{}
		},
	}, {
		name: "api listener alone references a missing route configuration",
		breakIt: func(r *Resources) {
			r.SidecarListeners = List[*listenerv3.Listener]{}
			r.APIListeners = appended(r.APIListeners, envoy.APIListener("other", envoy.HTTPConnectionManager("other", "nope")))
		},
		want: []string{`listener "other" references route configuration "nope", which is not served`},
	}, {
		name:    "missing cluster",
		breakIt: func(r *Resources) { r.Clusters = ListOf(r.Clusters.At(0)) },
		want: []string{
			`route configuration "weir_outbound" (virtual host "greeter") references cluster "greeter/v2", which is not served`,
			`route configuration "weir_outbound/greeter" (virtual host "greeter") references cluster "greeter/v2", which is not served`,
			`ClusterLoadAssignment "greeter/v2" belongs to no EDS cluster`,
		},
	}, {
		name:    "missing assignment",
		breakIt: func(r *Resources) { r.Endpoints = ListOf(r.Endpoints.Slice()[1:]...) },
		want:    []string{`EDS cluster "greeter/v1" has no ClusterLoadAssignment "greeter/v1"`},
	}, {
		name: "duplicate names",
		breakIt: func(r *Resources) {
			r.Clusters = appended(r.Clusters, r.Clusters.At(0))
			r.Endpoints = appended(r.Endpoints, r.Endpoints.At(0))
			r.Routes = appended(r.Routes, r.Outbound.Message())
			r.APIListeners = appended(r.APIListeners, r.APIListeners.At(0))
		},
		want: []string{
			`cluster "greeter/v1" is listed twice`,
			`ClusterLoadAssignment "greeter/v1" is listed twice`,
			`route configuration "weir_outbound" is listed twice`,
			`api listener "greeter" is listed twice`,
		},
	}, {
		name: "domain in two virtual hosts",
		breakIt: func(r *Resources) {
			vh := envoy.VirtualHost("greeter.service.consul", []string{"greeter.service.consul"}, []*routev3.Route{envoy.WeightedRoute(
				envoy.WeightedClusters([]envoy.ClusterWeight{{Name: "greeter/v1", Weight: 1}}))}, nil)
			rc := r.Outbound.Message()
			rc.VirtualHosts = append(rc.VirtualHosts, vh)
			r.Outbound = mustShared(t, rc)
		},
		want: []string{`domain "greeter.service.consul" is in virtual hosts "greeter" and "greeter.service.consul"`},
	}, {
		name: "inline route configuration names a missing cluster",
		breakIt: func(r *Resources) {
			hcm := envoy.HTTPConnectionManager("inline", "unused")
			hcm.RouteSpecifier = &hcmRouteConfig{RouteConfig: &routev3.RouteConfiguration{
				Name: "inline",
				VirtualHosts: []*routev3.VirtualHost{envoy.VirtualHost("x", []string{"x"}, []*routev3.Route{envoy.WeightedRoute(
					envoy.WeightedClusters([]envoy.ClusterWeight{{Name: "x/v1", Weight: 1}}))}, nil)},
			}}
			l := envoy.APIListener("x", envoy.HTTPConnectionManager("x", "unused"))
			l.ApiListener.ApiListener = mustAnyT(t, hcm)
			r.APIListeners = appended(r.APIListeners, l)
		},
		want: []string{`listener "x" (virtual host "x") references cluster "x/v1", which is not served`},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := good(t)
			tt.breakIt(&r)
			err := Consistent(r)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Consistent: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Consistent succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestValidateNamesResource(t *testing.T) {
	r := good(t)
	r.Endpoints = appended(r.Endpoints, &endpointv3.ClusterLoadAssignment{}) // cluster_name is required
	r.SidecarListeners = appended(r.SidecarListeners, &listenerv3.Listener{Name: "bad", FilterChains: []*listenerv3.FilterChain{{
		Filters: []*listenerv3.Filter{{}}, // a filter needs a name
	}}})
	err := validate(r)
	if err == nil {
		t.Fatal("validate succeeded, want errors")
	}
	for _, w := range []string{
		`type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment ""`,
		`type.googleapis.com/envoy.config.listener.v3.Listener "bad"`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
}

// TestValidateWantsPanicModeOff: validate passes the clusters weir builds
// and names every cluster that leaves Envoy's panic mode on, with no
// threshold or one above 0 %, though the cluster's own validation passes.
func TestValidateWantsPanicModeOff(t *testing.T) {
	r := good(t)
	if err := validate(r); err != nil {
		t.Fatalf("as built: %v", err)
	}
	unset := proto.Clone(envoy.Cluster("unset/v1")).(*clusterv3.Cluster)
	unset.CommonLbConfig = nil
	half := proto.Clone(envoy.Cluster("half/v1")).(*clusterv3.Cluster)
	half.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{HealthyPanicThreshold: &typev3.Percent{Value: 50}}
	r.Clusters = appended(r.Clusters, unset, half)
	err := validate(r)
	if err == nil {
		t.Fatal("validate succeeded, want errors")
	}
	for _, w := range []string{
		`type.googleapis.com/envoy.config.cluster.v3.Cluster "unset/v1": common_lb_config.healthy_panic_threshold unset`,
		`type.googleapis.com/envoy.config.cluster.v3.Cluster "half/v1": common_lb_config.healthy_panic_threshold 50 %`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
}

type hcmRouteConfig = hcmv3.HttpConnectionManager_RouteConfig

func mustAnyT(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// mustShared returns SharedRoutesOf(rc), failing t if it fails.
func mustShared(t *testing.T, rc *routev3.RouteConfiguration) *SharedRoutes {
	t.Helper()
	s, err := SharedRoutesOf(rc)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestConsistentExplainsDomains: a domain in three virtual hosts gets an
// error for each after the first, and a route configuration listed twice
// is that one error, not one per domain its copies share.
func TestConsistentExplainsDomains(t *testing.T) {
	vh := func(name string, domains ...string) *routev3.VirtualHost {
		return &routev3.VirtualHost{Name: name, Domains: domains}
	}
	rc := &routev3.RouteConfiguration{Name: "rc", VirtualHosts: []*routev3.VirtualHost{vh("a", "x"), vh("b", "x"), vh("c", "x", "y")}}
	err := Consistent(Resources{Routes: ListOf(rc)})
	want := `route configuration "rc": domain "x" is in virtual hosts "a" and "b"` + "\n" +
		`route configuration "rc": domain "x" is in virtual hosts "a" and "c"`
	if err == nil || err.Error() != want {
		t.Errorf("three virtual hosts: Consistent = %v, want\n%s", err, want)
	}

	rc = &routev3.RouteConfiguration{Name: "rc", VirtualHosts: []*routev3.VirtualHost{vh("a", "x"), vh("b", "y")}}
	err = Consistent(Resources{Routes: ListOf(rc, rc)})
	if want := `route configuration "rc" is listed twice`; err == nil || err.Error() != want {
		t.Errorf("listed twice: Consistent = %v, want %s", err, want)
	}
}
