package policy

import (
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// lastTransaction returns the id of the store's last committed write
// transaction: one more per save.
func lastTransaction(t testing.TB, s *Store) int {
	t.Helper()
	var id int
	if err := s.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

// whileWaiting holds the engine's lock while it starts ops, each on a
// goroutine of its own, until all of them wait for it, then lets them go;
// before they go, it calls meanwhile. It returns their outcomes, in the
// order they end.
func whileWaiting(t *testing.T, e *Engine, meanwhile func(), ops ...func() error) []error {
	t.Helper()
	e.mu.Lock()
	outcomes := make(chan error, len(ops))
	for _, op := range ops {
		go func() { outcomes <- op() }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for waiting := 0; waiting < len(ops); {
		if time.Now().After(deadline) {
			e.mu.Unlock()
			t.Fatalf("%d of %d operations wait for the engine after 10 s", waiting, len(ops))
		}
		time.Sleep(time.Millisecond) // between looks at the condition
		e.waitingMu.Lock()
		waiting = len(e.waiting)
		e.waitingMu.Unlock()
	}
	meanwhile()
	e.mu.Unlock()
	errs := make([]error, 0, len(ops))
	for range ops {
		errs = append(errs, <-outcomes)
	}
	return errs
}

// setEcho returns an operation that overrides echo's weights with v1 at
// share.
func setEcho(e *Engine, share Weight) func() error {
	return func() error {
		return e.SetFixedWeights("echo", Weights{"v1": share, "v2": Full - share}, "alice", "burst")
	}
}

// TestEngineSavesWaitingOperationsTogether sets echo's weights 20 times
// while the engine is busy: the 20 operations are saved in one
// transaction, every one is journaled, and the last to come is in force,
// also after a restart.
func TestEngineSavesWaitingOperationsTogether(t *testing.T) {
	store, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e, _ := newTestEngine(t, store)
	e.SetPolicies(mustSet(t, Policy{Service: "echo", Strategy: Fixed, Weights: Weights{"v1": Full}}))
	before, journaled := lastTransaction(t, store), len(e.Events())
	var ops []func() error
	for k := range 20 {
		ops = append(ops, setEcho(e, Weight(k)*100))
	}
	for _, err := range whileWaiting(t, e, func() {}, ops...) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if saves := lastTransaction(t, store) - before; saves != 1 {
		t.Errorf("20 waiting operations took %d saves, want 1", saves)
	}
	events := e.Events()[journaled:]
	if len(events) != 20 {
		t.Fatalf("journaled %d events, want 20", len(events))
	}
	inForce, _ := e.FixedOverride("echo")
	if last := events[19].Message; !strings.HasPrefix(last, "weights overridden: "+inForce.Weights.String()+" ") {
		t.Errorf("in force: %s; the last event says %q", inForce.Weights, last)
	}
	restarted, err := NewEngine(EngineConfig{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := restarted.FixedOverride("echo"); !reflect.DeepEqual(got.Weights, inForce.Weights) {
		t.Errorf("after a restart %s is in force, want %s", got.Weights, inForce.Weights)
	}
}

// TestEngineUndoesWaitingOperationsNotSaved lets three operations wait
// while the store breaks: the one that cannot be made fails on its own,
// and the two that could are undone when their save fails.
func TestEngineUndoesWaitingOperationsNotSaved(t *testing.T) {
	store, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e, _ := newTestEngine(t, store)
	e.SetPolicies(mustSet(t, canaryPolicy(), Policy{Service: "echo", Strategy: Fixed, Weights: Weights{"v1": Full}}))
	settle(e)
	rollouts, journaled := e.Rollouts(), len(e.Events())
	abort := func(service string) func() error {
		return func() error {
			return e.Do(service, func(_ Policy, r Rollout, now time.Time) (Rollout, Event, error) {
				return Abort(r, now, "alice", "test")
			})
		}
	}
	errs := whileWaiting(t, e, func() { store.Close() }, setEcho(e, 5000), abort("greeter"), abort("nobody"))
	var notSaved, notInProgress int
	for _, err := range errs {
		switch {
		case errors.Is(err, ErrNotSaved):
			notSaved++
		case errors.Is(err, ErrNotInProgress):
			notInProgress++
		default:
			t.Errorf("unexpected outcome %v", err)
		}
	}
	if notSaved != 2 || notInProgress != 1 {
		t.Errorf("%d not saved and %d not in progress, want 2 and 1: %v", notSaved, notInProgress, errs)
	}
	if got := e.Rollouts(); !reflect.DeepEqual(got, rollouts) {
		t.Errorf("an unsaved abort was applied: %+v", got)
	}
	if o, ok := e.FixedOverride("echo"); ok {
		t.Errorf("an unsaved override is in force: %s", o.Weights)
	}
	if got := len(e.Events()); got != journaled {
		t.Errorf("%d events journaled, want none", got-journaled)
	}
}

// BenchmarkConcurrentOperations sets a fixed policy's weights 100 times
// at once, as a script might, and reports the saves that took.
func BenchmarkConcurrentOperations(b *testing.B) {
	store, err := OpenStore(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	e, err := NewEngine(EngineConfig{Store: store, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	set, err := NewSet(Policy{Service: "echo", Strategy: Fixed, Weights: Weights{"v1": Full}})
	if err != nil {
		b.Fatal(err)
	}
	e.SetPolicies(set)
	before := lastTransaction(b, store)
	for b.Loop() {
		var wg sync.WaitGroup
		for k := range 100 {
			wg.Go(func() {
				if err := setEcho(e, Weight(k)*100)(); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
	}
	b.ReportMetric(float64(lastTransaction(b, store)-before)/float64(b.N), "saves/op")
}
