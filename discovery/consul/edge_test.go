package consul

import (
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/internal/consultest"
)

// TestUnroutableDataSkipped registers what Consul accepts but weir cannot
// route to: the valid instances are served, the rest left out and counted,
// instead of one bad entry failing the build of the whole world.
func TestUnroutableDataSkipped(t *testing.T) {
	agent := consultest.New(t, consultest.Options{})
	v := func(v string) map[string]string { return map[string]string{"version": v} }
	for _, reg := range []*api.AgentServiceRegistration{
		{ID: "greeter-1", Name: "greeter", Address: "127.0.0.1", Port: 9101, Meta: v("v1")},
		{ID: "greeter-high", Name: "greeter", Address: "127.0.0.1", Port: 70000, Meta: v("v1")},
		{ID: "greeter-negative", Name: "greeter", Address: "127.0.0.1", Port: -5, Meta: v("v1")},
		{ID: "a-1", Name: "a", Address: "127.0.0.1", Port: 9201, Meta: v("b/c")},
		{ID: "ab-1", Name: "a/b", Address: "127.0.0.1", Port: 9301, Meta: v("c")},
		{ID: "a-2", Name: "a", Address: "127.0.0.1", Port: 9202, Meta: v("v2")},
	} {
		register(t, agent, reg)
	}
	src, rec := startSource(t, agent, nil)
	m := rec.next(t, "greeter and a", func(m discovery.Model) bool {
		_, g := m.Service("greeter")
		_, a := m.Service("a")
		return g && a
	})
	if got := len(m.Services()); got != 2 {
		t.Errorf("model has %d services, want greeter and a only", got)
	}
	for service, want := range map[string]string{"greeter": "weir-test/greeter-1", "a": "weir-test/a-2"} {
		svc, _ := m.Service(service)
		if len(svc.Instances) != 1 || svc.Instances[0].ID != want {
			t.Errorf("%s instances = %+v, want only %s", service, svc.Instances, want)
		}
	}
	got := src.skippedCounts()
	for reason, want := range map[skipReason]int{skipPort: 2, skipVersion: 1, skipServiceName: 1, skipAddress: 0} {
		if got[reason] != want {
			t.Errorf("skipped %s = %d, want %d", reason, got[reason], want)
		}
	}
}

// TestResyncAtOnceAfterOutage: with a long wait time, the first query after
// Consul returns must not block for that wait on the old index when
// nothing changed: the source stops being stale well within that wait.
func TestResyncAtOnceAfterOutage(t *testing.T) {
	agent := consultest.New(t, consultest.Options{Persistent: true})
	register(t, agent, &api.AgentServiceRegistration{ID: "greeter-1", Name: "greeter", Address: "127.0.0.1", Port: 9101, Meta: map[string]string{"version": "v1"}})
	src, rec := startSource(t, agent, func(c *Config) { c.WaitTime = time.Minute })
	rec.next(t, "greeter", func(m discovery.Model) bool { _, ok := m.Service("greeter"); return ok })

	agent.Stop()
	until(t, waitTimeout, "the source to notice Consul is gone", func() bool { return src.Status().Stale })
	agent.Start()
	until(t, 20*time.Second, "the source to resync once Consul is back", func() bool { return !src.Status().Stale })
}

// until polls cond until it holds, failing the test after timeout.
func until(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHealthAnsweredByTheServers checks that a blocking query for a
// service's health is answered from the servers' state store, not from
// the agent's streaming view, which Consul 1.14 can serve at the latest
// index without an instance registered by then (see serviceHealth).
func TestHealthAnsweredByTheServers(t *testing.T) {
	agent := consultest.New(t, consultest.Options{})
	register(t, agent, &api.AgentServiceRegistration{ID: "greeter-1", Name: "greeter", Address: "127.0.0.1", Port: 9101})
	client, err := NewClient(ClientConfig{Address: agent.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	_, meta, err := serviceHealth(client, "greeter", &api.QueryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Waiting on an index before the current one answers at once.
	list, meta, err := serviceHealth(client, "greeter", &api.QueryOptions{WaitIndex: meta.LastIndex - 1, WaitTime: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if meta.QueryBackend != api.QueryBackendBlockingQuery {
		t.Errorf("a blocking query was answered by the %q backend, want %q", meta.QueryBackend, api.QueryBackendBlockingQuery)
	}
	if len(list) != 1 {
		t.Errorf("got %d instances, want greeter-1", len(list))
	}
}
