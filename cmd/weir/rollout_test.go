package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/weir-mesh/weir/examples/quickstart/xdsclient"
	"github.com/weir-mesh/weir/policy"
	"github.com/weir-mesh/weir/snapshot"
)

// rolloutEnv is weir serving a catalog of greeter v1 and v2 (two live
// backends each) with one policy file, and a gRPC xDS client calling it.
type rolloutEnv struct {
	w          *weir
	c          *caller
	catalog    string
	policyFile string
	ports      map[string]int
	stateDir   string
	clock      *stepClock // the rollout engine's, across restarts
}

// stepClock is a clock that stands still until a test moves it, so that
// a timed rollout step (a pause, a rolling interval) cannot end while the
// test still measures it, however slow the machine.
type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

const greeterV1V2 = `services:
  - name: greeter
    instances:
      - {id: greeter-v1-a, address: 127.0.0.1, port: %d, version: v1}
      - {id: greeter-v1-b, address: 127.0.0.1, port: %d, version: v1}
      - {id: greeter-v2-a, address: 127.0.0.1, port: %d, version: v2, health: %s}
      - {id: greeter-v2-b, address: 127.0.0.1, port: %d, version: v2, health: %s}
`

func startRollout(t *testing.T, policyText string) *rolloutEnv {
	t.Helper()
	env := rolloutFiles(t, policyText)
	env.start(t)
	return env
}

// rolloutFiles starts greeter's four backends and writes the catalog and
// the policy directory with policyText, without starting weir.
func rolloutFiles(t *testing.T, policyText string) *rolloutEnv {
	t.Helper()
	env := &rolloutEnv{ports: map[string]int{}, stateDir: t.TempDir(), clock: &stepClock{now: time.Now()}}
	for _, id := range []string{"greeter-v1-a", "greeter-v1-b", "greeter-v2-a", "greeter-v2-b"} {
		env.ports[id] = startBackend(t, id, id[8:10])
	}
	dir := t.TempDir()
	env.catalog = filepath.Join(dir, "catalog.yaml")
	env.writeCatalog(t, "passing")
	policies := filepath.Join(dir, "policies")
	must(t, os.Mkdir(policies, 0o755))
	env.policyFile = filepath.Join(policies, "greeter.yaml")
	writeFile(t, env.policyFile, policyText)
	return env
}

func (env *rolloutEnv) writeCatalog(t *testing.T, v2Health string) {
	t.Helper()
	writeFile(t, env.catalog, fmt.Sprintf(greeterV1V2, env.ports["greeter-v1-a"], env.ports["greeter-v1-b"],
		env.ports["greeter-v2-a"], v2Health, env.ports["greeter-v2-b"], v2Health))
}

// start serves weir (again) with the environment's files and state.
func (env *rolloutEnv) start(t *testing.T) {
	t.Helper()
	cfg := testConfig(filepath.Dir(env.policyFile))
	cfg.Catalog, cfg.StateDir, cfg.clock = env.catalog, env.stateDir, env.clock.Now
	env.w = startWeirWith(t, cfg)
	env.dial(t)
}

// rolloutClient is the node id of the environment's gRPC client.
const rolloutClient = "rollout-client"

// dial waits until weir is ready and connects a gRPC client of greeter.
func (env *rolloutEnv) dial(t *testing.T) {
	t.Helper()
	until(t, "/readyz to answer 200", func() bool { code, _ := env.w.readyz(t); return code == 200 })
	conn, err := xdsclient.Dial("xds:///greeter", env.w.xdsAddr, rolloutClient)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	env.c = &caller{client: testpb.NewTestServiceClient(conn)}
}

// rollout returns greeter's rollout.
func (env *rolloutEnv) rollout() policy.Rollout {
	for _, r := range env.w.srv.engine.Rollouts() {
		if r.Service == "greeter" {
			return r
		}
	}
	return policy.Rollout{}
}

// await waits until greeter's rollout satisfies cond and the fleet has
// applied the routing it asks for.
func (env *rolloutEnv) await(t *testing.T, what string, cond func(policy.Rollout) bool) policy.Rollout {
	t.Helper()
	var r policy.Rollout
	until(t, what, func() bool {
		r = env.rollout()
		return cond(r) && env.w.srv.engine.IsApplied("greeter")
	})
	return r
}

// toHalfPause runs the canary policy's rollout past its 20 % step and
// timed pause to its indefinite pause at 50 %, and returns it there.
func (env *rolloutEnv) toHalfPause(t *testing.T) policy.Rollout {
	t.Helper()
	env.await(t, "the 20 % step", func(r policy.Rollout) bool { return r.Weight == 2000 })
	env.elapse(t, 3*time.Second)
	return env.await(t, "the indefinite pause at 50 %", func(r policy.Rollout) bool { return r.Phase == policy.Paused })
}

