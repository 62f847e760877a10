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
	}{
		// The next setWeight comes after a pause: wait it out at weight.
		{[]Step{set(5), pause, set(20)}, 500, 1},
		// Several pauses: the first, holding weight through each.
		{[]Step{set(5), pause, pause, set(20)}, 500, 1},
		// No pause before the next setWeight: in the last one at or
		// below weight, so that the next step is the one above.
		{[]Step{set(5), set(20), set(50)}, 500, 0},
		{[]Step{set(5), set(20), set(50)}, 3000, 1},
		// Above every setWeight: the pause after the last, then all
		// traffic; or all traffic next.
		{[]Step{set(5), pause}, 500, 1},
		{[]Step{set(5), set(20)}, 3000, 1},
		// The first step is a setWeight above weight: in it, to serve it.
		{[]Step{set(20), pause}, 500, 0},
		// The first step is a pause.
		{[]Step{pause, set(20)}, 500, 0},
	} {
		if step := resumeAt(c.steps, c.weight); step != c.step {
			t.Errorf("resumeAt(%s, %s) = %d, want %d", describeSteps(c.steps), c.weight, step, c.step)
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
			store := openStore(t, dir)
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
			again := restarted(t, store, dir, clock.Now)
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

// TestEngineEditHoldsAPausedCanarysWeights checks that an edit of a paused
// canary's steps changes no weight until it is resumed: a pause holds the
// weights, and a NACK pause must not push new ones to proxies rejecting
// config. The rollout then enters the edited step once resumed.
func TestEngineEditHoldsAPausedCanarysWeights(t *testing.T) {
	pauses := map[string]func(e *Engine){
		"operator": func(e *Engine) {
			if err := e.Do("greeter", func(_ Policy, r Rollout, now time.Time) (Rollout, Event, error) {
				return PauseRollout(r, now, "alice", "hold everything")
			}); err != nil {
				t.Fatal(err)
			}
		},
		"nack": func(e *Engine) { e.Nack("sidecar-7", "bad route"); e.Tick() },
	}
	for name, pause := range pauses {
		t.Run(name, func(t *testing.T) {
			e, clock := newTestEngine(t, nil)
			e.SetPolicies(mustSet(t, canaryPolicy()))
			settle(e) // 5 %, in the 30 s pause
			pause(e)
			edited := canaryPolicy()
			edited.Canary.Steps = []Step{{SetWeight: w(20)}, {Pause: &Pause{Indefinite: true}}, {SetWeight: w(50)}}
			e.SetPolicies(mustSet(t, edited))
			clock.Add(time.Second)
			settle(e)
			if r := e.Rollouts()[0]; r.Phase != Paused || r.Weights()["v2"] != 500 {
				t.Fatalf("paused canary after an edit: %s (%s) at %s, want still paused at v2=5", r.Phase, r.Cause, r.Weights())
			}
			if err := e.Do("greeter", func(p Policy, r Rollout, now time.Time) (Rollout, Event, error) {
				return Resume(p, r, now, "alice", "go on")
			}); err != nil {
				t.Fatal(err)
			}
			settle(e)
			if r := e.Rollouts()[0]; r.Weights()["v2"] != 2000 {
				t.Fatalf("resumed after the edit: %s at step %d with %s, want v2=20", r.Phase, r.Step, r.Weights())
			}
		})
	}
}

// TestEngineResumeAfterEditKeepsATimedPause checks that resuming a canary
// that waited at a pause: {} step, and whose edit put it in a timed pause,
// waits out that pause: resume once moved past whatever step it was in.
func TestEngineResumeAfterEditKeepsATimedPause(t *testing.T) {
	e, clock := newTestEngine(t, nil)
	e.SetPolicies(mustSet(t, canaryPolicy()))
	settle(e)
	clock.Add(31 * time.Second)
	settle(e) // at the pause: {} step, at 25 %
	edited := canaryPolicy()
	edited.Canary.Steps = []Step{{SetWeight: w(5)}, {SetWeight: w(25)}, {Pause: &Pause{Duration: 10 * time.Minute}}, {SetWeight: w(50)}}
	e.SetPolicies(mustSet(t, edited))
	clock.Add(time.Minute)
	if err := e.Do("greeter", func(p Policy, r Rollout, now time.Time) (Rollout, Event, error) {
		return Resume(p, r, now, "alice", "go on")
	}); err != nil {
		t.Fatal(err)
	}
	settle(e)
	if r := e.Rollouts()[0]; r.Weights()["v2"] != 2500 {
		t.Fatalf("1 min into a 10 min pause at 25 %%: %s at step %d with %s; the pause was skipped", r.Phase, r.Step, r.Weights())
	}
}

// TestAdvanceEntersAnUnservedStep checks that a canary in a setWeight step
// above its weight, as an edit by an older weir left some, serves that
// step before the next: it once went on to the next step (5 → 50).
func TestAdvanceEntersAnUnservedStep(t *testing.T) {
	p := canaryPolicy()
	p.Canary.Steps = []Step{{SetWeight: w(5)}, {SetWeight: w(20)}, {SetWeight: w(50)}}
	r := Start(p, t0)
	r.Step, r.Weight, r.AppliedAt = 1, 500, t0
	r, _ = Advance(p, r, Observation{Now: t0.Add(time.Second), Applied: true, Serving: bothServe})
	if r.Step != 1 || r.Weight != 2000 {
		t.Fatalf("next: step %d with %s, want step 1 at v2=20", r.Step, r.Weights())
	}
}
