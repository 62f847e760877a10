package policy

import (
	"errors"
	"fmt"
	"maps"
	"slices"
)

// This file holds how the engine makes its state durable: every change is
// saved, with the events it journals, before anyone sees it, and
// operators' operations that wait while a save is under way are saved
// together, in one transaction, rather than one fsync each.

// waitingOp is an operator's operation waiting to be applied and saved.
type waitingOp struct {
	// apply changes the engine's state (mu held) and returns the event to
	// journal and how to undo the change; or why it cannot be made.
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
// each its outcome. An operation that cannot be made fails alone; if the
// save fails, every applied one is undone, last first, and fails with it.
// mu must be held.
func (e *Engine) applyWaiting() {
	e.waitingMu.Lock()
	ops := e.waiting
	e.waiting = nil
	e.waitingMu.Unlock()
	var applied []*waitingOp
	var events []Event
	var undo []func()
	for _, op := range ops {
		ev, u, err := op.apply()
		if err != nil {
			op.done <- err
			continue
		}
		applied, events, undo = append(applied, op), append(events, ev), append(undo, u)
	}
	if len(applied) == 0 {
		return
	}
	err := e.commit(events, nil)
	if err != nil {
		for _, u := range slices.Backward(undo) {
			u()
		}
	}
	for _, op := range applied {
		op.done <- err
	}
}

// commit persists state and events, then journals and logs the events.
// mu must be held.
func (e *Engine) commit(events []Event, gone []string) error {
	if e.cfg.Store != nil {
		err := e.cfg.Store.Save(slices.Collect(maps.Values(e.rollouts)), e.frozen, e.overrides, gone, events)
		if err != nil {
			e.cfg.Logger.Error("saving rollout state failed", "error", err)
			return fmt.Errorf("%w: %v", ErrNotSaved, err)
		}
	}
	for _, ev := range events {
		e.cfg.Logger.Info("rollout event", "service", ev.Service, "kind", ev.Kind, "by", ev.By, "message", ev.Message)
	}
	e.journal = append(e.journal, events...)
	e.seq += uint64(len(events))
	if over := len(e.journal) - journalMemory; over > 0 {
		e.journal = slices.Delete(e.journal, 0, over)
	}
	return nil
}

// ErrNotSaved reports that an operation could not be made durable; it was
// not applied.
var ErrNotSaved = errors.New("rollout state could not be saved")
