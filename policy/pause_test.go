package policy

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The ways a promoted canary can be paused: each returns r, promoted at
// now - 1s, paused and (for an operator) resumed by now.
var pausesOfAPromotion = map[string]func(t *testing.T, p Policy, r Rollout, now time.Time) Rollout{
	// v2 loses its only instance before the fleet applied the promotion.
	"health": func(t *testing.T, p Policy, r Rollout, now time.Time) Rollout {
		r, _ = Advance(p, r, Observation{Now: now, Applied: false, Serving: map[string]int{"v1": 2}})
		if r.Phase != Paused || r.Cause != PausedByHealth {
			t.Fatalf("%s (%s), want paused by health", r.Phase, r.Cause)
		}
		return r
	},
	// Consul stops answering right after the promotion.
	"stale discovery": func(t *testing.T, p Policy, r Rollout, now time.Time) Rollout {
		r, _ = Advance(p, r, Observation{Now: now, Applied: true, Serving: bothServe, DiscoveryStale: "since 12:00:02: refused"})
		if r.Phase != Paused || r.Cause != PausedByDiscovery {
			t.Fatalf("%s (%s), want paused for discovery", r.Phase, r.Cause)
		}
		return r
	},
	"nack then resume": func(t *testing.T, p Policy, r Rollout, now time.Time) Rollout {
		r, _ = Advance(p, r, Observation{Now: now, Serving: bothServe, Nack: &Nack{Proxy: "sidecar-7", Error: "bad"}})
		return mustOperate(t)(Resume(p, r, now, "bob", "fixed"))
	},
	"operator": func(t *testing.T, p Policy, r Rollout, now time.Time) Rollout {
		r = mustOperate(t)(PauseRollout(r, now, "bob", "wait"))
		return mustOperate(t)(Resume(p, r, now, "bob", "go on"))
	},
}

