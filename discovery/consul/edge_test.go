package consul

import (
	"fmt"
	"io"
	"log"
	"os"
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
// nothing changed: the source stops being stale within seconds.
func TestResyncAtOnceAfterOutage(t *testing.T) {
	agent := consultest.New(t, consultest.Options{Persistent: true})
	register(t, agent, &api.AgentServiceRegistration{ID: "greeter-1", Name: "greeter", Address: "127.0.0.1", Port: 9101, Meta: map[string]string{"version": "v1"}})
	src, rec := startSource(t, agent, func(c *Config) { c.WaitTime = time.Minute })
	rec.next(t, "greeter", func(m discovery.Model) bool { _, ok := m.Service("greeter"); return ok })

	agent.Stop()
	until(t, waitTimeout, "the source to notice Consul is gone", func() bool { return src.Status().Stale })
	agent.Start()
	until(t, 5*time.Second, "the source to resync once Consul is back", func() bool { return !src.Status().Stale })
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

// TestTooManyConnections: after the first sync, more services appear than
// Consul's limits.http_max_conns_per_client lets weir watch. The 429s are
// explained, and the services already synced keep being updated.
// (TestModelAfterFirstSync pins down the model rule this relies on.)
func TestTooManyConnections(t *testing.T) {
	// Go's HTTP transport logs each 429 that Consul writes on a connection
	// it dialed but did not use yet; that is noise here.
	log.SetOutput(io.Discard)
	t.Cleanup(func() { log.SetOutput(os.Stderr) })
	agent := consultest.New(t, consultest.Options{}) // 200 connections per client
	register(t, agent, &api.AgentServiceRegistration{ID: "greeter-1", Name: "greeter", Address: "127.0.0.1", Port: 9101, Meta: map[string]string{"version": "v1"}})
	logs := &logBuffer{}
	_, rec := startSource(t, agent, func(c *Config) { c.Logger = logs.logger() })
	rec.next(t, "greeter", func(m discovery.Model) bool { _, ok := m.Service("greeter"); return ok })

	// 256 services in four transactions, over the test client's one
	// connection, already open, so that the limit does not refuse it.
	const services, perTxn = 256, 64
	for first := 0; first < services; first += perTxn {
		registerTxn(t, agent, "svc", first, perTxn)
	}
	until(t, waitTimeout, "a 429 explained", func() bool { return logs.count("http_max_conns_per_client") > 0 })

	register(t, agent, &api.AgentServiceRegistration{ID: "greeter-2", Name: "greeter", Address: "127.0.0.1", Port: 9102, Meta: map[string]string{"version": "v2"}})
	rec.next(t, "greeter-2 while new services cannot sync", func(m discovery.Model) bool {
		_, ok := instance(m, "greeter", "weir-test/greeter-2")
		return ok
	})
}

// registerTxn registers n services prefix-first..prefix-(first+n-1) on the
// agent's node in one transaction, so in one request.
func registerTxn(t *testing.T, agent *consultest.Agent, prefix string, first, n int) {
	t.Helper()
	var ops api.TxnOps
	for i := first; i < first+n; i++ {
		name := fmt.Sprintf("%s-%03d", prefix, i)
		ops = append(ops, &api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: "weir-test",
			Service: api.AgentService{ID: name, Service: name, Address: "127.0.0.1", Port: 8080}}})
	}
	ok, resp, _, err := agent.Client.Txn().Txn(ops, nil)
	if err != nil || !ok {
		t.Fatalf("registering %s-%03d..: ok %v, err %v, %+v", prefix, first, ok, err, resp)
	}
}
