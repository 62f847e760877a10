package snapshot

import (
	"slices"
	"testing"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/policy"
)

func TestClustersOfRoutesAndEDSNames(t *testing.T) {
	services := []discovery.Service{
		{Name: "echo", Instances: []discovery.Instance{{ID: "e1", Address: "10.0.0.1", Port: 80, Version: "v1"}}},
		{Name: "greeter", Instances: []discovery.Instance{
			{ID: "g1", Address: "10.0.1.1", Port: 80, Version: "v1"},
			{ID: "g2", Address: "10.0.1.2", Port: 80, Version: "v2"},
		}},
	}
	// greeter's v2 has no weight: only the warming route names it.
	snap := mustBuild(t, services, map[string]policy.Weights{"greeter": {"v1": policy.Full}})
	r := snap.Resources
	echo, g1, g2 := ClusterName("echo", "v1"), ClusterName("greeter", "v1"), ClusterName("greeter", "v2")
	for _, tt := range []struct {
		routes, want []string
	}{
		{[]string{ServiceRouteConfigName("greeter")}, []string{g1, g2}},
		{[]string{ServiceRouteConfigName("echo"), ServiceRouteConfigName("greeter")}, []string{echo, g1, g2}},
		{[]string{RouteConfigName}, []string{echo, g1, g2}},
		{[]string{"no-such-routes", ServiceRouteConfigName("echo")}, []string{echo}},
		{nil, nil},
	} {
		if got := ClustersOfRoutes(r, tt.routes); !slices.Equal(got, tt.want) {
			t.Errorf("ClustersOfRoutes(%v) = %v, want %v", tt.routes, got, tt.want)
		}
	}
	if got, want := EDSNames(r, []string{g2, "no-such-cluster"}, false), []string{g2}; !slices.Equal(got, want) {
		t.Errorf("EDSNames(named) = %v, want %v", got, want)
	}
	if got, want := EDSNames(r, nil, true), []string{echo, g1, g2}; !slices.Equal(got, want) {
		t.Errorf("EDSNames(wildcard) = %v, want %v", got, want)
	}
}
