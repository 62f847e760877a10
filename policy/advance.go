package policy

import (
	"errors"
	"fmt"
	"maps"
	"time"
)

// Advance moves r forward under p given obs, and returns the new state and
// the events to journal. It is pure: time comes from obs.Now.
func Advance(p Policy, r Rollout, obs Observation) (Rollout, []Event) {
	if r.Done() {
		return r, nil
	}
	now := obs.Now
	// A NACK ends a pause that would lift by itself; other pauses already
	// hold until an operator resumes.
	if obs.Nack != nil && (r.Phase != Paused || r.Cause.lifts()) {
		reason := fmt.Sprintf("proxy %s rejected config: %s", obs.Nack.Proxy, obs.Nack.Error)
		if p.OnNack == NackAbort {
			r = abort(r, "aborted: "+reason)
			return r, []Event{event(r, now, "aborted", "%s", r.Reason)}
		}
		r.pause(PausedByNack, reason)
		return r, []Event{event(r, now, "paused", "%s", reason)}
	}
	var events []Event
	if obs.Applied && r.AppliedAt.IsZero() {
		r.AppliedAt = now
		events = append(events, event(r, now, "step-applied", "fleet applied %s", describe(r)))
	}
	if obs.DiscoveryStale != "" {
		if r.Phase != Paused || r.Cause == PausedByHealth {
			r.pause(PausedByDiscovery, fmt.Sprintf("discovery is stale (%s): which instances serve is not known", obs.DiscoveryStale))
			events = append(events, event(r, now, "paused", "%s", r.Reason))
		}
		return r, events
	}
	if missing := unserved(r, obs.Serving); missing != "" {
		if r.Phase != Paused || r.Cause == PausedByDiscovery {
			r.pause(PausedByHealth, fmt.Sprintf("version %s has no serving instances; its share went to the others", missing))
			events = append(events, event(r, now, "paused", "%s", r.Reason))
		}
		return r, events
	}
	if r.Phase == Paused && r.Cause.lifts() {
		// Time spent without a serving version, or without knowing which
		// serve, observed nothing: the step's pause starts over.
		cause := r.Cause
		r.resume()
		if !r.AppliedAt.IsZero() {
			r.AppliedAt = now
		}
		events = append(events, event(r, now, "resumed", "%s", resumedBecause[cause]))
	}
	if r.Phase == Paused {
		return r, events
	}
	if r.AppliedAt.IsZero() {
		if p.ProgressDeadline > 0 && now.Sub(later(r.StepSince, obs.Since)) > p.ProgressDeadline {
			r.pause(PausedByDeadline, fmt.Sprintf("%s not applied by the fleet within %s", describe(r), p.ProgressDeadline))
			events = append(events, event(r, now, "paused", "%s", r.Reason))
		}
		return r, events
	}
	var more []Event
	switch p.Strategy {
	case Canary:
		r, more = advanceCanary(p.Canary, r, now)
	case BlueGreen:
		r, more = advanceBlueGreen(p.BlueGreen, r, now)
	case Rolling:
		r, more = advanceRolling(p.Rolling, r, now)
	}
	return r, append(events, more...)
}

