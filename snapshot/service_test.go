package snapshot

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/envoy"
	"github.com/weir-mesh/weir/policy"
)

// TestEndpointsByVersionManyDuplicates covers versions with more endpoints
// than addressSet compares one by one: the first instance at an address
// counts, HEALTHY if any instance there is.
func TestEndpointsByVersionManyDuplicates(t *testing.T) {
	var svc discovery.Service
	const distinct = 4 * linearAddressSearch
	for i := range 6 * linearAddressSearch {
		svc.Instances = append(svc.Instances, discovery.Instance{
			ID:      fmt.Sprintf("i-%03d", i),
			Address: fmt.Sprintf("10.0.0.%d", i%distinct), // the last third repeat the first
			Port:    8080,
			Version: []string{"v1", "v2"}[i%2],
			// A repeat's health is another than the first's.
			Health: []discovery.Health{discovery.Passing, discovery.Maintenance, discovery.Critical}[(i+i/distinct)%3],
		})
	}
	bv, dups := endpointsByVersion(svc)
	if want := []string{"v1", "v2"}; !slices.Equal(dups, want) {
		t.Errorf("dups = %q, want %q", dups, want)
	}
	for _, ve := range bv {
		at := map[string]int{} // each address's endpoint in want
		var want []envoy.Endpoint
		for _, in := range svc.Instances {
			status, ok := healthStatus(in.Health)
			if in.Version != ve.version || !ok {
				continue
			}
			if i, seen := at[in.Address]; seen {
				if status == corev3.HealthStatus_HEALTHY {
					want[i].Health = status
				}
				continue
			}
			at[in.Address] = len(want)
			want = append(want, envoy.Endpoint{Address: in.Address, Port: in.Port, Health: status})
		}
		if diff := cmp.Diff(want, ve.endpoints); diff != "" {
			t.Errorf("version %q (-want +got):\n%s", ve.version, diff)
		}
	}
}

// TestServingCountIsTheModels: the serving count of each version that
// endpointsByVersion counts on the way is the model's, versions without
// serving instances included.
func TestServingCountIsTheModels(t *testing.T) {
	instance := func(id, version string, h discovery.Health) discovery.Instance {
		return discovery.Instance{ID: id, Address: "10.0.0." + id, Port: 8080, Version: version, Health: h}
	}
	for _, svc := range []discovery.Service{
		{Name: "one", Instances: []discovery.Instance{instance("1", "v1", discovery.Passing)}},
		{Name: "mixed", Instances: []discovery.Instance{
			instance("1", "v1", discovery.Warning), instance("2", "v2", discovery.Maintenance),
			instance("3", "v1", discovery.Critical), instance("4", "v3", discovery.Critical),
			instance("5", "v2", discovery.Passing), instance("6", "", discovery.Passing)}},
		{Name: "down", Instances: []discovery.Instance{
			instance("1", "v1", discovery.Critical), instance("2", "v2", discovery.Maintenance)}},
	} {
		bv, _ := endpointsByVersion(svc)
		if got, want := bv.servingCount(), svc.ServingCount(); !maps.Equal(got, want) {
			t.Errorf("%s: serving %v, the model's %v", svc.Name, got, want)
		}
	}
}

// TestDomainsNameEveryPort checks that domains names the service and its
// Consul DNS name bare and with each distinct port, sorted, once each.
func TestDomainsNameEveryPort(t *testing.T) {
	svc := discovery.Service{Name: "greeter", Instances: []discovery.Instance{
		{ID: "a", Port: 8080}, {ID: "b", Port: 9090}, {ID: "c", Port: 8080}}}
	want := []string{
		"greeter", "greeter.service.consul", "greeter.service.consul:8080", "greeter.service.consul:9090",
		"greeter:8080", "greeter:9090",
	}
	if got := domains(svc); !slices.Equal(got, want) {
		t.Errorf("domains = %q, want %q", got, want)
	}
	if got := domains(discovery.Service{Name: "empty"}); !slices.Equal(got, []string{"empty", "empty.service.consul"}) {
		t.Errorf("domains of a service without instances = %q", got)
	}
}

// TestServedVersionHasAHealthyEndpoint checks that a version that gets
// weight has a HEALTHY endpoint when an older registration at the same
// address and port, first by ID, is in maintenance (as Consul keeps one
// during a re-registration): only that DRAINING copy was listed, grpc-go
// drops DRAINING endpoints, and the version's share of calls failed.
func TestServedVersionHasAHealthyEndpoint(t *testing.T) {
	snap := build(t, policy.Weights{"v1": 5000, "v2": 5000},
		discovery.Instance{ID: "a", Address: "10.0.0.1", Port: 9101, Version: "v1", Health: discovery.Passing},
		discovery.Instance{ID: "b-1", Address: "10.0.0.2", Port: 9201, Version: "v2", Health: discovery.Maintenance},
		discovery.Instance{ID: "b-2", Address: "10.0.0.2", Port: 9201, Version: "v2", Health: discovery.Passing})
	if w := servedWeights(snap)["greeter/v2"]; w != 5000 {
		t.Fatalf("greeter/v2 weight %d, want 5000", w)
	}
	var health []corev3.HealthStatus
	for _, l := range claOf(snap, "greeter/v2").GetEndpoints() {
		for _, ep := range l.GetLbEndpoints() {
			health = append(health, ep.GetHealthStatus())
		}
	}
	if !slices.Equal(health, []corev3.HealthStatus{corev3.HealthStatus_HEALTHY}) {
		t.Errorf("greeter/v2's endpoints: %v, want one HEALTHY", health)
	}
}
