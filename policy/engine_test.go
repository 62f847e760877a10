package policy

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-mesh/weir/discovery"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func mustSet(t *testing.T, ps ...Policy) Set {
	t.Helper()
	s, err := NewSet(ps...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func greeterModel(t *testing.T) discovery.Model {
	t.Helper()
	m, err := discovery.NewModel([]discovery.Service{{Name: "greeter", Instances: []discovery.Instance{
		{ID: "a", Address: "10.0.0.1", Port: 1, Version: "v1"},
		{ID: "b", Address: "10.0.0.2", Port: 1, Version: "v2"},
		{ID: "c", Address: "10.0.0.3", Port: 1, Version: "v3"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// newTestEngine returns an engine on a fake clock whose fleet applies
// everything at once.
func newTestEngine(t *testing.T, store *Store) (*Engine, *fakeClock) {
	t.Helper()
	clock := &fakeClock{now: t0}
	e, err := NewEngine(EngineConfig{Store: store, Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.ObserveModel(greeterModel(t))
	return e, clock
}

// openStore opens the store in dir, closed when the test ends.
func openStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// restarted closes store, in dir, and returns a new engine on it: weir
// restarted, on the clock now.
func restarted(t *testing.T, store *Store, dir string, now func() time.Time) *Engine {
	t.Helper()
	store.Close()
	e, err := NewEngine(EngineConfig{Store: openStore(t, dir), Clock: now})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// settle lets the fleet apply what the engine asks, until nothing changes.
func settle(e *Engine) {
	for range 10 {
		e.Applied(e.Routing())
	}
}

func TestEngineRestartResumesWithoutReplay(t *testing.T) {
	dir := t.TempDir()
	store, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	e, clock := newTestEngine(t, store)
	p := canaryPolicy()
	e.SetPolicies(mustSet(t, p))
	settle(e)
	clock.Add(31 * time.Second)
	settle(e) // past the 30 s pause: at 25 %, then the indefinite pause
	before := e.Rollouts()[0]
	if before.Weight != 2500 || before.Phase != Paused {
		t.Fatalf("before restart: %s at %s, want paused at 25 %%", before.Phase, before.Weights())
	}
	store.Close()

	store, err = OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	again, clock2 := newTestEngine(t, store)
	clock2.now = clock.Now().Add(time.Hour)
	again.SetPolicies(mustSet(t, p)) // the same file read again
	after := again.Rollouts()[0]
	if after.Step != before.Step || after.Weight != before.Weight || after.Phase != before.Phase || !after.AppliedAt.Equal(before.AppliedAt) {
		t.Fatalf("after restart: %+v\nwant the state before: %+v", after, before)
	}
	if evs := again.Events(); len(evs) == 0 || !strings.Contains(evs[len(evs)-1].Message, "pauses until promoted") {
		t.Fatalf("journal not restored: %+v", evs)
	}
}

func TestEnginePolicyEdits(t *testing.T) {
	e, clock := newTestEngine(t, nil)
	p := canaryPolicy()
	e.SetPolicies(mustSet(t, p))
	settle(e)
	clock.Add(31 * time.Second)
	settle(e) // paused at 25 %

	// Edited steps continue from the current weight: the new 40 % step is
	// next, with no return to a lower weight.
	edited := canaryPolicy()
	edited.Canary.Steps = []Step{{SetWeight: w(10)}, {SetWeight: w(40)}, {Pause: &Pause{Indefinite: true}}}
	e.SetPolicies(mustSet(t, edited))
	if r := e.Rollouts()[0]; r.Weight != 2500 {
		t.Fatalf("right after the edit the canary is at %s, want it to stay at 25", r.Weight)
	}
	if err := e.Do("greeter", func(p Policy, r Rollout, now time.Time) (Rollout, Event, error) {
		return Resume(p, r, now, "test", "")
	}); err != nil {
		t.Fatal(err)
	}
	settle(e)
	if r := e.Rollouts()[0]; r.Weight != 4000 {
		t.Fatalf("after the edit the rollout is at %s, want 40", r.Weight)
	}

	// A new canary version restarts: v3 starts at its first step and v2,
	// the old canary, gets nothing.
	v3 := canaryPolicy()
	v3.Canary.Version = "v3"
	e.SetPolicies(mustSet(t, v3))
	rt := e.Routing().Map()["greeter"]
	if rt.Weights["v3"] != 500 || rt.Weights["v1"] != 9500 || rt.Weights["v2"] != 0 {
		t.Fatalf("after a new canary version: %s, want v1=95 v3=5", rt.Weights)
	}

	// Deleting the policy freezes the current weights.
	e.SetPolicies(mustSet(t))
	if got := e.Routing().Map()["greeter"].Weights; got["v3"] != 500 || got["v1"] != 9500 {
		t.Fatalf("after the policy was deleted: %s, want frozen at v1=95 v3=5", got)
	}
	if evs := e.Events(); !strings.Contains(evs[len(evs)-1].Message, "frozen") {
		t.Errorf("the freeze is not journaled: %+v", evs[len(evs)-1])
	}
}

func TestEngineWaitsForTheFleet(t *testing.T) {
	e, clock := newTestEngine(t, nil)
	e.SetPolicies(mustSet(t, canaryPolicy()))
	for range 5 {
		clock.Add(time.Minute / 2)
		e.Tick() // the fleet never applies anything
	}
	r := e.Rollouts()[0]
	if r.Weight != 500 || r.Phase != Paused || r.Cause != PausedByDeadline {
		t.Fatalf("without the fleet applying: %s at %s (%s), want paused at 5 %% for the deadline", r.Phase, r.Weights(), r.Cause)
	}
}

func TestEngineOperationNotSavedIsNotApplied(t *testing.T) {
	store, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e, _ := newTestEngine(t, store)
	e.SetPolicies(mustSet(t, canaryPolicy()))
	settle(e)
	before := e.Rollouts()[0]
	store.Close() // every save fails from here on
	err = e.Do("greeter", func(_ Policy, r Rollout, now time.Time) (Rollout, Event, error) {
		return Abort(r, now, "alice", "test")
	})
	if !errors.Is(err, ErrNotSaved) {
		t.Fatalf("Do with a broken store = %v, want ErrNotSaved", err)
	}
	if after := e.Rollouts()[0]; after.Phase != before.Phase || after.Weight != before.Weight {
		t.Fatalf("an unsaved abort was applied: %s at %s", after.Phase, after.Weights())
	}
}

// TestEngineRoutingIsSharedUntilItChanges checks that Routing returns the
// very same table while no routing changed, and what routingOf makes of
// the engine's state after every kind of change: a change that forgot to
// invalidate the kept table would serve a stale routing. A change makes a
// table that follows the last and names the services whose routing
// changed (see Table.ChangedSince).
func TestEngineRoutingIsSharedUntilItChanges(t *testing.T) {
	e, clock := newTestEngine(t, nil)
	var last Table
	// check checks Routing after step; changed names the services whose
	// routing changed, "*" for a table without a history.
	check := func(step string, changed ...string) {
		t.Helper()
		got := e.Routing()
		e.mu.Lock()
		want := routingOf(e.policies, e.rollouts, e.frozen, e.overrides)
		e.mu.Unlock()
		if !reflect.DeepEqual(got.Map(), want) {
			t.Fatalf("%s: Routing() = %v, want %v", step, got.Map(), want)
		}
		if same := got.Same(last); same != (len(changed) == 0) {
			t.Errorf("%s: Routing() returned the same table: %v, want %v", step, same, !same)
		}
		names, ok := got.ChangedSince(last)
		switch {
		case len(changed) == 1 && changed[0] == "*":
			if ok {
				t.Errorf("%s: the table follows the last, naming %v; want one without a history", step, names)
			}
		case !ok || !slices.Equal(names, changed):
			t.Errorf("%s: changed since the last table: %v, %v; want %v", step, names, ok, changed)
		}
		last = got
	}
	check("no policy", "*")
	check("asked again")
	e.SetPolicies(mustSet(t, canaryPolicy(), echoFixed))
	check("policies set", "echo", "greeter")
	e.Applied(e.Routing()) // the fleet applies step 0; step 1 pauses at the same weights
	check("a step applied, the next a pause")
	clock.Add(31 * time.Second)
	settle(e)
	clock.Add(31 * time.Second)
	settle(e)
	check("the pause over", "greeter")
	check("asked again")
	if err := e.SetFixedWeights("echo", Weights{"v1": 5000, "v2": 5000}, "alice", "test"); err != nil {
		t.Fatal(err)
	}
	check("fixed weights overridden", "echo")
	if err := e.SetFixedWeights("echo", Weights{"v1": 5000}, "alice", "test"); err == nil {
		t.Fatal("weights of 50 % were accepted")
	}
	check("a rejected override")
	if err := e.Do("greeter", func(p Policy, r Rollout, now time.Time) (Rollout, Event, error) {
		return Abort(r, now, "alice", "test")
	}); err != nil {
		t.Fatal(err)
	}
	check("rollout aborted", "greeter")
	e.SetPolicies(mustSet(t, echoFixed))
	check("the canary policy deleted (its weights are frozen as they are)")
	e.SetPolicies(mustSet(t))
	check("the fixed policy deleted", "echo")
}

// TestEngineRestartDoesNotCountDowntimeAgainstTheDeadline: a step entered
// but not yet applied when weir stopped was paused for a missed progress
// deadline at the first tick after a restart an hour later, before any
// proxy could reconnect: the deadline counted the time weir was down.
func TestEngineRestartDoesNotCountDowntimeAgainstTheDeadline(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir)
	e, clock := newTestEngine(t, store)
	p := canaryPolicy() // progressDeadline 2m
	e.SetPolicies(mustSet(t, p))
	clock.Add(10 * time.Second)
	e.Tick() // the fleet has not applied step 0 yet

	clock2 := &fakeClock{now: clock.Now().Add(time.Hour)}
	again := restarted(t, store, dir, clock2.Now)
	again.SetPolicies(mustSet(t, p))
	again.ObserveModel(greeterModel(t))
	again.Tick()
	if r := again.Rollouts()[0]; r.Phase != Progressing {
		t.Fatalf("right after a restart: %s (%s), want progressing: the time weir was down is nobody's missed deadline", r.Phase, r.Reason)
	}
	clock2.Add(p.ProgressDeadline + time.Second)
	again.Tick()
	if r := again.Rollouts()[0]; r.Phase != Paused || r.Cause != PausedByDeadline {
		t.Fatalf("a deadline after the restart with nothing applied: %s (%s), want paused for the deadline", r.Phase, r.Cause)
	}
}

// staleness is a discovery.ServiceStatusReporter whose upstream fails for
// greeter while failing is set.
type staleness struct {
	mu      sync.Mutex
	failing string
}

func (s *staleness) set(failing string) { s.mu.Lock(); s.failing = failing; s.mu.Unlock() }

func (s *staleness) ServiceStatus(service string) discovery.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	stale := service == "greeter" && s.failing != ""
	return discovery.Status{Synced: true, Stale: stale, StaleSince: t0.Add(time.Minute), Error: s.failing}
}

// newStaleableEngine returns an engine on a fake clock, with no model
// yet, whose discovery source is the staleness it also returns.
func newStaleableEngine(t *testing.T) (*Engine, *fakeClock, *staleness) {
	t.Helper()
	src, clock := &staleness{}, &fakeClock{now: t0}
	e, err := NewEngine(EngineConfig{Clock: clock.Now, Discovery: src})
	if err != nil {
		t.Fatal(err)
	}
	return e, clock, src
}

// TestEngineHoldsRolloutsWhileDiscoveryIsStale checks that the engine asks
// its discovery source, at every tick, whether it is stale: a rollout
// pauses, naming the source's error, for as long as it is, and resumes
// when it answers again.
func TestEngineHoldsRolloutsWhileDiscoveryIsStale(t *testing.T) {
	e, clock, src := newStaleableEngine(t)
	e.ObserveModel(greeterModel(t))
	p := canaryPolicy()
	p.Canary.Steps[1].Pause.Duration = time.Hour
	e.SetPolicies(mustSet(t, p))
	settle(e)
	if r := e.Rollouts()[0]; r.Step != 1 || r.Phase != Progressing {
		t.Fatalf("before the outage: step %d, %s; want step 1 progressing", r.Step, r.Phase)
	}
	src.set("greeter: Get \"http://127.0.0.1:8500/v1/health/service/greeter\": connection refused")
	clock.Add(time.Minute)
	e.Tick()
	r := e.Rollouts()[0]
	if r.Phase != Paused || r.Cause != PausedByDiscovery || !strings.Contains(r.Reason, "connection refused") ||
		!strings.Contains(r.Reason, "since 12:01:00") {
		t.Fatalf("Consul failing: %s (%s: %q), want paused for discovery since 12:01:00, with its error", r.Phase, r.Cause, r.Reason)
	}
	if got, _ := e.Routing().Get("greeter"); !reflect.DeepEqual(got.Weights, Weights{"v1": 95 * 100, "v2": 5 * 100}) {
		t.Errorf("paused for discovery, routing %v; want step 1's weights kept", got)
	}
	src.set("")
	clock.Add(time.Minute)
	e.Tick()
	if r := e.Rollouts()[0]; r.Phase != Progressing || r.Step != 1 {
		t.Fatalf("Consul answering again: step %d, %s (%s); want step 1 progressing", r.Step, r.Phase, r.Reason)
	}
}

// TestEngineOwnDecisionsSurviveAFailedSave checks that a tick whose save
// fails still journals its events, and that the next tick saves them with
// the state once the store works again: a restart then continues from the
// step the engine moved to, and its journal holds the move.
func TestEngineOwnDecisionsSurviveAFailedSave(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir)
	e, clock := newTestEngine(t, store)
	e.SetPolicies(mustSet(t, canaryPolicy()))
	settle(e)     // step 1, the 30s pause, applied
	store.Close() // every save fails from here on
	clock.Add(31 * time.Second)
	e.Tick()
	if r := e.Rollouts()[0]; r.Step != 2 {
		t.Fatalf("after the pause, with saves failing: step %d, want 2: the engine's own decisions stand", r.Step)
	}
	entered := func(events []Event) bool {
		return slices.ContainsFunc(events, func(ev Event) bool { return ev.Kind == "step" && strings.Contains(ev.Message, "step 2") })
	}
	if !entered(e.Events()) {
		t.Fatalf("journal %v lacks entering step 2: an unsaved decision was not journaled", e.Events())
	}

	*store = *openStore(t, dir) // the disk works again
	e.Tick()

	again := restarted(t, store, dir, clock.Now)
	if r := again.Rollouts()[0]; r.Step != 2 {
		t.Errorf("restarted after the store recovered: step %d, want 2", r.Step)
	}
	if !entered(again.Events()) {
		t.Errorf("restarted journal %v lacks entering step 2", again.Events())
	}
}

// TestEngineUnsavedIsBounded checks that what a long run of failed saves
// leaves unsaved is bounded: the last journalMemory events, as the journal
// in memory keeps, and each service gone once.
func TestEngineUnsavedIsBounded(t *testing.T) {
	store := openStore(t, t.TempDir())
	e, _ := newTestEngine(t, store)
	store.Close() // every save fails from here on
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range journalMemory + 10 {
		e.commitOwn([]Event{{Service: "greeter", Kind: "step", Message: fmt.Sprint(i)}}, []string{"ledger"})
	}
	if got := e.unsaved; len(got.events) != journalMemory || got.dropped != 10 || got.events[0].Message != "10" || len(got.gone) != 1 {
		t.Errorf("unsaved after %d failed saves: %d events from %q, %d dropped, gone %v; want the last %d events, from \"10\", 10 dropped, gone [ledger]",
			journalMemory+10, len(got.events), got.events[0].Message, got.dropped, got.gone, journalMemory)
	}
}

// TestEngineStaleServiceHoldsOnlyItsRollout checks that the engine asks
// discovery about each rollout's own service: greeter's failing query
// pauses greeter's rollout, and ledger's goes on.
func TestEngineStaleServiceHoldsOnlyItsRollout(t *testing.T) {
	e, clock, src := newStaleableEngine(t)
	var services []discovery.Service
	for _, name := range []string{"greeter", "ledger"} {
		services = append(services, discovery.Service{Name: name, Instances: []discovery.Instance{
			{ID: name + "-a", Address: "10.0.0.1", Port: 1, Version: "v1"},
			{ID: name + "-b", Address: "10.0.0.2", Port: 1, Version: "v2"},
		}})
	}
	m, err := discovery.NewModel(services)
	if err != nil {
		t.Fatal(err)
	}
	e.ObserveModel(m)
	greeter, ledger := canaryPolicy(), canaryPolicy()
	ledger.Service = "ledger"
	e.SetPolicies(mustSet(t, greeter, ledger))
	settle(e)
	src.set("greeter: connection refused")
	clock.Add(time.Minute)
	e.Tick()
	if n := len(e.Rollouts()); n != 2 {
		t.Fatalf("%d rollouts, want greeter's and ledger's", n)
	}
	for _, r := range e.Rollouts() {
		stale := r.Service == "greeter"
		if paused := r.Phase == Paused && r.Cause == PausedByDiscovery; paused != stale {
			t.Errorf("greeter's query failing: %s is %s (%s: %q); want paused for discovery only if it is greeter",
				r.Service, r.Phase, r.Cause, r.Reason)
		}
	}
}

// TestNackDoesNotWaitForTheEngine: Nack runs on the rejecting proxy's
// stream, so it must return while the engine is busy (here: its lock held,
// as while a tick saves), and Run then pauses the rollout.
func TestNackDoesNotWaitForTheEngine(t *testing.T) {
	e, _ := newTestEngine(t, nil)
	e.SetPolicies(mustSet(t, canaryPolicy()))
	settle(e) // 5 %, in the 30 s pause
	e.mu.Lock()
	returned := make(chan struct{})
	go func() {
		e.Nack("sidecar-7", "bad route")
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		e.mu.Unlock()
		t.Fatal("Nack did not return within 10 s while the engine's lock was held")
	}
	e.mu.Unlock()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx, time.Hour) }() // only the NACK wakes it
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(10 * time.Second); ; {
		r := e.Rollouts()[0]
		if r.Phase == Paused && r.Cause == PausedByNack {
			if !strings.Contains(r.Reason, "sidecar-7") {
				t.Errorf("paused for %q, want the reason to name the proxy sidecar-7", r.Reason)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s after the NACK: %s (%s), want paused for the NACK", r.Phase, r.Reason)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRunDoesNotTickOnceStopped: once Run's ctx is done (weir stopping),
// a tick that is due moves no rollout, here a step whose pause is over.
// Run's select picked at random between ctx and the tick, so a stopping
// weir could move a rollout, and save it, half the time. Each try gives
// the old Run another even chance to tick.
func TestRunDoesNotTickOnceStopped(t *testing.T) {
	e, clock := newTestEngine(t, nil)
	e.SetPolicies(mustSet(t, canaryPolicy()))
	settle(e) // 5 %, in the 30 s pause
	clock.Add(31 * time.Second)
	before := e.Rollouts()[0]
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for try := range 64 {
		select {
		case e.wake <- struct{}{}: // a tick is due, as after a NACK
		default:
		}
		if err := e.Run(ctx, time.Hour); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if r := e.Rollouts()[0]; r.Step != before.Step || r.Weight != before.Weight || r.Phase != before.Phase {
			t.Fatalf("try %d: Run, its ctx done, moved the rollout from %s %s to %s %s", try, before.Phase, describe(before), r.Phase, describe(r))
		}
	}
}
