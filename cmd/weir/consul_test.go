package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus/testutil"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/weir-mesh/weir/examples/quickstart/xdsclient"
	"github.com/weir-mesh/weir/internal/consultest"
	"github.com/weir-mesh/weir/policy"
	"github.com/weir-mesh/weir/snapshot"
)

// startWeirConsul serves from the Consul agent a, with policies from dir.
func startWeirConsul(t testing.TB, a *consultest.Agent, policies string) *weir {
	t.Helper()
	cfg := testConfig(policies)
	// At most a second between retries: the outage tests give weir 20 s to
	// see Consul back, most of which the default 15 s ceiling could take.
	cfg.Consul = consulConfig{VersionMetaKey: "version", VersionTagPrefix: "version=", WaitTime: time.Minute, retryMax: time.Second}
	cfg.Consul.Address = a.Addr()
	return startWeirWith(t, cfg)
}

func registerInstance(t testing.TB, a *consultest.Agent, id, version string, port int) {
	t.Helper()
	err := a.Client.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: id, Name: "greeter", Address: "127.0.0.1", Port: port, Meta: map[string]string{"version": version}})
	if err != nil {
		t.Fatal(err)
	}
}

func policyDir(t testing.TB, policy string) string {
	t.Helper()
	dir := t.TempDir()
	if policy != "" {
		writeFile(t, filepath.Join(dir, "greeter.yaml"), policy)
	}
	return dir
}

// applied waits until weir has published something other than previous and
// every connected proxy has applied the clusters, endpoints and routes
// being served.
func (w *weir) applied(t testing.TB, previous string) string {
	t.Helper()
	var version string
	until(t, "a new snapshot to be published and applied", func() bool {
		st := w.srv.publisher.Status()
		if st.Version == previous || !w.srv.publisher.ServingTarget() {
			return false
		}
		for _, typ := range []string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.RouteType} {
			if len(w.srv.tracker.Pending(typ, w.srv.cache.VersionFor)) > 0 {
				return false
			}
		}
		version = st.Version
		return true
	})
	return version
}

// heldCanary is a canary rollout whose step 1 would hold for an hour.
const heldCanary = `service: greeter
strategy: canary
stable: v1
canary:
  version: v2
  steps:
    - setWeight: 10
    - pause: 1h
`

// TestConsulFailStatic stops Consul under a rollout: weir keeps serving the
// last known catalog, says so, pauses the rollout while it cannot know
// which instances serve, and when Consul answers again resyncs with one
// push and lets the rollout go on.
func TestConsulFailStatic(t *testing.T) {
	agent := consultest.New(t, consultest.Options{Persistent: true})
	registerInstance(t, agent, "greeter-v1-a", "v1", 9101)
	registerInstance(t, agent, "greeter-v2-a", "v2", 9103)
	w := startWeirConsul(t, agent, policyDir(t, heldCanary))
	until(t, "/readyz to answer 200", func() bool { code, _ := w.readyz(t); return code == http.StatusOK })
	rollout := func() policy.Rollout { return w.srv.engine.Rollouts()[0] }
	until(t, "the canary to hold at step 1", func() bool { r := rollout(); return r.Step == 1 && !r.AppliedAt.IsZero() })
	published := testutil.ToFloat64(w.srv.metrics.Publishes)
	servedBefore := w.srv.publisher.Status().Version

	agent.Stop()
	var r readiness
	until(t, "/readyz to say stale", func() bool { _, r = w.readyz(t); return r.Stale != nil })
	if !r.Ready || r.Version != servedBefore || !strings.Contains(r.Stale.Message, "serving stale") {
		t.Fatalf("while Consul is down /readyz = %+v, want ready, serving %s, stale", r, servedBefore)
	}
	until(t, "the rollout to pause for discovery", func() bool { return rollout().Cause == policy.PausedByDiscovery })
	if got := rollout(); got.Phase != policy.Paused || !strings.Contains(got.Reason, "discovery is stale") || got.Step != 1 {
		t.Fatalf("while Consul is down the rollout is %s at step %d (%q), want paused at step 1 saying discovery is stale", got.Phase, got.Step, got.Reason)
	}
	t.Logf("while Consul is down the rollout is paused: %s", rollout().Reason)
	until(t, "the staleness metric to grow", func() bool {
		return strings.Contains(w.metrics(t), "weir_discovery_stale_seconds ") &&
			!strings.Contains(w.metrics(t), "weir_discovery_stale_seconds 0\n")
	})
	if got := testutil.ToFloat64(w.srv.metrics.Publishes); got != published {
		t.Fatalf("weir published %v snapshots while Consul was down", got-published)
	}

	// A second instance is defined while Consul is down; when it returns,
	// weir resyncs and pushes the difference once.
	agent.WriteConfig("greeter-v1-b.hcl", `service { id = "greeter-v1-b", name = "greeter", address = "127.0.0.1", port = 9102, meta = { version = "v1" } }`)
	agent.Start()
	until(t, "/readyz to stop saying stale", func() bool { _, r = w.readyz(t); return r.Stale == nil && r.Version != servedBefore })
	if got := testutil.ToFloat64(w.srv.metrics.Publishes); got != published+1 {
		t.Errorf("resync after the outage published %v snapshots, want 1", got-published)
	}
	cla := w.srv.publisher.Current().Endpoints.At(0)
	if n := len(cla.GetEndpoints()[0].GetLbEndpoints()); n != 2 {
		t.Errorf("after the resync greeter/v1 has %d endpoints, want 2", n)
	}
	until(t, "the rollout to resume", func() bool { return rollout().Phase == policy.Progressing })
	if got := rollout(); got.Step != 1 || got.Weights()["v2"] != 10*100 {
		t.Errorf("resumed at step %d with %s, want step 1 with v2 at 10 %%", got.Step, got.Weights())
	}
}

