package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"time"
)

// reconcile returns the rollout to run under p given the stored one.
func reconcile(p Policy, r Rollout, exists bool, now time.Time) (Rollout, []Event) {
	fresh := Start(p, now)
	switch {
	case !exists:
		return fresh, []Event{event(fresh, now, "started", "%s rollout %s → %s started at %s", p.Strategy, fresh.Old, fresh.New, describe(fresh))}
	case r.Strategy != p.Strategy || r.Old != fresh.Old || r.New != fresh.New:
		return fresh, []Event{event(fresh, now, "restarted", "policy now rolls %s → %s (%s): restarted; traffic returns to %s first", fresh.Old, fresh.New, p.Strategy, fresh.Old)}
	case r.Spec == fresh.Spec:
		return r, nil
	}
	r.Spec = fresh.Spec
	r.Override = nil // an override lasts until its policy changes
	if p.Strategy == Canary && !r.Done() && !r.promoted() {
		// A step whose weight is not served yet is entered by the next
		// advance (see advanceCanary): an edit changes no weight, and
		// a paused canary holds its own until resumed.
		r.Step = resumeAt(p.Canary.Steps, r.Weight)
	}
	return r, []Event{event(r, now, "edited", "policy edited; continuing from %s", describe(r))}
}

// resumeAt returns the step an edited canary at weight continues from.
// Being in a step means that its weight, or more, is served, and that the
// next step comes after its pause, if it is one. So the canary continues
// from the first pause after the last setWeight at or below weight and
// before the first above it, holding weight through the pauses; else from
// that last setWeight, so that the next step is the first above weight (or
// past the last step, where the new version gets all traffic); else, when
// even the first step is a setWeight above weight, from that step, which
// it has yet to serve.
func resumeAt(steps []Step, weight Weight) int {
	above := slices.IndexFunc(steps, func(s Step) bool { return s.SetWeight != nil && *s.SetWeight > weight })
	if above < 0 {
		above = len(steps)
	}
	last := -1 // the last setWeight before above
	for i := range above {
		if steps[i].SetWeight != nil {
			last = i
		}
	}
	if last+1 < above { // a pause
		return last + 1
	}
	return max(last, 0)
}

// specHash identifies a policy's rollout settings.
func (p Policy) specHash() string {
	b, _ := json.Marshal([]any{p.Strategy, p.Canary, p.BlueGreen, p.Rolling, p.ProgressDeadline, p.OnNack})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
