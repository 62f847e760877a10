package policy

import (
	"maps"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func w(pct Weight) *Weight { p := pct * 100; return &p }

func canaryPolicy() Policy {
	return Policy{Service: "greeter", Strategy: Canary, ProgressDeadline: 2 * time.Minute, OnNack: NackPause,
		Canary: &CanarySpec{Stable: "v1", Version: "v2", Steps: []Step{
			{SetWeight: w(5)},
			{Pause: &Pause{Duration: 30 * time.Second}},
			{SetWeight: w(25)},
			{Pause: &Pause{Indefinite: true}},
			{SetWeight: w(50)},
		}}}
}

var bothServe = map[string]int{"v1": 2, "v2": 1}

// tick is one evaluation in a scenario: at offset, with the fleet having
// applied or not; want is the phase and the canary weight (percent) after it.
type tick struct {
	at         time.Duration
	applied    bool
	serving    map[string]int
	nack       *Nack
	op         func(Policy, Rollout, time.Time) (Rollout, Event, error)
	wantPhase  Phase
	wantWeight Weight // percent of the new version
	wantReason string // substring, when set
}

func run(t *testing.T, p Policy, ticks []tick) {
	t.Helper()
	r := Start(p, t0)
	for i, tk := range ticks {
		now := t0.Add(tk.at)
		if tk.op != nil {
			var err error
			if r, _, err = tk.op(p, r, now); err != nil {
				t.Fatalf("tick %d: %v", i, err)
			}
		} else {
			serving := tk.serving
			if serving == nil {
				serving = bothServe
			}
			r, _ = Advance(p, r, Observation{Now: now, Applied: tk.applied, Serving: serving, Nack: tk.nack})
		}
		if r.Phase != tk.wantPhase || r.Weights()[r.New] != tk.wantWeight*100 {
			t.Fatalf("tick %d (+%v): phase %s, %s at %s %%; want %s at %d %%", i, tk.at, r.Phase, r.New, r.Weights()[r.New], tk.wantPhase, uint32(tk.wantWeight))
		}
		if tk.wantReason != "" && !strings.Contains(r.Reason, tk.wantReason) {
			t.Fatalf("tick %d: reason %q lacks %q", i, r.Reason, tk.wantReason)
		}
	}
}

func promoteOp(_ Policy, r Rollout, now time.Time) (Rollout, Event, error) {
	return Promote(r, now, "alice", "looks good")
}
func resumeOp(p Policy, r Rollout, now time.Time) (Rollout, Event, error) {
	return Resume(p, r, now, "alice", "go on")
}
func abortOp(_ Policy, r Rollout, now time.Time) (Rollout, Event, error) {
	return Abort(r, now, "alice", "errors up")
}
func rollbackOp(p Policy, r Rollout, now time.Time) (Rollout, Event, error) {
	return Rollback(p, r, now, "alice", "bad")
}

func TestCanary(t *testing.T) {
	s := time.Second
	tests := []struct {
		name  string
		ticks []tick
	}{
		{"steps gated on the fleet, pause counted from applied, indefinite pause then resume, completes", []tick{
			{at: 0, applied: false, wantPhase: Progressing, wantWeight: 5},
			{at: 10 * s, applied: true, wantPhase: Progressing, wantWeight: 5}, // 5 % applied → pause step
			{at: 11 * s, applied: true, wantPhase: Progressing, wantWeight: 5}, // pause step applied at 11 s
			{at: 40 * s, applied: true, wantPhase: Progressing, wantWeight: 5}, // 29 s into the pause
			{at: 41 * s, applied: true, wantPhase: Progressing, wantWeight: 25},
			{at: 42 * s, applied: false, wantPhase: Progressing, wantWeight: 25}, // not applied yet: holds
			{at: 50 * s, applied: true, wantPhase: Progressing, wantWeight: 25},  // applied → indefinite pause step
			{at: 51 * s, applied: true, wantPhase: Paused, wantWeight: 25, wantReason: "until promoted or resumed"},
			{at: 90 * s, applied: true, wantPhase: Paused, wantWeight: 25},
			{at: 91 * s, op: resumeOp, wantPhase: Progressing, wantWeight: 50},
			{at: 95 * s, applied: true, wantPhase: Progressing, wantWeight: 100}, // last step applied → 100 %
			{at: 96 * s, applied: true, wantPhase: Completed, wantWeight: 100},
		}},
		{"promote at the indefinite pause", []tick{
			{at: 0, applied: true, wantPhase: Progressing, wantWeight: 5},
			{at: s, applied: true, wantPhase: Progressing, wantWeight: 5},
			{at: 31 * s, applied: true, wantPhase: Progressing, wantWeight: 25},
			{at: 32 * s, applied: true, wantPhase: Progressing, wantWeight: 25},
			{at: 33 * s, applied: true, wantPhase: Paused, wantWeight: 25},
			{at: 34 * s, op: promoteOp, wantPhase: Promoted, wantWeight: 100},
			{at: 35 * s, applied: false, wantPhase: Promoted, wantWeight: 100},
			{at: 36 * s, applied: true, wantPhase: Completed, wantWeight: 100},
		}},
		{"a step the fleet does not apply in time pauses", []tick{
			{at: 0, applied: false, wantPhase: Progressing, wantWeight: 5},
			{at: 2*time.Minute + s, applied: false, wantPhase: Paused, wantWeight: 5, wantReason: "not applied by the fleet within 2m0s"},
			{at: 3 * time.Minute, op: resumeOp, wantPhase: Progressing, wantWeight: 5},
			{at: 3*time.Minute + s, applied: true, wantPhase: Progressing, wantWeight: 5},
		}},
		{"a NACK pauses, naming the proxy and error", []tick{
			{at: 0, nack: &Nack{Proxy: "sidecar-7", Error: "bad route"}, wantPhase: Paused, wantWeight: 5, wantReason: "proxy sidecar-7 rejected config: bad route"},
			{at: s, applied: true, wantPhase: Paused, wantWeight: 5},
		}},
		{"a canary without serving instances pauses until it recovers", []tick{
			{at: 0, applied: true, wantPhase: Progressing, wantWeight: 5},
			{at: s, applied: true, serving: map[string]int{"v1": 2}, wantPhase: Paused, wantWeight: 5, wantReason: "version v2 has no serving instances"},
			{at: time.Hour, applied: true, serving: map[string]int{"v1": 2}, wantPhase: Paused, wantWeight: 5},
			{at: time.Hour + s, applied: true, wantPhase: Progressing, wantWeight: 5},
		}},
		{"abort returns everything to stable", []tick{
			{at: 0, applied: true, wantPhase: Progressing, wantWeight: 5},
			{at: s, op: abortOp, wantPhase: Aborted, wantWeight: 0, wantReason: "aborted by alice: errors up"},
			{at: 2 * s, applied: true, wantPhase: Aborted, wantWeight: 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { run(t, canaryPolicy(), tt.ticks) })
	}
}

func TestCanaryNackAbort(t *testing.T) {
	p := canaryPolicy()
	p.OnNack = NackAbort
	run(t, p, []tick{{at: 0, nack: &Nack{Proxy: "c", Error: "e"}, wantPhase: Aborted, wantWeight: 0, wantReason: "proxy c rejected"}})
}

func TestBlueGreen(t *testing.T) {
	p := Policy{Service: "checkout", Strategy: BlueGreen, ProgressDeadline: time.Minute,
		BlueGreen: &BlueGreenSpec{Active: "v1", Preview: "v2", PreviewMatch: []Match{{Header: "x-preview", Exact: "true"}},
			AutoPromoteAfter: 10 * time.Minute, RollbackWindow: 30 * time.Minute}}
	run(t, p, []tick{
		{at: 0, applied: true, wantPhase: Progressing, wantWeight: 0},
		{at: 10 * time.Minute, applied: true, wantPhase: Promoted, wantWeight: 100},
		{at: 10*time.Minute + time.Second, applied: true, wantPhase: Promoted, wantWeight: 100},
		{at: 20 * time.Minute, op: rollbackOp, wantPhase: Aborted, wantWeight: 0, wantReason: "rolled back by alice"},
	})
	run(t, p, []tick{
		{at: 0, applied: true, wantPhase: Progressing, wantWeight: 0},
		{at: time.Minute, op: promoteOp, wantPhase: Promoted, wantWeight: 100},
		{at: 2 * time.Minute, applied: true, wantPhase: Promoted, wantWeight: 100},
		{at: 32 * time.Minute, applied: true, wantPhase: Completed, wantWeight: 100},
	})
	r := Start(p, t0)
	if rt := r.Routing(p); len(rt.Matches) != 1 || rt.Matches[0].Version != "v2" || rt.Weights["v1"] != Full {
		t.Errorf("preview routing = %+v, want v1 100 %% and a match route to v2", rt)
	}
}

func TestRolling(t *testing.T) {
	p := Policy{Service: "ledger", Strategy: Rolling, ProgressDeadline: time.Minute,
		Rolling: &RollingSpec{From: "v1", To: "v2", StepWeight: 4000, Interval: time.Minute}}
	run(t, p, []tick{
		{at: 0, applied: true, wantPhase: Progressing, wantWeight: 40},
		{at: time.Minute, applied: true, wantPhase: Progressing, wantWeight: 80},
		{at: time.Minute + time.Second, applied: true, wantPhase: Progressing, wantWeight: 80},
		{at: 2*time.Minute + time.Second, applied: true, wantPhase: Progressing, wantWeight: 100},
		{at: 2*time.Minute + 2*time.Second, applied: true, wantPhase: Completed, wantWeight: 100},
	})
}

func TestOperationsRefused(t *testing.T) {
	p := canaryPolicy()
	done, _, _ := Abort(Start(p, t0), t0, "a", "r")
	if _, _, err := Promote(done, t0, "a", "r"); err == nil {
		t.Error("promote of an aborted rollout succeeded")
	}
	if _, _, err := Resume(p, Start(p, t0), t0, "a", "r"); err == nil {
		t.Error("resume of a progressing rollout succeeded")
	}
	if _, _, err := Rollback(p, Start(p, t0), t0, "a", "r"); err == nil {
		t.Error("rollback of a canary succeeded")
	}
	if _, _, err := SetWeights(Start(p, t0), Weights{"v1": 5000, "v3": 5000}, t0, "a", "r"); err == nil {
		t.Error("set-weights naming a foreign version succeeded")
	}
}

func TestSetWeightsLastsUntilNextStep(t *testing.T) {
	p := canaryPolicy()
	r := Start(p, t0)
	r, _ = Advance(p, r, Observation{Now: t0, Applied: true, Serving: bothServe})
	r, _ = Advance(p, r, Observation{Now: t0.Add(time.Second), Applied: true, Serving: bothServe}) // pause step applied
	r, _, err := SetWeights(r, Weights{"v1": 8000, "v2": 2000}, t0.Add(2*time.Second), "bob", "more canary")
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Weights()["v2"]; got != 2000 {
		t.Fatalf("override not in force: v2 at %v", got)
	}
	r, _ = Advance(p, r, Observation{Now: t0.Add(32 * time.Second), Applied: true, Serving: bothServe})
	if r.Override != nil || r.Weights()["v2"] != 2500 {
		t.Fatalf("after the pause the next step should replace the override: %+v", r.Weights())
	}
}

// TestSetWeightsNamesBothVersions checks that an override naming one of
// the rollout's versions gives the other 0 %, so that if the one named
// stops serving, the other, which the rollout still names, takes its
// traffic (see Effective) rather than every serving version of the
// service: here v3, which the policy does not name, got a third of it.
func TestSetWeightsNamesBothVersions(t *testing.T) {
	r, _, err := SetWeights(Start(canaryPolicy(), t0), Weights{"v2": Full}, t0, "bob", "all on v2")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.Weights(), (Weights{"v1": 0, "v2": Full}); !maps.Equal(got, want) {
		t.Errorf("override weights %v, want %v", got, want)
	}
	got, _ := Effective(r.Weights(), map[string]int{"v1": 2, "v3": 1})
	if want := (Weights{"v1": Full}); !maps.Equal(got, want) {
		t.Errorf("with v2 down, traffic goes %v, want %v", got, want)
	}
}

func TestOverrideEndsWithTheRollout(t *testing.T) {
	p := canaryPolicy()
	r := Start(p, t0)
	r, _, err := SetWeights(r, Weights{"v1": 5000, "v2": 5000}, t0, "bob", "half")
	if err != nil {
		t.Fatal(err)
	}
	r, _, err = Promote(r, t0, "bob", "go")
	if err != nil {
		t.Fatal(err)
	}
	if r.Override != nil {
		t.Fatal("promote left the override in force")
	}
	if _, _, err := SetWeights(r, Weights{"v1": 5000, "v2": 5000}, t0, "bob", "again"); err == nil {
		t.Fatal("set-weights on a promoted rollout succeeded: it would outlive the rollout")
	}
	// An override set at the last step goes when the rollout completes.
	last := Start(p, t0)
	last.Step, last.Weight = len(p.Canary.Steps), Full // past the last step, the new version has all traffic
	last.Override = &Override{Weights: Weights{"v1": 5000, "v2": 5000}}
	last, _ = Advance(p, last, Observation{Now: t0, Applied: true, Serving: bothServe})
	if last.Phase != Completed || last.Override != nil {
		t.Fatalf("after completion: %s with override %v, want completed without one", last.Phase, last.Override)
	}
}
