package xds

import (
	"log/slog"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weir-mesh/weir/internal/logbuf"
	"github.com/weir-mesh/weir/policy"
	"github.com/weir-mesh/weir/snapshot"
)

// A weir restarted mid-rollout waits for its fleet to reconnect before it
// counts a step applied (see applies), but no longer than AckTimeout: a
// fleet that never comes back must not hold the rollout for ever.

// restoredCanary is a canary whose first step, 20 %, is followed by an
// indefinite pause.
const restoredCanary = `service: greeter
strategy: canary
stable: v1
canary:
  version: v2
  steps:
    - setWeight: 20
    - pause: {}
`

// restoredEngine returns the policy set of restoredCanary and an engine,
// calling onChange when its routing changes, that restored its rollout, at
// the 20 % step that no proxy has applied, from the store of an engine
// before it: weir restarted mid-rollout.
func restoredEngine(t *testing.T, onChange func()) (*policy.Engine, policy.Set) {
	t.Helper()
	_, set := parsePolicy(t, restoredCanary)
	dir, discard := t.TempDir(), slog.New(slog.DiscardHandler)
	store, err := policy.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	before, err := policy.NewEngine(policy.EngineConfig{Store: store, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	before.ObserveModel(greeterModel(t, "v1", "v2"))
	before.SetPolicies(set)
	store.Close()
	if store, err = policy.OpenStore(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e, err := policy.NewEngine(policy.EngineConfig{Store: store, Logger: discard, OnChange: onChange})
	if err != nil {
		t.Fatal(err)
	}
	if r := e.Rollouts(); !e.Restored() || len(r) != 1 || r[0].Step != 0 || !r[0].AppliedAt.IsZero() {
		t.Fatalf("restored %+v (restored: %v), want greeter's rollout at its 20 %% step, not applied", r, e.Restored())
	}
	return e, set
}

// restarted is a publisher over a restored engine, with a tracker and no
// proxy connected.
type restarted struct {
	p       *Publisher
	tracker *Tracker
	metrics *Metrics
	engine  *policy.Engine
	set     policy.Set // the policies of the engine's rollout
	logs    *logbuf.Buffer
}

// restartedPublisher returns a publisher over a restored engine, whose
// changes of routing wake it as weir wires them.
func restartedPublisher(t *testing.T, ackTimeout time.Duration) restarted {
	t.Helper()
	var r restarted
	r.engine, r.set = restoredEngine(t, func() { r.p.Wake() })
	r.logs = &logbuf.Buffer{}
	logger := r.logs.Logger()
	r.metrics = NewMetrics(prometheus.NewRegistry(), func() float64 { return 0 })
	r.tracker = NewTracker(logger, r.metrics)
	r.p = NewPublisher(PublisherConfig{Cache: NewCache(), Tracker: r.tracker, Metrics: r.metrics, Logger: logger,
		Engine: r.engine, AckTimeout: ackTimeout})
	return r
}

// moved reports whether the restored rollout moved past the step it was
// restored at: the engine learned that the fleet applied it.
func (r restarted) moved() bool { return r.engine.Rollouts()[0].Step > 0 }

// The log lines of the wait for the fleet to reconnect.
const (
	waitBegins    = "waiting up to the ack timeout for the fleet to reconnect"
	waitTimesOut  = "no proxy reconnected within the ack timeout"
	waitReconnect = "a proxy reconnected"
)

// TestRestoredRolloutMovesOnWithoutItsFleet: a weir restarted mid-rollout
// to which no proxy reconnects (the fleet was scaled away, or never had a
// client) counts its step applied once AckTimeout has passed since it
// started, as a fresh start counts an empty fleet. It waited for ever, and
// only a missed progressDeadline, and then an abort, ended the rollout.
func TestRestoredRolloutMovesOnWithoutItsFleet(t *testing.T) {
	const ackTimeout = 300 * time.Millisecond
	r := restartedPublisher(t, ackTimeout)
	started := time.Now()
	runPublisher(t, r.p)
	r.p.SetPolicies(r.set, nil)
	r.p.Update(greeterModel(t, "v1", "v2"))
	eventually(t, "the restored rollout to move past its 20 % step with no proxy connected", r.moved)
	if waited := time.Since(started); waited < ackTimeout {
		t.Errorf("the restored rollout moved on %s after the start, before the ack timeout of %s", waited, ackTimeout)
	}
	if got := testutil.ToFloat64(r.metrics.AppliedFraction); got != 1 {
		t.Errorf("weir_fleet_applied_fraction = %v once weir stopped waiting for the fleet, want 1", got)
	}
	if begins, timesOut := r.logs.Count(waitBegins), r.logs.Count(waitTimesOut); begins != 1 || timesOut != 1 {
		t.Errorf("logged the wait's start %d times and its end %d times, want once each:\n%s", begins, timesOut, r.logs)
	}
}

// TestRestoredRolloutWaitsForAReconnectingProxy: until a proxy reconnects
// (or AckTimeout passes) a restarted weir's fleet has applied nothing, and
// says so: the applied fraction is 0, not 1 as for 0 of 0 proxies, and
// the status says until when weir waits. The first proxy to reconnect ends
// the wait.
func TestRestoredRolloutWaitsForAReconnectingProxy(t *testing.T) {
	r := restartedPublisher(t, time.Hour)
	started := time.Now()
	r.p.startReconnectWait(started) // as Run does: this test looks at the fleet itself
	r.p.SetPolicies(r.set, nil)
	r.p.Update(greeterModel(t, "v1", "v2"))
	r.p.publish(t.Context()) // and looks at the fleet
	if !r.p.ServingTarget() {
		t.Fatal("the restored rollout's routing is not served")
	}
	if r.moved() {
		t.Fatal("the restored rollout moved on with no proxy reconnected")
	}
	if got, want := r.p.Status().AwaitingReconnect, started.Add(time.Hour); !got.Equal(want) {
		t.Errorf("status awaits the fleet's reconnection until %v, want %v", got, want)
	}
	if got, metric := r.p.AppliedFraction(), testutil.ToFloat64(r.metrics.AppliedFraction); got != 0 || metric != 0 {
		t.Errorf("while weir waits for its fleet: applied fraction %v, weir_fleet_applied_fraction %v, want 0 and 0", got, metric)
	}

	hold := connectGRPCClient(t, r.p, r.tracker)
	hold(resourcev3.RouteType, snapshot.ServiceRouteConfigName("greeter"))
	hold(resourcev3.ClusterType, "greeter/v1", "greeter/v2")
	hold(resourcev3.EndpointType, "greeter/v1", "greeter/v2")
	r.p.checkApplied(t.Context())
	if !r.moved() {
		t.Error("the restored rollout did not move on once the reconnected proxy held its step")
	}
	if got := r.p.Status().AwaitingReconnect; !got.IsZero() {
		t.Errorf("status awaits the fleet's reconnection until %v after a proxy reconnected", got)
	}
	if got, metric := r.p.AppliedFraction(), testutil.ToFloat64(r.metrics.AppliedFraction); got != 1 || metric != 1 {
		t.Errorf("the one proxy holds what is served: applied fraction %v, weir_fleet_applied_fraction %v, want 1 and 1", got, metric)
	}
	if reconnected, timedOut := r.logs.Count(waitReconnect), r.logs.Count(waitTimesOut); reconnected != 1 || timedOut != 0 {
		t.Errorf("logged the reconnection %d times and a timeout %d times, want once and never:\n%s", reconnected, timedOut, r.logs)
	}
}
