package policy

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestEngineSavesRolloutAfterFrozen checks that a policy deleted
// mid-rollout and written back starts a rollout that is saved: the save
// once wrote it and then deleted the service as no longer frozen.
func TestEngineSavesRolloutAfterFrozen(t *testing.T) {
	store, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	e, _ := newTestEngine(t, store)
	p := canaryPolicy()
	e.SetPolicies(mustSet(t, p))
	e.SetPolicies(mustSet(t))    // the file deleted: frozen
	e.SetPolicies(mustSet(t, p)) // written again: a new rollout
	rollouts, frozen, _, err := store.Load()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rollouts["greeter"]; !ok || len(frozen) != 0 {
		t.Fatalf("stored: rollouts %v, frozen %v; want greeter's new rollout and nothing frozen", rollouts, frozen)
	}
}

// TestEngineRestoredPolicyContinuesItsRollout checks that a policy file
// removed and put back, unchanged, continues its rollout where it was,
// also across a restart in between: it once started over from its first
// step, taking the canary's 25 % back to 5 %.
func TestEngineRestoredPolicyContinuesItsRollout(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprint("restart=", restart), func(t *testing.T) {
			dir := t.TempDir()
			store, err := OpenStore(dir)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { store.Close() })
			e, clock := newTestEngine(t, store)
			p := canaryPolicy()
			e.SetPolicies(mustSet(t, p))
			settle(e)
			clock.Add(31 * time.Second)
			settle(e)
			before := e.Rollouts()[0]
			if before.Weight != 2500 || before.Phase != Paused {
				t.Fatalf("setup: %s at %s, want paused at 25", before.Phase, before.Weights())
			}
			e.SetPolicies(mustSet(t)) // the file removed: frozen
			if restart {
				store.Close()
				if store, err = OpenStore(dir); err != nil {
					t.Fatal(err)
				}
				if e, err = NewEngine(EngineConfig{Store: store, Clock: clock.Now}); err != nil {
					t.Fatal(err)
				}
				e.ObserveModel(greeterModel(t))
				if got := e.Routing().Map()["greeter"].Weights; got["v2"] != 2500 {
					t.Fatalf("frozen after the restart at %s, want v2=25", got)
				}
			}
			e.SetPolicies(mustSet(t, p)) // and put back
			after := e.Rollouts()[0]
			if after.Weight != before.Weight || after.Phase != before.Phase || after.Step != before.Step {
				t.Fatalf("after the file came back: %s at step %d with %s, want %s at step %d with %s as before",
					after.Phase, after.Step, after.Weights(), before.Phase, before.Step, before.Weights())
			}
		})
	}
}

// TestEngineUnfrozenJournal checks that a policy coming back journals that
// its rollout continues only when it does: a policy back with another
// version restarts the rollout, and says only that.
func TestEngineUnfrozenJournal(t *testing.T) {
	e, _ := newTestEngine(t, nil)
	e.SetPolicies(mustSet(t, canaryPolicy()))
	settle(e)
	e.SetPolicies(mustSet(t))
	other := canaryPolicy()
	other.Canary.Version = "v3"
	e.SetPolicies(mustSet(t, other))
	var kinds []string
	for _, ev := range e.Events() {
		kinds = append(kinds, ev.Kind)
	}
	if n := len(kinds); n < 2 || kinds[n-2] != "frozen" || kinds[n-1] != "restarted" {
		t.Fatalf("journal: %s, want it to end with frozen, restarted", strings.Join(kinds, ", "))
	}
}

// previewPolicy is a blue-green policy that promotes its preview after 10
// minutes.
func previewPolicy() Policy {
	return Policy{Service: "greeter", Strategy: BlueGreen, ProgressDeadline: 2 * time.Minute, OnNack: NackPause,
		BlueGreen: &BlueGreenSpec{Active: "v1", Preview: "v2", PreviewMatch: []Match{{Header: "x-preview", Exact: "true"}},
			AutoPromoteAfter: 10 * time.Minute, RollbackWindow: 30 * time.Minute}}
}

// TestEngineUnparkedRolloutWaitsForTheFleet checks that a rollout whose
// policy comes back after an hour, frozen at weights only, starts its step
// over: its routing must be applied again, and nothing was observed
// meanwhile. Its old clocks once auto-promoted a preview served for 1 of
// its 10 minutes, or paused a step for a deadline missed while frozen.
func TestEngineUnparkedRolloutWaitsForTheFleet(t *testing.T) {
	for _, applied := range []bool{true, false} {
		t.Run(fmt.Sprint("applied=", applied), func(t *testing.T) {
			e, clock := newTestEngine(t, nil)
			p := previewPolicy()
			e.SetPolicies(mustSet(t, p))
			if applied {
				settle(e)
			}
			clock.Add(time.Minute)
			e.SetPolicies(mustSet(t)) // frozen at v1=100, without the preview route
			e.Applied(e.Routing())
			clock.Add(time.Hour)
			e.SetPolicies(mustSet(t, p))
			e.Tick() // before the fleet applied the preview route again
			if r := e.Rollouts()[0]; r.Phase != Progressing {
				t.Fatalf("on the first tick after the policy came back: %s (%s), want progressing", r.Phase, r.Reason)
			}
		})
	}
}
