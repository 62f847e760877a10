package policy

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"time"
)

// This file holds operators' operations and how the engine makes its
// state durable: every change is saved, with the events it journals,
// before anyone sees it, and operations that wait while a save is under
// way are saved together, in one transaction, rather than one fsync each.

// Operation is an operator action on one service's rollout. It must not
// panic: it may run on another caller's goroutine (see operate).
type Operation func(p Policy, r Rollout, now time.Time) (Rollout, Event, error)

// Do runs op on service's rollout, journals and persists it.
func (e *Engine) Do(service string, op Operation) error {
	return e.operate(func() (Event, func(), error) {
		r, ok := e.rollouts[service]
		if !ok {
			if err := e.frozenError(service); err != nil {
				return Event{}, nil, err
			}
			return Event{}, nil, fmt.Errorf("%w: service %q has no canary, blueGreen or rolling policy", ErrNotInProgress, service)
		}
		p, _ := e.policies.Get(service)
		next, ev, err := op(p, r, e.cfg.Clock())
		if err != nil {
			return Event{}, nil, err
		}
		e.rollouts[service] = next
		if !reflect.DeepEqual(next.Routing(p), r.Routing(p)) {
			e.invalidate(service)
		}
		return ev, func() { e.rollouts[service] = r }, nil
	})
}

// waitingOp is an operator's operation waiting to be applied and saved.
type waitingOp struct {
	// apply changes the engine's state (mu held) and returns the event to
	// journal and how to undo the change; or why it cannot be made, in
	// which case it changes nothing.
	apply func() (Event, func(), error)
	done  chan error // its outcome: nil once saved
}

// operate applies and saves an operator's operation, with those that
// wait alongside it, and calls OnChange once it is saved. Whichever
// caller takes the engine's lock first applies every waiting operation in
// the order they came, saves them all at once, and undoes them all if
// that fails: so a burst of operations costs a save per burst rather than
// per operation, and nobody sees an operation that was not saved, as
// nobody can while the lock is held.
func (e *Engine) operate(apply func() (Event, func(), error)) error {
	op := &waitingOp{apply: apply, done: make(chan error, 1)}
	e.waitingMu.Lock()
	e.waiting = append(e.waiting, op)
	e.waitingMu.Unlock()
	e.mu.Lock()
	e.applyWaiting() // ours, unless an earlier caller took it along
	e.mu.Unlock()
	if err := <-op.done; err != nil {
		return err
	}
	e.changed()
	return nil
}

// applyWaiting applies every waiting operation, commits them, and tells
// each its outcome. One refused before any is applied is told at once.
// If the save fails, every applied operation is undone, last first, and
// fails with it; so does every one refused after the first was applied,
// as it was refused on state that was never saved. mu must be held.
func (e *Engine) applyWaiting() {
	e.waitingMu.Lock()
	ops := e.waiting
	e.waiting = nil
	e.waitingMu.Unlock()
	var events []Event
	var undo []func()
	var held []*waitingOp // the first operation applied and those after it,
	var outcomes []error  // and theirs should the save succeed
	for _, op := range ops {
		ev, u, err := op.apply()
		if err != nil && len(undo) == 0 {
			op.done <- err // refused on the state everyone sees
			continue
		}
		if err == nil {
			events, undo = append(events, ev), append(undo, u)
		}
		held, outcomes = append(held, op), append(outcomes, err)
	}
	if len(held) == 0 {
		return
	}
	err := e.commit(events, nil)
	if err != nil {
		for _, u := range slices.Backward(undo) {
			u()
		}
	}
	for i, op := range held {
		op.done <- cmp.Or(err, outcomes[i])
	}
}

// commit persists state and events, with what the engine's own decisions
// left unsaved, then journals and logs the events. mu must be held.
func (e *Engine) commit(events []Event, gone []string) error {
	if err := e.save(events, gone); err != nil {
		return err
	}
	e.journalize(events)
	return nil
}

// commitOwn commits the engine's own decisions (a tick's, a policy set's),
// which stand in memory whether or not they are saved: what the files and
// the fleet say is so. If the save fails, the events are journaled all the
// same and kept, with the services gone, for the next save, which Tick
// retries: the last journalMemory events, as the journal in memory keeps.
// mu must be held.
func (e *Engine) commitOwn(events []Event, gone []string) {
	if e.save(events, gone) != nil {
		e.unsaved.events = append(e.unsaved.events, events...)
		if over := len(e.unsaved.events) - journalMemory; over > 0 {
			e.unsaved.events = slices.Delete(e.unsaved.events, 0, over)
			e.unsaved.dropped += over
		}
		for _, svc := range gone {
			if !slices.Contains(e.unsaved.gone, svc) {
				e.unsaved.gone = append(e.unsaved.gone, svc)
			}
		}
	}
	e.journalize(events)
}

// unsaved is what the engine's own decisions changed that no save has
// made durable yet, besides the state itself, which every save writes.
type unsaved struct {
	events  []Event
	dropped int // events let go of, beyond journalMemory
	gone    []string
	failing bool // whether the last save failed
}

// save persists the engine's state, events and the services gone, with
// what is unsaved. Its first failure in a row is logged; so is the save
// that ends them. mu must be held.
func (e *Engine) save(events []Event, gone []string) error {
	if e.cfg.Store == nil {
		return nil
	}
	// A parked rollout is saved as a rollout; its service's frozen entry
	// tells them apart when loaded (see NewEngine).
	rollouts := slices.AppendSeq(slices.Collect(maps.Values(e.rollouts)), maps.Values(e.parked))
	err := e.cfg.Store.Save(rollouts, e.frozen, e.overrides, slices.Concat(e.unsaved.gone, gone), slices.Concat(e.unsaved.events, events))
	switch {
	case err != nil && !e.unsaved.failing:
		e.cfg.Logger.Error("saving rollout state failed; saves are retried at every tick", "error", err)
	case err == nil && e.unsaved.failing:
		e.cfg.Logger.Info("rollout state saved again", "eventsSavedLate", len(e.unsaved.events), "eventsNeverSaved", e.unsaved.dropped)
	}
	if err != nil {
		e.unsaved.failing = true
		return fmt.Errorf("%w: %v", ErrNotSaved, err)
	}
	e.unsaved = unsaved{}
	return nil
}

// journalize logs events and adds them to the in-memory journal. mu must
// be held.
func (e *Engine) journalize(events []Event) {
	for _, ev := range events {
		e.cfg.Logger.Info("rollout event", "service", ev.Service, "kind", ev.Kind, "by", ev.By, "message", ev.Message)
	}
	e.journal = append(e.journal, events...)
	e.seq += uint64(len(events))
	if over := len(e.journal) - journalMemory; over > 0 {
		e.journal = slices.Delete(e.journal, 0, over)
	}
}

// ErrNotSaved reports that an operation could not be made durable, or was
// refused on the state of one that could not (see applyWaiting); it was
// not applied.
var ErrNotSaved = errors.New("rollout state could not be saved")