// mustOperate returns a function that returns the rollout an operation
// returned, failing t on its error.
func mustOperate(t *testing.T) func(Rollout, Event, error) Rollout {
	t.Helper()
	return func(r Rollout, _ Event, err error) Rollout {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
}

// TestPromotionSurvivesPauses checks that a promoted canary that is paused
// stays promoted: v2 keeps all traffic and the rollout completes. A pause
// once forgot the promotion, and the canary stepped on from the step it was
// promoted at, back down to 25 %.
func TestPromotionSurvivesPauses(t *testing.T) {
	for name, pause := range pausesOfAPromotion {
		t.Run(name, func(t *testing.T) {
			p := canaryPolicy()
			r := Start(p, t0)
			r, _ = Advance(p, r, Observation{Now: t0, Applied: true, Serving: bothServe})
			r = mustOperate(t)(Promote(r, t0.Add(time.Second), "alice", "looks good"))
			r = pause(t, p, r, t0.Add(2*time.Second))
			if _, _, err := Promote(r, t0.Add(2*time.Second), "alice", "again"); err == nil {
				t.Error("a second promotion was accepted")
			}
			for i := 3; i < 120 && r.Phase != Completed; i += 5 {
				r, _ = Advance(p, r, Observation{Now: t0.Add(time.Duration(i) * time.Second), Applied: true, Serving: bothServe})
				if got := r.Weights()["v2"]; got != Full {
					t.Fatalf("+%ds: %s at step %d with v2 at %s %%; the promotion was lost", i, r.Phase, r.Step, got)
				}
			}
			if r.Phase != Completed {
				t.Fatalf("phase %s, want completed", r.Phase)
			}
		})
	}
}

// TestPausedBlueGreenPromotionKeepsItsWindow checks that a promoted
// blue-green rollout paused and resumed is still promoted: within the
// rollback window it can be rolled back, paused or not, its preview route
// does not come back, and it completes when the window is over.
func TestPausedBlueGreenPromotionKeepsItsWindow(t *testing.T) {
	p := Policy{Service: "checkout", Strategy: BlueGreen, ProgressDeadline: time.Minute,
		BlueGreen: &BlueGreenSpec{Active: "v1", Preview: "v2", PreviewMatch: []Match{{Header: "x-preview", Exact: "true"}},
			RollbackWindow: 30 * time.Minute}}
	r := Start(p, t0)
	r, _ = Advance(p, r, Observation{Now: t0, Applied: true, Serving: bothServe})
	r = mustOperate(t)(Promote(r, t0.Add(time.Minute), "alice", "go"))
	r, _ = Advance(p, r, Observation{Now: t0.Add(2 * time.Minute), Applied: true, Serving: bothServe})
	promoted := r.Routing(p)
	r = mustOperate(t)(PauseRollout(r, t0.Add(3*time.Minute), "bob", "hold"))
	if got := r.Routing(p); len(got.Matches) != len(promoted.Matches) {
		t.Errorf("paused after its promotion, routing %+v, want the promotion's %+v", got, promoted)
	}
	if _, _, err := Rollback(p, r, t0.Add(4*time.Minute), "bob", "bad"); err != nil {
		t.Errorf("rollback of the paused promotion within the window refused: %v", err)
	}
	r = mustOperate(t)(Resume(p, r, t0.Add(4*time.Minute), "bob", "go on"))
	if r.Phase != Promoted {
		t.Fatalf("after pause and resume: %s, want promoted", r.Phase)
	}
	r, _ = Advance(p, r, Observation{Now: t0.Add(time.Hour), Applied: true, Serving: bothServe})
	if r.Phase != Completed {
		t.Errorf("an hour later: %s, want completed after the 30m rollback window", r.Phase)
	}
}

// TestNackEndsHealthPause checks that a NACK during a health pause, which
// lifts by itself, is acted on: with onNack abort, the rollout aborts
// rather than progressing once the version serves again.
func TestNackEndsHealthPause(t *testing.T) {
	for _, onNack := range []NackAction{NackAbort, NackPause} {
		t.Run(string(onNack), func(t *testing.T) {
			p := canaryPolicy()
			p.OnNack = onNack
			r := Start(p, t0)
			r, _ = Advance(p, r, Observation{Now: t0, Applied: true, Serving: bothServe})
			r, _ = Advance(p, r, Observation{Now: t0.Add(time.Second), Applied: true, Serving: map[string]int{"v1": 2}})
			if r.Phase != Paused || r.Cause != PausedByHealth {
				t.Fatalf("%s (%s), want paused by health", r.Phase, r.Cause)
			}
			r, _ = Advance(p, r, Observation{Now: t0.Add(2 * time.Second), Applied: true, Serving: map[string]int{"v1": 2},
				Nack: &Nack{Proxy: "sidecar-7", Error: "bad route"}})
			r, _ = Advance(p, r, Observation{Now: t0.Add(3 * time.Second), Applied: true, Serving: bothServe})
			want := map[NackAction]Phase{NackAbort: Aborted, NackPause: Paused}[onNack]
			if r.Phase != want || onNack == NackPause && r.Cause != PausedByNack {
				t.Fatalf("after the NACK and recovery: %s (%s) at %s, want %s", r.Phase, r.Cause, r.Weights(), want)
			}
		})
	}
}

// TestOperatorPausesHealthPause checks that an operator can pause a rollout
// paused for health, and that it then stays paused when the version serves
// again, until resumed; other pauses already hold, and pausing them again
// is refused.
func TestOperatorPausesHealthPause(t *testing.T) {
	p := canaryPolicy()
	r := Start(p, t0)
	r, _ = Advance(p, r, Observation{Now: t0, Applied: true, Serving: bothServe})
	r, _ = Advance(p, r, Observation{Now: t0.Add(time.Second), Applied: true, Serving: map[string]int{"v1": 2}})
	r = mustOperate(t)(PauseRollout(r, t0.Add(2*time.Second), "alice", "investigating"))
	r, _ = Advance(p, r, Observation{Now: t0.Add(3 * time.Second), Applied: true, Serving: bothServe})
	if r.Phase != Paused || r.Cause != PausedByOperator {
		t.Fatalf("%s (%s) after the version recovered, want still paused by the operator", r.Phase, r.Cause)
	}
	if _, _, err := PauseRollout(r, t0.Add(4*time.Second), "bob", "me too"); err == nil {
		t.Error("pausing a rollout an operator paused was accepted")
	}
	r = mustOperate(t)(Resume(p, r, t0.Add(5*time.Second), "alice", "fine"))
	if r.Phase != Progressing {
		t.Errorf("after resume: %s, want progressing", r.Phase)
	}
}

// TestStaleDiscoveryHoldsTheRollout checks that a rollout does not move on
// while discovery's upstream fails: its timed pause does not run out on a
// catalog nobody can vouch for, it says why it holds, it resumes by itself
// when discovery is current again, and its pause then starts over.
func TestStaleDiscoveryHoldsTheRollout(t *testing.T) {
	p := canaryPolicy() // step 1 pauses 30s
	stale := "since 12:00:12: greeter: connection refused"
	r := Start(p, t0)
	advance := func(at time.Duration, stale string, serving map[string]int) {
		t.Helper()
		r, _ = Advance(p, r, Observation{Now: t0.Add(at), Applied: true, Serving: serving, DiscoveryStale: stale})
	}
	advance(0, "", bothServe)
	advance(time.Second, "", bothServe) // into step 1, the 30s pause, applied at once
	if r.Step != 1 || r.Phase != Progressing {
		t.Fatalf("step %d, %s; want step 1 progressing", r.Step, r.Phase)
	}
	advance(12*time.Second, stale, bothServe)
	if r.Phase != Paused || r.Cause != PausedByDiscovery || !strings.Contains(r.Reason, stale) {
		t.Fatalf("%s (%s: %q) with discovery stale, want paused for discovery, naming why", r.Phase, r.Cause, r.Reason)
	}
	advance(5*time.Minute, stale, bothServe)
	if r.Step != 1 || r.Phase != Paused || r.Weights()["v2"] != 5*100 {
		t.Fatalf("after 5m of stale discovery: step %d, %s at %s; want held at step 1, v2 at 5 %%", r.Step, r.Phase, r.Weights())
	}
	advance(5*time.Minute+time.Second, "", bothServe)
	if r.Phase != Progressing || r.Step != 1 {
		t.Fatalf("discovery current again: step %d, %s (%s); want step 1 progressing", r.Step, r.Phase, r.Reason)
	}
	advance(5*time.Minute+20*time.Second, "", bothServe)
	if r.Step != 1 {
		t.Fatalf("19s after discovery recovered: step %d; want the 30s pause started over, still step 1", r.Step)
	}
	advance(5*time.Minute+32*time.Second, "", bothServe)
	if r.Step != 2 {
		t.Fatalf("31s after discovery recovered: step %d; want step 2", r.Step)
	}
}

// TestStaleDiscoveryAndOtherPauses checks how a discovery pause meets the
// others: it replaces a health pause (the health it went by is not known
// any more) and gives way to one when discovery recovers with the version
// still down; a NACK ends it; an operator may pause over it; and it never
// replaces a pause that waits for an operator.
func TestStaleDiscoveryAndOtherPauses(t *testing.T) {
	p := canaryPolicy()
	stale := "since 12:00:02: consul: connection refused"
	v2Down := map[string]int{"v1": 2}
	start := func() Rollout {
		r := Start(p, t0)
		r, _ = Advance(p, r, Observation{Now: t0, Applied: true, Serving: bothServe})
		return r
	}
	obs := func(at time.Duration, stale string, serving map[string]int) Observation {
		return Observation{Now: t0.Add(at), Applied: true, Serving: serving, DiscoveryStale: stale}
	}

	r, _ := Advance(p, start(), obs(time.Second, "", v2Down))
	r, _ = Advance(p, r, obs(2*time.Second, stale, v2Down))
	if r.Cause != PausedByDiscovery {
		t.Errorf("health pause, then discovery stale: paused by %s, want discovery", r.Cause)
	}
	r, _ = Advance(p, r, obs(3*time.Second, "", v2Down))
	if r.Phase != Paused || r.Cause != PausedByHealth {
		t.Errorf("discovery back with v2 still down: %s (%s), want paused by health", r.Phase, r.Cause)
	}

	r, _ = Advance(p, start(), obs(time.Second, stale, bothServe))
	nacked := obs(2*time.Second, stale, bothServe)
	nacked.Nack = &Nack{Proxy: "sidecar-7", Error: "bad route"}
	r, _ = Advance(p, r, nacked)
	if r.Phase != Paused || r.Cause != PausedByNack {
		t.Errorf("a NACK during a discovery pause: %s (%s), want paused by the NACK", r.Phase, r.Cause)
	}

	r, _ = Advance(p, start(), obs(time.Second, stale, bothServe))
	r = mustOperate(t)(PauseRollout(r, t0.Add(2*time.Second), "alice", "hold on"))
	r, _ = Advance(p, r, obs(3*time.Second, "", bothServe))
	if r.Phase != Paused || r.Cause != PausedByOperator {
		t.Errorf("operator paused over a discovery pause, discovery back: %s (%s), want still paused by the operator", r.Phase, r.Cause)
	}
	r, _ = Advance(p, r, obs(4*time.Second, stale, bothServe))
	if r.Cause != PausedByOperator {
		t.Errorf("an operator's pause, then discovery stale: paused by %s, want still the operator", r.Cause)
	}
}

// TestRetry checks that an aborted or rolled back rollout starts over
// from its first step, journaled with who asked, and that nothing else
// can be retried.
func TestRetry(t *testing.T) {
	p := canaryPolicy()
	r := Start(p, t0)
	r, _ = Advance(p, r, Observation{Now: t0, Applied: true, Serving: bothServe})
	if _, _, err := Retry(p, r, t0, "alice", "again"); !errors.Is(err, ErrNotAborted) {
		t.Errorf("retrying a progressing rollout: %v, want ErrNotAborted", err)
	}
	r = mustOperate(t)(Abort(r, t0.Add(time.Minute), "alice", "errors"))
	r, ev, err := Retry(p, r, t0.Add(time.Hour), "bob", "fixed")
	if err != nil {
		t.Fatal(err)
	}
	if want := Start(p, t0.Add(time.Hour)); !reflect.DeepEqual(r, want) {
		t.Errorf("retried: %+v, want a rollout started over: %+v", r, want)
	}
	if ev.Kind != "retried" || ev.By != "bob" || ev.Message != "canary rollout v1 → v2 started over at step 0 (v1=95 v2=5) — fixed" {
		t.Errorf("event %+v", ev)
	}

	bg := Policy{Service: "checkout", Strategy: BlueGreen,
		BlueGreen: &BlueGreenSpec{Active: "v1", Preview: "v2", RollbackWindow: time.Hour}}
	r = Start(bg, t0)
	r = mustOperate(t)(Promote(r, t0, "alice", "go"))
	r = mustOperate(t)(Rollback(bg, r, t0.Add(time.Minute), "alice", "bad"))
	if r = mustOperate(t)(Retry(bg, r, t0.Add(time.Hour), "alice", "fixed")); r.Phase != Progressing || r.Weights()["v2"] != 0 {
		t.Errorf("a rolled back blue-green rollout retried: %s at %s, want progressing with the preview at 0", r.Phase, r.Weights())
	}
	r = mustOperate(t)(Promote(r, t0.Add(2*time.Hour), "alice", "go"))
	r, _ = Advance(bg, r, Observation{Now: t0.Add(3 * time.Hour), Applied: true, Serving: bothServe}) // promotion applied
	r, _ = Advance(bg, r, Observation{Now: t0.Add(4 * time.Hour), Applied: true, Serving: bothServe}) // window over
	if _, _, err := Retry(bg, r, t0.Add(4*time.Hour), "alice", "again"); r.Phase != Completed || !errors.Is(err, ErrNotAborted) {
		t.Errorf("retrying a %s rollout: %v, want ErrNotAborted", r.Phase, err)
	}
}