func TestConsulStartupGate(t *testing.T) {
	agent := consultest.New(t, consultest.Options{Persistent: true})
	registerInstance(t, agent, "greeter-v1-a", "v1", 9101)
	agent.Stop()

	w := startWeirConsul(t, agent, policyDir(t, ""))
	until(t, "weir to notice Consul is down", func() bool { _, r := w.readyz(t); return r.Stale != nil })
	if code, r := w.readyz(t); code != http.StatusServiceUnavailable || r.Version != "" || w.srv.cache.Version() != "" {
		t.Fatalf("with Consul down from the start: /readyz %d %+v, cache %q; want 503 and nothing published", code, r, w.srv.cache.Version())
	}
	agent.Start()
	until(t, "/readyz to answer 200", func() bool { code, _ := w.readyz(t); return code == http.StatusOK })
}

// TestConsulRollingReplacement replaces greeter v1 by v2 the way a rolling
// deploy does — v2 instances register one by one while v1 instances go to
// maintenance, drain and deregister — under continuous RPCs from a real
// gRPC xDS client. No RPC may fail, and the policy's 70/30 split holds
// whenever both versions serve.
func TestConsulRollingReplacement(t *testing.T) {
	agent := consultest.New(t, consultest.Options{})
	ports := map[string]int{}
	for _, id := range []string{"greeter-v1-a", "greeter-v1-b", "greeter-v2-a", "greeter-v2-b"} {
		ports[id] = startBackend(t, id, id[8:10])
	}
	registerInstance(t, agent, "greeter-v1-a", "v1", ports["greeter-v1-a"])
	registerInstance(t, agent, "greeter-v1-b", "v1", ports["greeter-v1-b"])
	w := startWeirConsul(t, agent, policyDir(t, greeterPolicy("70", "30")))
	until(t, "/readyz to answer 200", func() bool { code, _ := w.readyz(t); return code == http.StatusOK })

	conn, err := xdsclient.Dial("xds:///greeter", w.xdsAddr, "rolling-client")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &caller{client: testpb.NewTestServiceClient(conn)}
	ctx := context.Background()
	if r := c.call(ctx); r.err != nil {
		t.Fatal(r.err)
	}
	version := w.applied(t, "")
	flowCtx, stopFlow := context.WithCancel(ctx)
	flowDone := make(chan struct{})
	go func() {
		defer close(flowDone)
		for flowCtx.Err() == nil {
			c.call(ctx)
		}
	}()
	defer func() { stopFlow(); <-flowDone }()

	agentAPI := agent.Client.Agent()
	steps := []struct {
		name   string
		do     func() error
		wantV2 float64 // expected v2 share in percent once applied
	}{
		{"v2-a registers", func() error {
			return agentAPI.ServiceRegister(reg("greeter-v2-a", "v2", ports["greeter-v2-a"]))
		}, 30},
		{"v1-a drains", func() error { return agentAPI.EnableServiceMaintenance("greeter-v1-a", "rolling deploy") }, 30},
		{"v2-b registers", func() error {
			return agentAPI.ServiceRegister(reg("greeter-v2-b", "v2", ports["greeter-v2-b"]))
		}, 30},
		{"v1-a deregisters", func() error { return agentAPI.ServiceDeregister("greeter-v1-a") }, 30},
		{"v1-b drains", func() error { return agentAPI.EnableServiceMaintenance("greeter-v1-b", "rolling deploy") }, 100},
		{"v1-b deregisters", func() error { return agentAPI.ServiceDeregister("greeter-v1-b") }, 100},
	}
	for _, step := range steps {
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		version = w.applied(t, version)
		from := time.Now()
		until(t, "1,000 RPCs after "+step.name, func() bool { return len(since(c.results(), from)) >= 1000 })
		share := v2Share(since(c.results(), from))
		if share < step.wantV2-7 || share > step.wantV2+7 {
			t.Errorf("after %s: v2 share %.1f %%, want %.0f %% ± 7 %%", step.name, share, step.wantV2)
		}
		t.Logf("after %s: v2 share %.1f %%", step.name, share)
	}
	stopFlow()
	<-flowDone
	failed := 0
	for _, r := range c.results() {
		if r.err != nil {
			failed++
			if failed <= 5 {
				t.Errorf("RPC failed at %s: %v", r.at.Format(time.StampMilli), r.err)
			}
		}
	}
	t.Logf("%d RPCs, %d failed", len(c.results()), failed)
}

