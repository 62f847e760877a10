package consul

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/consul/api"

	"github.com/weir-mesh/weir/discovery"
)

func entry(id, address string, meta map[string]string, tags []string, checks ...*api.HealthCheck) *api.ServiceEntry {
	return &api.ServiceEntry{
		Node:    &api.Node{Node: "node-1", Address: "10.0.0.9"},
		Service: &api.AgentService{ID: id, Service: "greeter", Address: address, Port: 9000, Meta: meta, Tags: tags},
		Checks:  checks,
	}
}

func withPort(e *api.ServiceEntry, port int) *api.ServiceEntry {
	e.Service.Port = port
	return e
}

func check(id, status string) *api.HealthCheck { return &api.HealthCheck{CheckID: id, Status: status} }

func TestConvert(t *testing.T) {
	rule := versionRule{metaKey: "version", tagPrefix: "version="}
	entries := []*api.ServiceEntry{
		entry("meta", "10.0.0.1", map[string]string{"version": "v1"}, []string{"version=v9"}),
		entry("tag", "10.0.0.2", nil, []string{"canary", "version=v2"}),
		entry("none", "10.0.0.3", nil, nil),
		entry("node-address", "", map[string]string{"version": "v1"}, nil),
		entry("hostname", "greeter.internal", map[string]string{"version": "v1"}, nil),
		withPort(entry("port-high", "10.0.0.4", map[string]string{"version": "v1"}, nil), 70000),
		withPort(entry("port-negative", "10.0.0.5", map[string]string{"version": "v1"}, nil), -5),
		withPort(entry("port-zero", "10.0.0.6", map[string]string{"version": "v1"}, nil), 0),
		entry("port-max", "10.0.0.7", map[string]string{"version": "v1"}, nil),
		entry("slash-version", "10.0.0.8", map[string]string{"version": "b/c"}, nil),
		entry("bad-tag-version", "10.0.0.9", nil, []string{"version=-x"}),
		entry("unspecified", "0.0.0.0", map[string]string{"version": "v1"}, nil),
	}
	entries[8].Service.Port = 65535
	got := convert(entries, rule, false)
	want := conversion{
		instances: []discovery.Instance{
			{ID: "node-1/meta", Address: "10.0.0.1", Port: 9000, Version: "v1"},
			{ID: "node-1/tag", Address: "10.0.0.2", Port: 9000, Version: "v2"},
			{ID: "node-1/none", Address: "10.0.0.3", Port: 9000, Version: ""},
			{ID: "node-1/node-address", Address: "10.0.0.9", Port: 9000, Version: "v1"},
			{ID: "node-1/port-max", Address: "10.0.0.7", Port: 65535, Version: "v1"},
		},
		unversioned: []string{"node-1/none"},
		skipped: map[string]skipped{
			"node-1/hostname":        {reason: skipAddress},
			"node-1/port-high":       {reason: skipPort},
			"node-1/port-negative":   {reason: skipPort},
			"node-1/port-zero":       {reason: skipPort},
			"node-1/slash-version":   {reason: skipVersion},
			"node-1/bad-tag-version": {reason: skipVersion},
			"node-1/unspecified":     {reason: skipAddress},
		},
	}
	ignoreDetail := cmp.Transformer("reason", func(s skipped) skipReason { return s.reason })
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(conversion{}), ignoreDetail); diff != "" {
		t.Errorf("convert (-want +got):\n%s", diff)
	}
}

func TestHealth(t *testing.T) {
	tests := []struct {
		name           string
		checks         api.HealthChecks
		excludeWarning bool
		want           discovery.Health
	}{
		{"no checks", nil, false, discovery.Passing},
		{"all passing", api.HealthChecks{check("serfHealth", api.HealthPassing), check("svc", api.HealthPassing)}, false, discovery.Passing},
		{"warning serves", api.HealthChecks{check("svc", api.HealthWarning)}, false, discovery.Warning},
		{"warning excluded", api.HealthChecks{check("svc", api.HealthWarning)}, true, discovery.Critical},
		{"critical wins over warning", api.HealthChecks{check("a", api.HealthWarning), check("b", api.HealthCritical)}, false, discovery.Critical},
		{"node check counts", api.HealthChecks{check("serfHealth", api.HealthCritical), check("svc", api.HealthPassing)}, false, discovery.Critical},
		{"service maintenance drains", api.HealthChecks{check("_service_maintenance:greeter-1", api.HealthCritical)}, false, discovery.Maintenance},
		{"node maintenance drains", api.HealthChecks{check("svc", api.HealthCritical), check("_node_maintenance", api.HealthCritical)}, false, discovery.Maintenance},
	}
	for _, tt := range tests {
		if got := health(tt.checks, tt.excludeWarning); got != tt.want {
			t.Errorf("%s: health = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestNextIndex(t *testing.T) {
	tests := []struct{ prev, got, want uint64 }{
		{0, 42, 42},  // first call
		{42, 42, 42}, // timeout, nothing changed
		{42, 50, 50}, // a change
		{50, 7, 1},   // went backwards: reset, but never to 0
		{50, 0, 1},   // a zero index would make every query return at once
		{0, 0, 1},
	}
	for _, tt := range tests {
		if got := nextIndex(tt.prev, tt.got); got != tt.want {
			t.Errorf("nextIndex(%d, %d) = %d, want %d", tt.prev, tt.got, got, tt.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	base, ceiling := 100*time.Millisecond, 2*time.Second
	for n := 1; n <= 10; n++ {
		full := min(base<<(n-1), ceiling)
		for range 50 {
			if d := backoff(base, ceiling, n); d < full/2 || d > full {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, d, full/2, full)
			}
		}
	}
}

func TestJitter(t *testing.T) {
	for range 100 {
		if d := jitter(5*time.Minute, 16); d > 5*time.Minute || d < 5*time.Minute-5*time.Minute/16 {
			t.Fatalf("jitter = %v, outside (wait - wait/16, wait]", d)
		}
	}
}

// TestServiceNames leaves out Consul's own service and every name that is
// not a valid weir service name: `a/b` with version `c` would otherwise give
// the same cluster name as `a` with version `b/c`.
func TestServiceNames(t *testing.T) {
	list := map[string][]string{"consul": nil, "greeter": nil, "a": nil, "a/b": nil, "Billing": nil, "-x": nil, "ledger-2": nil}
	names, bad := serviceNames(list)
	if want := []string{"a", "greeter", "ledger-2"}; !slices.Equal(names, want) {
		t.Errorf("names = %q, want %q", names, want)
	}
	if got, want := sortedKeys(bad), []string{"-x", "Billing", "a/b"}; !slices.Equal(got, want) {
		t.Errorf("bad = %q, want %q", got, want)
	}
}