// do runs op on greeter's rollout, failing the test if it is refused.
func (env *rolloutEnv) do(t *testing.T, op policy.Operation) {
	t.Helper()
	if err := env.w.srv.engine.Do("greeter", op); err != nil {
		t.Fatal(err)
	}
}

// elapse lets d pass on the rollout's clock once the engine has seen the
// fleet apply greeter's current step, from which its timers count.
func (env *rolloutEnv) elapse(t *testing.T, d time.Duration) {
	t.Helper()
	until(t, "the engine to see its step applied", func() bool { return !env.rollout().AppliedAt.IsZero() })
	env.clock.advance(d)
}

// share makes n sequential RPCs with the given metadata and returns the
// percentage answered by v2.
func (env *rolloutEnv) share(t *testing.T, n int, md ...string) float64 {
	t.Helper()
	ctx := context.Background()
	if len(md) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, md...)
	}
	own := make([]result, n) // the background flow calls too: count only these
	for i := range own {
		own[i] = env.c.call(ctx)
	}
	return v2Share(own)
}

// flow keeps RPCs going in the background until the test ends, then checks
// that none failed.
func (env *rolloutEnv) flow(t *testing.T) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			env.c.call(context.Background())
		}
	}()
	t.Cleanup(func() {
		stop()
		<-done
		failed := 0
		for _, r := range env.c.results() {
			if r.err != nil {
				if failed++; failed <= 5 {
					t.Errorf("RPC failed at %s: %v", r.at.Format(time.StampMilli), r.err)
				}
			}
		}
		t.Logf("%d RPCs, %d failed", len(env.c.results()), failed)
	})
}

func op(f func(r policy.Rollout, now time.Time, by, reason string) (policy.Rollout, policy.Event, error)) policy.Operation {
	return func(_ policy.Policy, r policy.Rollout, now time.Time) (policy.Rollout, policy.Event, error) {
		return f(r, now, "test", "e2e")
	}
}

// near checks a v2 share measured over gRPC's random picks. Tolerances of
// at least 4.4 standard deviations (±6 at 10 % of 500 calls, ±8 at 50 % of
// 1,000) fail a correct split less than once in 100,000 checks.
func near(t *testing.T, what string, got, want, tolerance float64) {
	t.Helper()
	if got < want-tolerance || got > want+tolerance {
		t.Errorf("%s: v2 share %.1f %%, want %.0f %% ± %.0f", what, got, want, tolerance)
	} else {
		t.Logf("%s: v2 share %.1f %%", what, got)
	}
}

// The timed steps below (pause, interval) end when a test moves the
// rollout's clock past them (see elapse), and not while it measures them.
const canaryPolicy = `service: greeter
strategy: canary
stable: v1
canary:
  version: v2
  steps:
    - setWeight: 20
    - pause: 3s
    - setWeight: 50
    - pause: {}
  match:
    - header: {name: x-canary, exact: "true"}
progressDeadline: 30s
`