func reg(id, version string, port int) *api.AgentServiceRegistration {
	return &api.AgentServiceRegistration{ID: id, Name: "greeter", Address: "127.0.0.1", Port: port, Meta: map[string]string{"version": version}}
}

// TestConsulBurstCoalesces registers 50 instances at once, as a deploy
// does: weir pushes them in one or two snapshots, not fifty.
func TestConsulBurstCoalesces(t *testing.T) {
	agent := consultest.New(t, consultest.Options{})
	registerInstance(t, agent, "greeter-v1-a", "v1", 9101)
	cfg := testConfig(policyDir(t, ""))
	// A long window, as in xds's TestPublisherCoalescesBursts: Consul hands
	// the registrations over one blocking query at a time, and on a loaded
	// machine those come more than a quarter of 100 ms apart, a slow stream
	// the publisher rightly builds every Debounce (4 to 9 pushes).
	cfg.Debounce = time.Second
	cfg.Consul = consulConfig{VersionMetaKey: "version", VersionTagPrefix: "version=", WaitTime: time.Minute}
	cfg.Consul.Address = agent.Addr()
	w := startWeirWith(t, cfg)
	until(t, "/readyz to answer 200", func() bool { code, _ := w.readyz(t); return code == http.StatusOK })
	published := testutil.ToFloat64(w.srv.metrics.Publishes)

	errs := make(chan error, 50)
	for i := range 50 {
		go func() {
			errs <- agent.Client.Agent().ServiceRegister(reg(fmt.Sprintf("greeter-v2-%02d", i), "v2", 10000+i))
		}()
	}
	for range 50 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	until(t, "all 51 instances to be served", func() bool {
		s := w.srv.publisher.Current()
		n := 0
		for cla := range s.Endpoints.Values() {
			n += len(cla.GetEndpoints()[0].GetLbEndpoints())
		}
		return n == 51 && slices.Contains(snapshot.RoutedClusters(s.Resources), "greeter/v2")
	})
	pushes := testutil.ToFloat64(w.srv.metrics.Publishes) - published
	t.Logf("50 registrations caused %v pushes", pushes)
	// A new version takes a warming push before it gets traffic; the burst
	// itself must fold into one or two more.
	if pushes > 3 {
		t.Errorf("50 registrations caused %v pushes, want at most 3 (warm + 2)", pushes)
	}
}

// TestConsulHealthReachesEndpoints follows Consul health through to the
// endpoints weir serves: versions from meta and from tags, a TTL check going
// critical, maintenance, and back.
func TestConsulHealthReachesEndpoints(t *testing.T) {
	agent := consultest.New(t, consultest.Options{})
	agentAPI := agent.Client.Agent()
	must(t, agentAPI.ServiceRegister(&api.AgentServiceRegistration{ID: "greeter-v1-a", Name: "greeter", Address: "127.0.0.1", Port: 9101,
		Meta: map[string]string{"version": "v1"}, Check: &api.AgentServiceCheck{CheckID: "v1-ttl", TTL: "10m", Status: api.HealthPassing}}))
	must(t, agentAPI.ServiceRegister(&api.AgentServiceRegistration{ID: "greeter-v2-a", Name: "greeter", Address: "127.0.0.1", Port: 9201,
		Tags: []string{"version=v2"}}))
	w := startWeirConsul(t, agent, policyDir(t, ""))

	// endpoint returns the health of the v1 endpoint served, or "absent".
	endpoint := func() string {
		s := w.srv.publisher.Current()
		if s == nil {
			return "no snapshot"
		}
		for cla := range s.Endpoints.Values() {
			if cla.GetClusterName() != "greeter/v1" {
				continue
			}
			for _, locality := range cla.GetEndpoints() {
				for _, ep := range locality.GetLbEndpoints() {
					return ep.GetHealthStatus().String()
				}
			}
			return "absent"
		}
		return "no cluster"
	}
	until(t, "clusters for v1 (meta) and v2 (tag)", func() bool {
		s := w.srv.publisher.Current()
		return s != nil && slices.Equal(snapshot.RoutedClusters(s.Resources), []string{"greeter/v1", "greeter/v2"})
	})
	steps := []struct {
		do   func() error
		want string
	}{
		{func() error { return agentAPI.UpdateTTL("v1-ttl", "down", "critical") }, "absent"},
		{func() error { return agentAPI.UpdateTTL("v1-ttl", "up", "passing") }, "HEALTHY"},
		{func() error { return agentAPI.EnableServiceMaintenance("greeter-v1-a", "drain") }, "DRAINING"},
		{func() error { return agentAPI.DisableServiceMaintenance("greeter-v1-a") }, "HEALTHY"},
	}
	for _, step := range steps {
		must(t, step.do())
		until(t, "the v1 endpoint to be "+step.want, func() bool { return endpoint() == step.want })
	}
}