// resumedBecause says why a pause that lifts by itself lifted.
var resumedBecause = map[PauseCause]string{
	PausedByHealth:    "every version of the rollout serves again",
	PausedByDiscovery: "discovery is current again, and every version of the rollout serves",
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// unserved returns a version of the rollout that should serve and has no
// serving instance, or "".
func unserved(r Rollout, serving map[string]int) string {
	for _, v := range []string{r.New, r.Old} {
		if (v == r.New || r.Weights()[v] > 0) && serving[v] == 0 {
			return v
		}
	}
	return ""
}

// describe names the current step for messages.
func describe(r Rollout) string {
	return fmt.Sprintf("step %d (%s)", r.Step, r.Weights())
}

// advanceCanary moves an applied canary step on. A step whose weight it
// does not serve yet, as an edit can leave it in (see resumeAt; or an older
// weir's edits, also past the last step below all traffic), is entered
// first. Promoted, or past the last step, it completes.
func advanceCanary(c *CanarySpec, r Rollout, now time.Time) (Rollout, []Event) {
	if w := canaryWeightAt(c.Steps, r.Step, r.Weight); w > r.Weight { // never when promoted, at all traffic
		r.enterStep(r.Step, w, now)
		return r, []Event{event(r, now, "step", "entered %s", describe(r))}
	}
	if r.Phase == Promoted || r.Step >= len(c.Steps) {
		r.Phase, r.Override = Completed, nil
		return r, []Event{event(r, now, "completed", "%s takes all traffic", r.New)}
	}
	if pause := c.Steps[r.Step].Pause; pause != nil {
		if pause.Indefinite {
			r.pause(PausedAtStep, fmt.Sprintf("step %d pauses until promoted or resumed", r.Step))
			return r, []Event{event(r, now, "paused", "%s", r.Reason)}
		}
		if now.Sub(r.AppliedAt) < pause.Duration {
			return r, nil
		}
	}
	next := r.Step + 1
	r.enterStep(next, canaryWeightAt(c.Steps, next, r.Weight), now)
	return r, []Event{event(r, now, "step", "entered %s", describe(r))}
}

// advanceBlueGreen promotes after AutoPromoteAfter and completes after the
// rollback window.
func advanceBlueGreen(b *BlueGreenSpec, r Rollout, now time.Time) (Rollout, []Event) {
	switch r.Phase {
	case Progressing:
		if b.AutoPromoteAfter > 0 && now.Sub(r.AppliedAt) >= b.AutoPromoteAfter {
			r = promote(r, now)
			return r, []Event{event(r, now, "promoted", "auto-promoted %s after %s", r.New, b.AutoPromoteAfter)}
		}
	case Promoted:
		if r.PromotedAt.IsZero() {
			r.PromotedAt = r.AppliedAt
		}
		if now.Sub(r.PromotedAt) >= b.RollbackWindow {
			r.Phase, r.Override = Completed, nil
			return r, []Event{event(r, now, "completed", "rollback window of %s over; %s stays", b.RollbackWindow, r.New)}
		}
	}
	return r, nil
}

// advanceRolling adds StepWeight every Interval until the new version
// takes all traffic.
func advanceRolling(rs *RollingSpec, r Rollout, now time.Time) (Rollout, []Event) {
	if r.Phase == Promoted || r.Weight >= Full {
		r.Phase, r.Override = Completed, nil
		return r, []Event{event(r, now, "completed", "%s takes all traffic", r.New)}
	}
	if now.Sub(r.AppliedAt) < rs.Interval {
		return r, nil
	}
	r.enterStep(r.Step+1, min(Full, r.Weight+rs.StepWeight), now)
	return r, []Event{event(r, now, "step", "entered %s", describe(r))}
}

// Errors of the operations; callers branch on them (the admin API maps them
// to status codes).
var (
	ErrNotInProgress = errors.New("no rollout in progress")
	ErrNotPaused     = errors.New("rollout is not paused")
	ErrNoRollback    = errors.New("rollback is only possible within a blue-green rollback window")
	ErrBadWeights    = errors.New("invalid weights")
	ErrOtherVersion  = errors.New("the rollout moves traffic to another version")
	ErrNotAborted    = errors.New("only an aborted or rolled back rollout can be retried")
)

// ExpectingVersion returns op, refused unless the rollout it is given
// moves traffic to version: what an operator saw may have been replaced
// by a policy change since, and an operation meant for one rollout must
// not act on another. An empty version expects nothing.
func ExpectingVersion(version string, op Operation) Operation {
	if version == "" {
		return op
	}
	return func(p Policy, r Rollout, now time.Time) (Rollout, Event, error) {
		if r.New != version {
			return r, Event{}, fmt.Errorf("%w: %s's %s rollout is %s → %s, not to %s (a policy change may have replaced the one you looked at): nothing was done",
				ErrOtherVersion, r.Service, r.Strategy, r.Old, r.New, version)
		}
		return op(p, r, now)
	}
}

// Promote gives the new version all traffic.
func Promote(r Rollout, now time.Time, by, reason string) (Rollout, Event, error) {
	if r.Done() || r.promoted() {
		return r, Event{}, fmt.Errorf("promote %s: %w (it is %s)", r.Service, ErrNotInProgress, r.state())
	}
	r = promote(r, now)
	return r, operatorEvent(r, now, "promoted", by, reason, "%s takes all traffic", r.New), nil
}

func promote(r Rollout, now time.Time) Rollout {
	r.enterStep(r.Step, Full, now)
	r.Phase, r.Cause, r.Reason, r.PausedFrom, r.PromotedAt = Promoted, "", "", "", time.Time{}
	return r
}

// PauseRollout holds the rollout's weights until resumed. A rollout paused
// for health or stale discovery, which would resume by itself, may be
// paused by an operator.
func PauseRollout(r Rollout, now time.Time, by, reason string) (Rollout, Event, error) {
	if r.Done() || r.Phase == Paused && !r.Cause.lifts() {
		return r, Event{}, fmt.Errorf("pause %s: %w (it is %s)", r.Service, ErrNotInProgress, r.state())
	}
	r.pause(PausedByOperator, fmt.Sprintf("paused by %s: %s", by, reason))
	return r, operatorEvent(r, now, "paused", by, reason, "paused at %s", describe(r)), nil
}

// Resume continues a paused rollout in the phase it was paused from; at an
// indefinite pause step it moves past the step, after a missed deadline it
// restarts the step's clock.
func Resume(p Policy, r Rollout, now time.Time, by, reason string) (Rollout, Event, error) {
	if r.Phase != Paused {
		return r, Event{}, fmt.Errorf("resume %s: %w (it is %s)", r.Service, ErrNotPaused, r.state())
	}
	cause := r.Cause
	r.resume()
	switch {
	case cause == PausedAtStep && p.Strategy == Canary && indefiniteAt(p.Canary.Steps, r.Step):
		next := r.Step + 1
		r.enterStep(next, canaryWeightAt(p.Canary.Steps, next, r.Weight), now)
	case cause == PausedByDeadline:
		r.StepSince = now
	}
	return r, operatorEvent(r, now, "resumed", by, reason, "resumed at %s", describe(r)), nil
}

// Abort returns all traffic to the old version in one push.
func Abort(r Rollout, now time.Time, by, reason string) (Rollout, Event, error) {
	if r.Done() {
		return r, Event{}, fmt.Errorf("abort %s: %w (it is %s)", r.Service, ErrNotInProgress, r.state())
	}
	r = abort(r, fmt.Sprintf("aborted by %s: %s", by, reason))
	return r, operatorEvent(r, now, "aborted", by, reason, "all traffic back on %s", r.Old), nil
}

func abort(r Rollout, reason string) Rollout {
	r.Weight, r.Override, r.Phase, r.Cause, r.Reason, r.PausedFrom = 0, nil, Aborted, "", reason, ""
	return r
}

// Rollback returns a promoted blue-green rollout's traffic to the old
// active version, in one push, within the rollback window, paused or not.
func Rollback(p Policy, r Rollout, now time.Time, by, reason string) (Rollout, Event, error) {
	inWindow := r.Strategy == BlueGreen && r.promoted() &&
		(r.PromotedAt.IsZero() || now.Sub(r.PromotedAt) < p.BlueGreen.RollbackWindow)
	if !inWindow {
		return r, Event{}, fmt.Errorf("rollback %s: %w (it is a %s rollout, %s)", r.Service, ErrNoRollback, r.Strategy, r.state())
	}
	r = abort(r, fmt.Sprintf("rolled back by %s: %s", by, reason))
	return r, operatorEvent(r, now, "rolled-back", by, reason, "all traffic back on %s", r.Old), nil
}

// Retry starts an aborted (or rolled back) rollout over from its first
// step, under the policy it follows: the new version warms again before it
// gets weight, as in any rollout. A policy naming the same versions again
// would be the same rollout, which stays aborted; this is how an operator
// tries it again once what made it abort is fixed.
func Retry(p Policy, r Rollout, now time.Time, by, reason string) (Rollout, Event, error) {
	if r.Phase != Aborted {
		return r, Event{}, fmt.Errorf("retry %s: %w (it is %s)", r.Service, ErrNotAborted, r.state())
	}
	r = Start(p, now)
	return r, operatorEvent(r, now, "retried", by, reason, "%s rollout %s → %s started over at %s", r.Strategy, r.Old, r.New, describe(r)), nil
}

// SetWeights overrides the step's weights until the next step, promote,
// abort or policy change. The weights must sum to 100 % and name only the
// rollout's two versions; one they leave out gets 0 %.
func SetWeights(r Rollout, w Weights, now time.Time, by, reason string) (Rollout, Event, error) {
	if r.Done() || r.promoted() {
		return r, Event{}, fmt.Errorf("set weights of %s: %w (it is %s)", r.Service, ErrNotInProgress, r.state())
	}
	if w.Sum() != Full {
		return r, Event{}, fmt.Errorf("%w: weights sum to %s, must be 100", ErrBadWeights, w.Sum())
	}
	for v := range w {
		if v != r.Old && v != r.New {
			return r, Event{}, fmt.Errorf("%w: version %q is not part of the rollout (%s → %s)", ErrBadWeights, v, r.Old, r.New)
		}
	}
	// Both versions are named, the one left out at 0 %: the rollout's
	// versions take the share of one that stops serving (see Effective).
	w = maps.Clone(w)
	for _, v := range []string{r.Old, r.New} {
		if _, ok := w[v]; !ok {
			w[v] = 0
		}
	}
	// The step's clocks keep running: an override does not restart a pause.
	r.Override = &Override{Weights: w, By: by, Reason: reason, At: now}
	return r, operatorEvent(r, now, "weights-set", by, reason, "weights overridden: %s", w), nil
}

func operatorEvent(r Rollout, now time.Time, kind, by, reason, format string, args ...any) Event {
	e := event(r, now, kind, format, args...)
	e.By = by
	if reason != "" {
		e.Message += " — " + reason
	}
	return e
}

// indefiniteAt reports whether step i is a pause: {} (an edit may have
// put a rollout paused at one in another step).
func indefiniteAt(steps []Step, i int) bool {
	return i < len(steps) && steps[i].Pause != nil && steps[i].Pause.Indefinite
}