func TestRolloutCanaryToPromote(t *testing.T) {
	env := startRollout(t, canaryPolicy)
	env.flow(t)
	env.await(t, "the 20 % step", func(r policy.Rollout) bool { return r.Weight == 2000 })
	near(t, "at 20 %", env.share(t, 1000), 20, 6)
	if got := env.share(t, 200, "x-canary", "true"); got != 100 {
		t.Errorf("requests with x-canary: true went %.1f %% to v2, want all", got)
	}
	env.elapse(t, 3*time.Second)
	env.await(t, "the indefinite pause at 50 %", func(r policy.Rollout) bool {
		return r.Phase == policy.Paused && r.Weight == 5000
	})
	near(t, "at 50 %", env.share(t, 1000), 50, 8)
	env.do(t, op(policy.Promote))
	env.await(t, "completion", func(r policy.Rollout) bool { return r.Phase == policy.Completed })
	near(t, "promoted", env.share(t, 500), 100, 0)
	m := env.w.metrics(t)
	for _, want := range []string{`weir_rollout_phase{phase="completed",service="greeter",strategy="canary"} 1`,
		`weir_rollout_weight_percent{service="greeter",version="v2"} 100`, `weir_rollout_applied{service="greeter"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestRolloutAbortIsOnePush(t *testing.T) {
	env := startRollout(t, canaryPolicy)
	env.flow(t)
	env.toHalfPause(t)
	pushes := env.w.srv.metrics.Publishes
	before := testutilValue(pushes)
	env.do(t, op(policy.Abort))
	env.await(t, "the abort applied", func(r policy.Rollout) bool { return r.Phase == policy.Aborted })
	until(t, "the abort to be published", func() bool { return testutilValue(pushes) > before })
	near(t, "aborted", env.share(t, 500), 0, 0)
	if got := testutilValue(pushes) - before; got != 1 {
		t.Errorf("abort took %v pushes, want 1", got)
	}
}

// TestRolloutRetryStartsOver aborts a canary at 50 % and retries it under
// a steady flow of RPCs: the retried rollout starts over, the new version
// takes the first step's 20 % again, and no RPC fails on the way.
func TestRolloutRetryStartsOver(t *testing.T) {
	env := startRollout(t, canaryPolicy)
	env.flow(t)
	env.toHalfPause(t)
	env.do(t, op(policy.Abort))
	env.await(t, "the abort applied", func(r policy.Rollout) bool { return r.Phase == policy.Aborted })
	near(t, "aborted", env.share(t, 500), 0, 0)
	retry := func(p policy.Policy, r policy.Rollout, now time.Time) (policy.Rollout, policy.Event, error) {
		return policy.Retry(p, r, now, "test", "the fix is out")
	}
	env.do(t, retry)
	r := env.await(t, "the retried rollout's 20 % step", func(r policy.Rollout) bool {
		return r.Phase == policy.Progressing && r.Weight == 2000
	})
	near(t, "retried", env.share(t, 1000), 20, 6)
	if err := env.w.srv.engine.Do("greeter", retry); !errors.Is(err, policy.ErrNotAborted) {
		t.Errorf("retrying the %s rollout: %v, want ErrNotAborted", r.Phase, err)
	}
}

func TestRolloutPausesWhenCanaryLosesAllEndpoints(t *testing.T) {
	env := startRollout(t, canaryPolicy)
	env.flow(t)
	env.await(t, "the 20 % step", func(r policy.Rollout) bool { return r.Weight == 2000 })
	env.writeCatalog(t, "critical")
	r := env.await(t, "a health pause", func(r policy.Rollout) bool { return r.Cause == policy.PausedByHealth })
	if !strings.Contains(r.Reason, "v2 has no serving instances") {
		t.Errorf("pause reason %q does not name v2", r.Reason)
	}
	until(t, "v2's share to move to stable", func() bool { return env.share(t, 50) == 0 })
	near(t, "v2 critical", env.share(t, 500), 0, 0)
	env.writeCatalog(t, "passing")
	env.await(t, "the rollout to resume", func(r policy.Rollout) bool { return r.Phase == policy.Progressing || r.Weight == 5000 })
}

const rollingPolicy = `service: greeter
strategy: rolling
from: v1
to: v2
stepWeight: 50
interval: 3s
`

func TestRolloutRollingTo100(t *testing.T) {
	env := startRollout(t, rollingPolicy)
	env.flow(t)
	env.await(t, "the 50 % step", func(r policy.Rollout) bool { return r.Weight == 5000 })
	near(t, "rolling at 50 %", env.share(t, 1000), 50, 8)
	env.elapse(t, 3*time.Second)
	env.await(t, "completion", func(r policy.Rollout) bool { return r.Phase == policy.Completed })
	near(t, "rolled", env.share(t, 500), 100, 0)
}

const blueGreenPolicy = `service: greeter
strategy: blueGreen
active: v1
preview: v2
previewMatch:
  - header: {name: x-preview, exact: "true"}
rollbackWindow: 1m
`

func TestRolloutBlueGreenPromoteRollback(t *testing.T) {
	env := startRollout(t, blueGreenPolicy)
	env.flow(t)
	env.await(t, "the preview to be served", func(r policy.Rollout) bool { return r.Phase == policy.Progressing })
	near(t, "preview", env.share(t, 300), 0, 0)
	if got := env.share(t, 100, "x-preview", "true"); got != 100 {
		t.Errorf("requests with x-preview went %.1f %% to v2, want all", got)
	}
	env.do(t, op(policy.Promote))
	env.await(t, "the promotion", func(r policy.Rollout) bool { return r.Phase == policy.Promoted })
	near(t, "promoted", env.share(t, 300), 100, 0)
	rollback := func(p policy.Policy, r policy.Rollout, now time.Time) (policy.Rollout, policy.Event, error) {
		return policy.Rollback(p, r, now, "test", "e2e")
	}
	pushes := testutilValue(env.w.srv.metrics.Publishes)
	env.do(t, rollback)
	env.await(t, "the rollback", func(r policy.Rollout) bool { return r.Phase == policy.Aborted })
	near(t, "rolled back", env.share(t, 300), 0, 0)
	if got := testutilValue(env.w.srv.metrics.Publishes) - pushes; got != 1 {
		t.Errorf("rollback took %v pushes, want 1", got)
	}
}

func TestRolloutResumesAfterRestart(t *testing.T) {
	env := startRollout(t, canaryPolicy)
	before := env.toHalfPause(t)
	env.w.Stop() // a restart on the same state directory
	env.start(t)
	after := env.rollout()
	if after.Step != before.Step || after.Weight != before.Weight || after.Phase != before.Phase || !after.StepSince.Equal(before.StepSince) {
		t.Fatalf("after a restart the rollout is at step %d (%s, %s, since %s), want step %d (%s, %s, since %s)",
			after.Step, after.Weights(), after.Phase, after.StepSince, before.Step, before.Weights(), before.Phase, before.StepSince)
	}
	near(t, "after restart", env.share(t, 1000), 50, 8)
}

func testutilValue(c prometheus.Counter) float64 { return testutil.ToFloat64(c) }

// nackRoutes connects a gRPC-shaped proxy of greeter that rejects every
// route configuration it is sent.
func nackRoutes(t *testing.T, addr, node string) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); conn.Close() })
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	must(t, err)
	names := []string{snapshot.ServiceRouteConfigName("greeter")}
	must(t, stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: node, UserAgentName: "gRPC Go"},
		TypeUrl: resourcev3.RouteType, ResourceNames: names}))
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				return
			}
			err = stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: r.TypeUrl, ResponseNonce: r.Nonce, ResourceNames: names,
				ErrorDetail: &statuspb.Status{Code: 3, Message: "route rejected by test"}})
			if err != nil {
				return
			}
		}
	}()
}

func TestRolloutPausesOnNack(t *testing.T) {
	env := startRollout(t, canaryPolicy)
	env.flow(t)
	env.await(t, "the 20 % step", func(r policy.Rollout) bool { return r.Weight == 2000 })
	nackRoutes(t, env.w.xdsAddr, "nacking-proxy")
	var r policy.Rollout
	until(t, "a NACK pause", func() bool { r = env.rollout(); return r.Cause == policy.PausedByNack })
	if !strings.Contains(r.Reason, "nacking-proxy") || !strings.Contains(r.Reason, "route rejected by test") {
		t.Errorf("pause reason %q does not name the proxy and its error", r.Reason)
	}
	near(t, "paused at 20 %", env.share(t, 1000), 20, 6)
}

const stickyPolicy = `service: greeter
strategy: canary
stable: v1
canary:
  version: v2
  steps:
    - setWeight: 20
    - pause: {}
    - setWeight: 50
    - pause: {}
  sticky: {header: x-user-id}
`

// versionsOf calls as each of users five times and returns each user's
// version, failing if a user saw two versions.
func (env *rolloutEnv) versionsOf(t *testing.T, users int) map[string]string {
	t.Helper()
	seen := make(map[string]string, users)
	for u := range users {
		user := fmt.Sprintf("user-%03d", u)
		ctx := metadata.AppendToOutgoingContext(context.Background(), "x-user-id", user)
		for range 5 {
			r := env.c.call(ctx)
			if r.err != nil {
				t.Fatalf("%s: %v", user, r.err)
			}
			if prev, ok := seen[user]; ok && prev != r.version {
				t.Fatalf("%s was answered by %s and %s at fixed weights", user, prev, r.version)
			}
			seen[user] = r.version
		}
	}
	return seen
}

func TestRolloutStickyHeader(t *testing.T) {
	env := startRollout(t, stickyPolicy)
	env.flow(t)
	atStep := func(w policy.Weight) func(policy.Rollout) bool {
		return func(r policy.Rollout) bool { return r.Phase == policy.Paused && r.Weight == w }
	}
	env.await(t, "the pause at 20 %", atStep(2000))
	before := env.versionsOf(t, 200)
	resume := func(p policy.Policy, r policy.Rollout, now time.Time) (policy.Rollout, policy.Event, error) {
		return policy.Resume(p, r, now, "test", "e2e")
	}
	env.do(t, resume)
	env.await(t, "the pause at 50 %", atStep(5000))
	after := env.versionsOf(t, 200)

	onCanary := map[string]int{}
	for user, v := range before {
		if v == "v2" && after[user] != "v2" {
			t.Errorf("%s moved from the canary back to stable when the canary's weight grew", user)
		}
		onCanary["before"] += btoi(v == "v2")
		onCanary["after"] += btoi(after[user] == "v2")
	}
	t.Logf("users on the canary: %d of 200 at 20 %%, %d at 50 %%", onCanary["before"], onCanary["after"])
	if onCanary["before"] < 20 || onCanary["before"] > 60 || onCanary["after"] < 70 || onCanary["after"] > 130 {
		t.Errorf("users on the canary: %d at 20 %% and %d at 50 %%, want about 40 and 100 of 200", onCanary["before"], onCanary["after"])
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
