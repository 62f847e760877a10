package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// This file holds the engine's surface for the admin API: overrides of
// fixed policies, and read-only views of what the engine knows.

// fixedHash identifies a fixed policy's split, to tell when the policy
// file an override was made against has changed.
func fixedHash(p Policy) string {
	b, _ := json.Marshal([]any{p.Strategy, p.Weights})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// SetFixedWeights overrides the split of a service with a fixed policy
// until that policy changes. The weights must sum to 100 %; the caller
// checks which versions can serve.
func (e *Engine) SetFixedWeights(service string, w Weights, by, reason string) error {
	if w.Sum() != Full {
		return fmt.Errorf("%w: weights sum to %s, must be 100", ErrBadWeights, w.Sum())
	}
	return e.operate(func() (Event, func(), error) {
		if err := e.frozenError(service); err != nil {
			return Event{}, nil, err
		}
		p, ok := e.policies.Get(service)
		if !ok || p.Strategy != Fixed {
			return Event{}, nil, fmt.Errorf("%w: service %q has no fixed policy", ErrNoPolicy, service)
		}
		now := e.cfg.Clock()
		o := Override{Weights: maps.Clone(w), By: by, Reason: reason, At: now}
		prev, had := e.overrides[service]
		e.overrides[service] = FixedOverride{Override: o, Policy: fixedHash(p)}
		e.invalidate(service)
		undo := func() {
			if had {
				e.overrides[service] = prev
			} else {
				delete(e.overrides, service)
			}
		}
		ev := operatorEvent(Rollout{Service: service}, now, "weights-set", by, reason,
			"weights overridden: %s (the policy file says %s)", w, p.Weights)
		return ev, undo, nil
	})
}

// frozenError refuses an operation on service if its weights are frozen
// (its policy file was deleted mid-rollout), saying so and how to change
// them: no operation applies to frozen weights, which only a policy file
// for the service ends. It returns nil for a service that is not frozen.
// mu must be held.
func (e *Engine) frozenError(service string) error {
	rt, ok := e.frozen[service]
	if !ok {
		return nil
	}
	return fmt.Errorf("%w: %s's policy file was deleted mid-rollout: its weights stay frozen at %s until a policy file for %s appears; write one to change them",
		ErrNotInProgress, service, rt.Weights, service)
}

// dropOverrides ends the overrides of fixed policies that set changes or
// removes, and returns the events to journal.
func dropOverrides(overrides map[string]FixedOverride, set Set, now time.Time) []Event {
	var events []Event
	for _, svc := range slices.Sorted(maps.Keys(overrides)) {
		o := overrides[svc]
		p, ok := set.Get(svc)
		if ok && p.Strategy == Fixed && fixedHash(p) == o.Policy {
			continue
		}
		delete(overrides, svc)
		events = append(events, event(Rollout{Service: svc}, now, "override-cleared",
			"policy file changed; override %s by %s ended", o.Weights, o.By))
	}
	return events
}

// FixedOverride returns the override in force on a service with a fixed
// policy, if any.
func (e *Engine) FixedOverride(service string) (Override, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	o, ok := e.overrides[service]
	o.Weights = maps.Clone(o.Weights)
	return o.Override, ok
}

// Frozen returns the weights of services whose policy file was deleted
// mid-rollout, which keep serving until a policy appears again.
func (e *Engine) Frozen() map[string]Weights {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]Weights, len(e.frozen))
	for svc, rt := range e.frozen {
		out[svc] = maps.Clone(rt.Weights)
	}
	return out
}

// Policies returns the policy set in force.
func (e *Engine) Policies() Set {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.policies
}

// Serving returns the serving instances per version of service, as last
// observed.
func (e *Engine) Serving(service string) map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.servingOf(service)
}

// EventsSince returns the journal entries committed after sequence number
// seq that are still in memory, oldest first, and the sequence number of
// the last entry. EventsSince(0) returns the whole journal in memory.
func (e *Engine) EventsSince(seq uint64) ([]Event, uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := min(e.seq-min(seq, e.seq), uint64(len(e.journal)))
	return slices.Clone(e.journal[uint64(len(e.journal))-n:]), e.seq
}

// Preview returns the routing the engine would ask for now if set
// replaced its policies (a new rollout at its first step), applying
// nothing.
func (e *Engine) Preview(set Set) map[string]Routing {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.next(set, e.cfg.Clock())
	return routingOf(set, st.rollouts, st.frozen, st.overrides)
}

// Rollouts returns every rollout, sorted by service.
func (e *Engine) Rollouts() []Rollout {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := slices.Collect(maps.Values(e.rollouts))
	slices.SortFunc(out, func(a, b Rollout) int { return strings.Compare(a.Service, b.Service) })
	return out
}

// Events returns the most recent journal entries, oldest first.
func (e *Engine) Events() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.journal)
}
