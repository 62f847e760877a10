package snapshot

import (
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/envoy"
)

// TestEndpointsByVersionManyDuplicates covers versions with more endpoints
// than addressSet compares one by one.
func TestEndpointsByVersionManyDuplicates(t *testing.T) {
	var svc discovery.Service
	for i := range 6 * linearAddressSearch {
		svc.Instances = append(svc.Instances, discovery.Instance{
			ID:      fmt.Sprintf("i-%03d", i),
			Address: fmt.Sprintf("10.0.0.%d", i%(4*linearAddressSearch)), // the last third repeat the first
			Port:    8080,
			Version: []string{"v1", "v2"}[i%2],
			Health:  []discovery.Health{discovery.Passing, discovery.Maintenance, discovery.Critical}[i%3],
		})
	}
	bv, dups := endpointsByVersion(svc)
	if want := []string{"v1", "v2"}; !slices.Equal(dups, want) {
		t.Errorf("dups = %q, want %q", dups, want)
	}
	for _, ve := range bv {
		seen := map[string]bool{}
		var want []envoy.Endpoint
		for _, in := range svc.Instances {
			status, ok := healthStatus(in.Health)
			if in.Version != ve.version || !ok || seen[in.Address] {
				continue
			}
			seen[in.Address] = true
			want = append(want, envoy.Endpoint{Address: in.Address, Port: in.Port, Health: status})
		}
		if diff := cmp.Diff(want, ve.endpoints); diff != "" {
			t.Errorf("version %q (-want +got):\n%s", ve.version, diff)
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
