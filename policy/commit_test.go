package policy

import (
	"errors"
	"log/slog"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
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
// goroutine of its own once the one before is waiting, so that they wait
// in the order given; then it calls meanwhile and lets them go.
// It returns their outcomes, in that order.
func whileWaiting(t *testing.T, e *Engine, meanwhile func(), ops ...func() error) []error {
	t.Helper()
	e.mu.Lock()
	outcomes := make([]error, len(ops))
	var wg sync.WaitGroup
	deadline := time.Now().Add(10 * time.Second)
	for i, op := range ops {
		wg.Go(func() { outcomes[i] = op() })
		for waiting := 0; waiting <= i; runtime.Gosched() {
			if time.Now().After(deadline) {
				e.mu.Unlock()
				t.Fatalf("%d of %d operations wait for the engine after 10 s", waiting, len(ops))
			}
			e.waitingMu.Lock()
			waiting = len(e.waiting)
			e.waitingMu.Unlock()
		}
	}
	meanwhile()
	e.mu.Unlock()
	wg.Wait()
	return outcomes
}

// abortOf returns an operation that aborts service's rollout.
func abortOf(e *Engine, service string) func() error {
	return func() error {
		return e.Do(service, func(_ Policy, r Rollout, now time.Time) (Rollout, Event, error) {
			return Abort(r, now, "alice", "test")
		})
	}
}

// countingEngine returns an engine like newTestEngine's, over a store of
// its own, that counts its OnChange calls.
func countingEngine(t *testing.T) (*Engine, *Store, *atomic.Int32) {
	t.Helper()
	store, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	changes := new(atomic.Int32)
	e, err := NewEngine(EngineConfig{Store: store, Clock: (&fakeClock{now: t0}).Now, OnChange: func() { changes.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	e.ObserveModel(greeterModel(t))
	return e, store, changes
}

// echoFixed is a fixed policy whose weights operators override.
var echoFixed = Policy{Service: "echo", Strategy: Fixed, Weights: Weights{"v1": Full}, File: "echo.yaml", Line: 1}

// echoWeights are echo's weights with v1 at share.
func echoWeights(share Weight) Weights { return Weights{"v1": share, "v2": Full - share} }

// setEcho returns an operation that overrides echo's weights with
// echoWeights(share).
func setEcho(e *Engine, share Weight) func() error {
	return func() error { return e.SetFixedWeights("echo", echoWeights(share), "alice", "burst") }
}

// TestEngineSavesWaitingOperationsTogether sets echo's weights 20 times
// while the engine is busy: the 20 operations are saved in one
// transaction, journaled in the order they came, each calls OnChange, and
// the last is in force, also after a restart.
func TestEngineSavesWaitingOperationsTogether(t *testing.T) {
	e, store, changes := countingEngine(t)
	e.SetPolicies(mustSet(t, echoFixed))
	before, journaled, changed := lastTransaction(t, store), len(e.Events()), changes.Load()
	var ops []func() error
	for k := range 20 {
		ops = append(ops, setEcho(e, Weight(k+1)*100))
	}
	for _, err := range whileWaiting(t, e, func() {}, ops...) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if saves := lastTransaction(t, store) - before; saves != 1 {
		t.Errorf("20 waiting operations took %d saves, want 1", saves)
	}
	if n := changes.Load() - changed; n != 20 {
		t.Errorf("OnChange called %d times, want 20", n)
	}
	events := e.Events()[journaled:]
	if len(events) != 20 {
		t.Fatalf("journaled %d events, want 20", len(events))
	}
	for k, ev := range events {
		if want := "weights overridden: " + echoWeights(Weight(k+1)*100).String() + " "; !strings.HasPrefix(ev.Message, want) {
			t.Errorf("event %d says %q, want it to begin %q", k, ev.Message, want)
		}
	}
	want := echoWeights(2000)
	if got, _ := e.FixedOverride("echo"); !reflect.DeepEqual(got.Weights, want) {
		t.Errorf("%s is in force, want %s", got.Weights, want)
	}
	restarted, err := NewEngine(EngineConfig{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := restarted.FixedOverride("echo"); !reflect.DeepEqual(got.Weights, want) {
		t.Errorf("after a restart %s is in force, want %s", got.Weights, want)
	}
}

// TestEngineRefusalsAmongWaitingOperations saves a batch in which some
// operations are refused, before and after others are applied: each
// refused one keeps its own error, whether or not it was refused on
// unsaved state (greeter's second abort), and only the applied ones are
// journaled and call OnChange.
func TestEngineRefusalsAmongWaitingOperations(t *testing.T) {
	e, store, changes := countingEngine(t)
	e.SetPolicies(mustSet(t, canaryPolicy(), echoFixed))
	settle(e)
	before, journaled, changed := lastTransaction(t, store), len(e.Events()), changes.Load()
	errs := whileWaiting(t, e, func() {},
		abortOf(e, "nobody"), setEcho(e, 2000), abortOf(e, "greeter"), abortOf(e, "greeter"), abortOf(e, "nobody"), setEcho(e, 3000))
	for i, want := range []error{ErrNotInProgress, nil, nil, ErrNotInProgress, ErrNotInProgress, nil} {
		if !errors.Is(errs[i], want) {
			t.Errorf("operation %d: %v, want %v", i, errs[i], want)
		}
	}
	if saves := lastTransaction(t, store) - before; saves != 1 {
		t.Errorf("took %d saves, want 1", saves)
	}
	if n := len(e.Events()) - journaled; n != 3 {
		t.Errorf("journaled %d events, want 3", n)
	}
	if n := changes.Load() - changed; n != 3 {
		t.Errorf("OnChange called %d times, want 3", n)
	}
}

// TestEngineUndoesWaitingOperationsNotSaved lets operations wait while
// the store breaks. One refused before any is applied fails on its own;
// the rest fail as not saved, including an abort refused only because
// an earlier abort, undone, was applied, and nothing of theirs stays:
// echo's saved override, which three of them changed in turn, is back,
// as are greeter's rollout, the routing and the journal, and OnChange is
// not called.
func TestEngineUndoesWaitingOperationsNotSaved(t *testing.T) {
	e, store, changes := countingEngine(t)
	e.SetPolicies(mustSet(t, canaryPolicy(), echoFixed))
	settle(e)
	if err := setEcho(e, 1000)(); err != nil {
		t.Fatal(err)
	}
	routing, rollouts, journaled, changed := e.Routing().Map(), e.Rollouts(), len(e.Events()), changes.Load()
	errs := whileWaiting(t, e, func() { store.Close() },
		abortOf(e, "nobody"), setEcho(e, 2000), abortOf(e, "greeter"), setEcho(e, 3000), abortOf(e, "greeter"), setEcho(e, 4000))
	if !errors.Is(errs[0], ErrNotInProgress) {
		t.Errorf("an abort of a service without a rollout, first: %v, want ErrNotInProgress", errs[0])
	}
	for i, err := range errs[1:] {
		if !errors.Is(err, ErrNotSaved) {
			t.Errorf("operation %d: %v, want ErrNotSaved", i+1, err)
		}
	}
	if got := e.Rollouts(); !reflect.DeepEqual(got, rollouts) {
		t.Errorf("an unsaved abort was applied: %+v", got)
	}
	if o, _ := e.FixedOverride("echo"); !reflect.DeepEqual(o.Weights, echoWeights(1000)) {
		t.Errorf("%s is in force, want the saved %s", o.Weights, echoWeights(1000))
	}
	if got := e.Routing().Map(); !reflect.DeepEqual(got, routing) {
		t.Errorf("Routing() = %v, want %v", got, routing)
	}
	if got := len(e.Events()); got != journaled {
		t.Errorf("%d events journaled, want none", got-journaled)
	}
	if n := changes.Load() - changed; n != 0 {
		t.Errorf("OnChange called %d times, want none", n)
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
	set, err := NewSet(echoFixed)
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
