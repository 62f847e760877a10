package consul

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/internal/consultest"
)

const waitTimeout = 30 * time.Second

// recorder is a discovery.Sink that keeps what it is given.
type recorder struct {
	models  chan discovery.Model
	rejects chan error
}

func (r *recorder) Update(m discovery.Model) { r.models <- m }
func (r *recorder) Reject(err error)         { r.rejects <- err }

// next returns the next model that satisfies ok, failing after waitTimeout.
func (r *recorder) next(t *testing.T, what string, ok func(discovery.Model) bool) discovery.Model {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case m := <-r.models:
			if ok(m) {
				return m
			}
		case err := <-r.rejects:
			t.Fatalf("source rejected: %v", err)
		case <-deadline:
			t.Fatalf("timed out waiting for a model with %s", what)
		}
	}
}

// startSource runs a Source against agent until the test ends.
func startSource(t *testing.T, agent *consultest.Agent, tune func(*Config)) (*Source, *recorder) {
	t.Helper()
	client, err := NewClient(ClientConfig{Address: agent.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Client: client, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		RetryBase: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond}
	if tune != nil {
		tune(&cfg)
	}
	src := New(cfg)
	rec := &recorder{models: make(chan discovery.Model, 1000), rejects: make(chan error, 100)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, rec) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return src, rec
}

func register(t *testing.T, a *consultest.Agent, reg *api.AgentServiceRegistration) {
	t.Helper()
	if err := a.Client.Agent().ServiceRegister(reg); err != nil {
		t.Fatal(err)
	}
}

// instance returns the named instance of service in m.
func instance(m discovery.Model, service, id string) (discovery.Instance, bool) {
	svc, ok := m.Service(service)
	if !ok {
		return discovery.Instance{}, false
	}
	i := slices.IndexFunc(svc.Instances, func(in discovery.Instance) bool { return in.ID == id })
	if i < 0 {
		return discovery.Instance{}, false
	}
	return svc.Instances[i], true
}

func hasHealth(service, id string, h discovery.Health) func(discovery.Model) bool {
	return func(m discovery.Model) bool {
		in, ok := instance(m, service, id)
		return ok && in.Health == h
	}
}

func TestDevAgent(t *testing.T) {
	agent := consultest.New(t, consultest.Options{})
	src, rec := startSource(t, agent, nil)
	node := "weir-test/"

	t.Run("versions from meta and tags", func(t *testing.T) {
		register(t, agent, &api.AgentServiceRegistration{ID: "greeter-1", Name: "greeter", Address: "127.0.0.1", Port: 9101, Meta: map[string]string{"version": "v1"}})
		register(t, agent, &api.AgentServiceRegistration{ID: "greeter-2", Name: "greeter", Address: "127.0.0.1", Port: 9201, Tags: []string{"version=v2"}})
		register(t, agent, &api.AgentServiceRegistration{ID: "greeter-3", Name: "greeter", Address: "127.0.0.1", Port: 9301})
		m := rec.next(t, "three greeter instances", func(m discovery.Model) bool {
			svc, ok := m.Service("greeter")
			return ok && len(svc.Instances) == 3
		})
		svc, _ := m.Service("greeter")
		if got, want := svc.Versions(), []string{"", "v1", "v2"}; !slices.Equal(got, want) {
			t.Errorf("versions = %q, want %q", got, want)
		}
		if _, ok := m.Service("consul"); ok {
			t.Error("Consul's own service is in the model")
		}
	})

	t.Run("TTL check critical, maintenance, back to passing", func(t *testing.T) {
		register(t, agent, &api.AgentServiceRegistration{ID: "ledger-1", Name: "ledger", Address: "127.0.0.1", Port: 9401,
			Meta:  map[string]string{"version": "v1"},
			Check: &api.AgentServiceCheck{CheckID: "ledger-1-ttl", TTL: "10m", Status: api.HealthPassing}})
		id := node + "ledger-1"
		rec.next(t, "ledger passing", hasHealth("ledger", id, discovery.Passing))

		steps := []struct {
			do   func() error
			want discovery.Health
		}{
			{func() error { return agent.Client.Agent().UpdateTTL("ledger-1-ttl", "down", api.HealthCritical) }, discovery.Critical},
			{func() error { return agent.Client.Agent().UpdateTTL("ledger-1-ttl", "slow", api.HealthWarning) }, discovery.Warning},
			{func() error { return agent.Client.Agent().EnableServiceMaintenance("ledger-1", "deploy") }, discovery.Maintenance},
			{func() error { return agent.Client.Agent().DisableServiceMaintenance("ledger-1") }, discovery.Warning},
			{func() error { return agent.Client.Agent().EnableNodeMaintenance("kernel upgrade") }, discovery.Maintenance},
			{func() error { return agent.Client.Agent().DisableNodeMaintenance() }, discovery.Warning},
			{func() error { return agent.Client.Agent().UpdateTTL("ledger-1-ttl", "ok", api.HealthPassing) }, discovery.Passing},
		}
		for _, step := range steps {
			if err := step.do(); err != nil {
				t.Fatal(err)
			}
			rec.next(t, "ledger "+step.want.String(), hasHealth("ledger", id, step.want))
		}
	})

	t.Run("services appear and vanish", func(t *testing.T) {
		register(t, agent, &api.AgentServiceRegistration{ID: "billing-1", Name: "billing", Address: "127.0.0.1", Port: 9501})
		rec.next(t, "billing", func(m discovery.Model) bool { _, ok := m.Service("billing"); return ok })
		if err := agent.Client.Agent().ServiceDeregister("billing-1"); err != nil {
			t.Fatal(err)
		}
		rec.next(t, "billing gone", func(m discovery.Model) bool { _, ok := m.Service("billing"); return !ok })
	})

	if st := src.Status(); !st.Synced || st.Stale {
		t.Errorf("status = %+v, want synced and not stale", st)
	}
}

func TestExcludeWarning(t *testing.T) {
	agent := consultest.New(t, consultest.Options{})
	register(t, agent, &api.AgentServiceRegistration{ID: "greeter-1", Name: "greeter", Address: "127.0.0.1", Port: 9101,
		Check: &api.AgentServiceCheck{CheckID: "greeter-1-ttl", TTL: "10m", Status: api.HealthWarning}})
	_, rec := startSource(t, agent, func(c *Config) { c.ExcludeWarning = true })
	rec.next(t, "a warning instance counted critical", hasHealth("greeter", "weir-test/greeter-1", discovery.Critical))
}

// TestFailStatic stops Consul under a running source: the last model stays,
// the source says it is stale, and when Consul returns — with a change
// made meanwhile — the source resyncs without losing anything.
func TestFailStatic(t *testing.T) {
	agent := consultest.New(t, consultest.Options{Persistent: true})
	register(t, agent, &api.AgentServiceRegistration{ID: "greeter-1", Name: "greeter", Address: "127.0.0.1", Port: 9101, Meta: map[string]string{"version": "v1"}})
	src, rec := startSource(t, agent, nil)
	before := rec.next(t, "greeter", func(m discovery.Model) bool { _, ok := m.Service("greeter"); return ok })

	agent.Stop()
	deadline := time.Now().Add(waitTimeout)
	for !src.Status().Stale {
		if time.Now().After(deadline) {
			t.Fatal("the source never noticed Consul was gone")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(rec.models); n != 0 {
		t.Fatalf("the source emitted %d models while Consul was down", n)
	}

	// While Consul is down, a second instance is defined; it registers as
	// Consul starts again.
	agent.WriteConfig("greeter-2.hcl", `service { id = "greeter-2", name = "greeter", address = "127.0.0.1", port = 9102, meta = { version = "v2" } }`)
	agent.Start()
	after := rec.next(t, "both instances", func(m discovery.Model) bool {
		_, ok := instance(m, "greeter", "weir-test/greeter-2")
		return ok
	})
	for _, svc := range before.Services() {
		for _, in := range svc.Instances {
			if _, ok := instance(after, svc.Name, in.ID); !ok {
				t.Errorf("instance %s was lost across the outage", in.ID)
			}
		}
	}
	deadline = time.Now().Add(waitTimeout)
	for src.Status().Stale {
		if time.Now().After(deadline) {
			t.Fatal("the source stayed stale after Consul returned")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStartsOnlyAfterFirstSync starts the source while Consul is down:
// nothing is emitted until Consul answers, and the first model that lists
// greeter holds its instance. (For a moment after it restarts, Consul can
// answer with a catalog it has not restored yet, without greeter: the
// source emits what Consul says, and the publisher refuses an empty
// world.)
func TestStartsOnlyAfterFirstSync(t *testing.T) {
	agent := consultest.New(t, consultest.Options{Persistent: true})
	register(t, agent, &api.AgentServiceRegistration{ID: "greeter-1", Name: "greeter", Address: "127.0.0.1", Port: 9101})
	agent.Stop()

	src, rec := startSource(t, agent, nil)
	deadline := time.Now().Add(waitTimeout)
	for st := src.Status(); !st.Stale || st.Error == ""; st = src.Status() {
		if time.Now().After(deadline) {
			t.Fatal("the source did not report Consul as unreachable")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := src.Status(); st.Synced || len(rec.models) != 0 {
		t.Fatalf("before any sync: status %+v, %d models emitted", st, len(rec.models))
	}
	agent.Start()
	first := rec.next(t, "greeter", func(m discovery.Model) bool {
		_, ok := m.Service("greeter")
		return ok
	})
	if _, ok := instance(first, "greeter", "weir-test/greeter-1"); !ok {
		t.Fatalf("the first model with greeter lacks its instance: %+v", first.Services())
	}
}
