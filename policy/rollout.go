package policy

import (
	"cmp"
	"fmt"
	"time"
)

// Phase is where a rollout stands.
type Phase string

// The phases of a rollout.
const (
	Progressing Phase = "progressing" // moving through its steps
	Paused      Phase = "paused"      // holding its weights; Reason says why
	Promoted    Phase = "promoted"    // the new version takes all traffic (blue-green: within the rollback window)
	Aborted     Phase = "aborted"     // all traffic back on the old version
	Completed   Phase = "completed"   // the new version took all traffic and the rollout is over
)

// PauseCause says who paused a rollout; health and discovery pauses lift
// by themselves.
type PauseCause string

// The causes of a pause.
const (
	PausedByOperator  PauseCause = "operator"
	PausedByHealth    PauseCause = "health"
	PausedByDiscovery PauseCause = "discovery" // discovery's upstream fails: which instances serve is not known
	PausedByNack      PauseCause = "nack"
	PausedByDeadline  PauseCause = "deadline"
	PausedAtStep      PauseCause = "step" // an indefinite pause step, waiting for promote or resume
)

// lifts reports whether a pause of cause c lifts by itself, once what
// caused it is over.
func (c PauseCause) lifts() bool { return c == PausedByHealth || c == PausedByDiscovery }

// Rollout is the durable state of one service's rollout. It is a value:
// Advance and the operations return a new one.
type Rollout struct {
	Service  string
	Strategy Strategy
	// Spec identifies the policy text the rollout follows, to tell an
	// edited policy from the same one read again after a restart.
	Spec string
	// Old and New are the versions traffic moves between: stable and
	// canary, active and preview, from and to.
	Old, New string
	Phase    Phase
	Cause    PauseCause // when Paused
	Reason   string     // why it is paused or aborted, for operators
	// PausedFrom is, when Paused, the phase a resume returns to: Promoted
	// for a rollout paused after its promotion, else "" (Progressing). A
	// pause holds a promotion; it does not undo it.
	PausedFrom Phase

	Step int // canary: index into the steps (len = the final step); rolling: increments made
	// Weight is the new version's share at the current step.
	Weight Weight
	// Override replaces the step's weights until the next step, promote,
	// abort or policy change.
	Override *Override

	StepSince  time.Time // when the current step was entered
	AppliedAt  time.Time // when the fleet applied it; zero until then
	PromotedAt time.Time // blue-green: when the promotion was applied
}

// Override is a set-weights operation in force.
type Override struct {
	Weights Weights
	By      string
	Reason  string
	At      time.Time
}

// Observation is what a rollout learns at one evaluation.
type Observation struct {
	Now time.Time
	// Since is when observing began (the engine's first model): a step's
	// progress deadline counts from then at the latest, not over time
	// weir was not running. Zero counts from the step's start.
	Since time.Time
	// Applied reports whether the fleet has applied the routing the
	// rollout currently asks for.
	Applied bool
	// Serving counts the instances per version that take new requests.
	Serving map[string]int
	// DiscoveryStale, unless empty, says since when and why discovery's
	// upstream fails: Serving is then the last known count, not the
	// current one, and the rollout holds.
	DiscoveryStale string
	// Nack is a proxy's rejection of config carrying this rollout, if any.
	Nack *Nack
}

// Nack is a proxy's rejection of pushed config.
type Nack struct {
	Proxy string
	Error string
}

// Event is one entry of the rollout journal: who did what, when and why.
type Event struct {
	At      time.Time
	Service string
	Kind    string // step-applied, paused, resumed, nack, promoted, aborted, completed, ...
	By      string // "weir" for the engine's own decisions, else the operator
	Message string
}

// Start returns a new rollout for p at now.
func Start(p Policy, now time.Time) Rollout {
	r := Rollout{Service: p.Service, Strategy: p.Strategy, Spec: p.specHash(), Phase: Progressing, StepSince: now}
	switch p.Strategy {
	case Canary:
		r.Old, r.New = p.Canary.Stable, p.Canary.Version
		r.Weight = canaryWeightAt(p.Canary.Steps, 0, 0)
	case BlueGreen:
		r.Old, r.New = p.BlueGreen.Active, p.BlueGreen.Preview
	case Rolling:
		r.Old, r.New = p.Rolling.From, p.Rolling.To
		r.Weight = min(p.Rolling.StepWeight, Full)
		r.Step = 1
	}
	return r
}

// Done reports whether the rollout has ended and only holds its final
// weights.
func (r Rollout) Done() bool { return r.Phase == Completed || r.Phase == Aborted }

// promoted reports whether the new version was promoted to all traffic,
// whether or not the rollout is paused since.
func (r Rollout) promoted() bool {
	return r.Phase == Promoted || r.Phase == Paused && r.PausedFrom == Promoted
}

// state describes the rollout's phase for operators' error messages.
func (r Rollout) state() string {
	if r.Phase == Paused && r.PausedFrom == Promoted {
		return "paused after its promotion"
	}
	return string(r.Phase)
}

// Weights returns the split the rollout asks for.
func (r Rollout) Weights() Weights {
	if r.Override != nil {
		return r.Override.Weights
	}
	w := Weights{r.Old: Full - r.Weight, r.New: r.Weight}
	return w
}

// Routing returns what the rollout asks of the service's traffic under p.
func (r Rollout) Routing(p Policy) Routing {
	rt := Routing{Weights: r.Weights()}
	if r.Done() {
		return rt
	}
	switch p.Strategy {
	case Canary:
		if len(p.Canary.Match) > 0 {
			rt.Matches = []MatchRoute{{Conditions: p.Canary.Match, Version: r.New}}
		}
		rt.Sticky = p.Canary.Sticky
	case BlueGreen:
		if !r.promoted() {
			rt.Matches = []MatchRoute{{Conditions: p.BlueGreen.PreviewMatch, Version: r.New}}
		}
	}
	return rt
}

// canaryWeightAt returns the canary's weight at step i, entered from a
// step at current: a setWeight's own, Full past the last step, and current
// at a pause, which holds the weight (after an edit of the steps, the last
// setWeight before it may be below current).
func canaryWeightAt(steps []Step, i int, current Weight) Weight {
	switch {
	case i >= len(steps):
		return Full
	case steps[i].SetWeight != nil:
		return *steps[i].SetWeight
	default:
		return current
	}
}

func (r *Rollout) enterStep(step int, weight Weight, now time.Time) {
	r.Step, r.Weight, r.Override = step, weight, nil
	r.StepSince, r.AppliedAt = now, time.Time{}
}

// pause pauses r, or gives a paused r a new cause, remembering the phase
// to resume to; the reason says so of a promotion, for operators.
func (r *Rollout) pause(cause PauseCause, reason string) {
	if r.Phase != Paused {
		r.PausedFrom = ""
		if r.Phase == Promoted {
			r.PausedFrom = Promoted
		}
	}
	if r.PausedFrom == Promoted {
		reason += " (after its promotion, which a resume keeps)"
	}
	r.Phase, r.Cause, r.Reason = Paused, cause, reason
}

// resume returns a paused r to the phase it was paused from.
func (r *Rollout) resume() {
	r.Phase, r.Cause, r.Reason, r.PausedFrom = cmp.Or(r.PausedFrom, Progressing), "", "", ""
}

func event(r Rollout, now time.Time, kind, format string, args ...any) Event {
	return Event{At: now, Service: r.Service, Kind: kind, By: "weir", Message: fmt.Sprintf(format, args...)}
}
