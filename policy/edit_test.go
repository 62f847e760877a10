package policy

import (
	"fmt"
	"testing"
	"time"
)

func TestResumeAt(t *testing.T) {
	pause := Step{Pause: &Pause{Duration: time.Minute}}
	set := func(percent Weight) Step { return Step{SetWeight: w(percent)} }
	for _, c := range []struct {
		steps  []Step
		weight Weight
		step   int
		enter  bool
	}{
		// The next setWeight comes after a pause: wait it out at weight.
		{[]Step{set(5), pause, set(20)}, 500, 1, false},
		// Several pauses: the first, holding weight through each.
		{[]Step{set(5), pause, pause, set(20)}, 500, 1, false},
		// No pause before the next setWeight: in the last one at or
		// below weight, so that the next step is the one above.
		{[]Step{set(5), set(20), set(50)}, 500, 0, false},
		{[]Step{set(5), set(20), set(50)}, 3000, 1, false},
		// Above every setWeight: the pause after the last, then all
		// traffic; or all traffic next.
		{[]Step{set(5), pause}, 500, 1, false},
		{[]Step{set(5), set(20)}, 3000, 1, false},
		// The first step is a setWeight above weight: enter it.
		{[]Step{set(20), pause}, 500, 0, true},
		// The first step is a pause.
		{[]Step{pause, set(20)}, 500, 0, false},
	} {
		step, enter := resumeAt(c.steps, c.weight)
		if step != c.step || enter != c.enter {
			t.Errorf("resumeAt(%s, %s) = %d, %v; want %d, %v", describeSteps(c.steps), c.weight, step, enter, c.step, c.enter)
		}
	}
}

func describeSteps(steps []Step) string {
	var out []string
	for _, s := range steps {
		if s.SetWeight != nil {
			out = append(out, s.SetWeight.String())
		} else {
			out = append(out, "pause")
		}
	}
	return fmt.Sprint(out)
}

// weightsWhileSettling returns the canary weights e's rollout goes through
// as the fleet applies each and the clock moves a second at a time.
func weightsWhileSettling(e *Engine, clock *fakeClock, ticks int) []Weight {
	seen := []Weight{e.Rollouts()[0].Weight}
	for range ticks {
		clock.Add(time.Second)
		e.Tick()
		if r := e.Rollouts()[0]; seen[len(seen)-1] != r.Weight {
			seen = append(seen, r.Weight)
		}
		e.Applied(e.Routing())
	}
	return seen
}

// TestEngineEditedCanaryServesEveryStep checks that a canary whose steps
// are edited serves each later step's weight: the edit once moved the
// rollout into the next setWeight without serving it, and the step after
// it came next.
func TestEngineEditedCanaryServesEveryStep(t *testing.T) {
	e, clock := newTestEngine(t, nil)
	e.SetPolicies(mustSet(t, canaryPolicy()))
	settle(e) // 5 % applied, in the 30 s pause step
	edited := canaryPolicy()
	edited.Canary.Steps = []Step{{SetWeight: w(5)}, {SetWeight: w(20)}, {SetWeight: w(50)}, {Pause: &Pause{Indefinite: true}}}
	e.SetPolicies(mustSet(t, edited))
	if got := fmt.Sprint(weightsWhileSettling(e, clock, 10)); got != "[5 20 50]" {
		t.Fatalf("canary weights after the edit: %s, want [5 20 50]", got)
	}
}

// TestEngineEditedCanaryHoldsThenCompletes checks that an edit to "hold at
// 5 % for an hour" holds for the hour and then gives the new version all
// traffic before completing: the edit once completed the rollout at 5 %.
func TestEngineEditedCanaryHoldsThenCompletes(t *testing.T) {
	e, clock := newTestEngine(t, nil)
	e.SetPolicies(mustSet(t, canaryPolicy()))
	settle(e)
	edited := canaryPolicy()
	edited.Canary.Steps = []Step{{SetWeight: w(5)}, {Pause: &Pause{Duration: time.Hour}}}
	e.SetPolicies(mustSet(t, edited))
	if got := fmt.Sprint(weightsWhileSettling(e, clock, 60)); got != "[5]" {
		t.Fatalf("canary weights in the hour's first minute: %s, want [5]", got)
	}
	clock.Add(time.Hour)
	settle(e)
	if r := e.Rollouts()[0]; r.Phase != Completed || r.Weights()["v2"] != Full {
		t.Fatalf("after the hour: %s with %s, want completed with v2=100", r.Phase, r.Weights())
	}
}

// TestEngineRestartWaitsForTheFirstModel checks that a restarted engine,
// which ticks before discovery's first sync, neither pauses its rollouts
// for health nor restarts their step's clock, nor loses a promotion.
func TestEngineRestartWaitsForTheFirstModel(t *testing.T) {
	for _, promote := range []bool{false, true} {
		t.Run(fmt.Sprint("promoted=", promote), func(t *testing.T) {
			dir := t.TempDir()
			store, err := OpenStore(dir)
			if err != nil {
				t.Fatal(err)
			}
			p := canaryPolicy()
			p.Canary.Steps[1].Pause.Duration = time.Hour // bake at 5 % for an hour
			e, clock := newTestEngine(t, store)
			e.SetPolicies(mustSet(t, p))
			settle(e)
			if promote {
				if err := e.Do("greeter", func(_ Policy, r Rollout, now time.Time) (Rollout, Event, error) {
					return Promote(r, now, "alice", "ship it")
				}); err != nil {
					t.Fatal(err)
				}
			}
			before := e.Rollouts()[0]
			clock.Add(50 * time.Minute)
			store.Close()

			store, err = OpenStore(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			again, err := NewEngine(EngineConfig{Store: store, Clock: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			again.SetPolicies(mustSet(t, p))
			again.Tick() // the engine's ticker fires before discovery's first sync
			if r := again.Rollouts()[0]; r.Phase != before.Phase {
				t.Fatalf("before the first model: %s (%s), want %s as before the restart", r.Phase, r.Reason, before.Phase)
			}
			clock.Add(time.Second)
			again.ObserveModel(greeterModel(t))
			again.Tick()
			after := again.Rollouts()[0]
			if !promote && !after.AppliedAt.Equal(before.AppliedAt) {
				t.Errorf("the pause step's clock: applied at %v before the restart, %v after", before.AppliedAt, after.AppliedAt)
			}
			if promote && after.Weights()["v2"] != Full {
				t.Errorf("after the restart: %s at step %d with %s; the promotion was lost", after.Phase, after.Step, after.Weights())
			}
		})
	}
}

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
