package xds

import (
	"context"
	"time"
)

// When the publisher builds, and when it looks at the fleet.

// Tracker changes are gathered for a window before the publisher looks at
// the fleet. A push to thousands of proxies brings thousands of ACKs, and a
// look costs about half a microsecond per proxy: a look per ACK would take
// the CPU the push needs. The window is at least minChangeWindow and four
// times as long as the last look took, so that looks take at most a fifth
// of a core whatever the fleet's size, and at most maxChangeWindow, which
// bounds how late a rollout learns that its step was applied. A change
// that arrives after a look has begun signals again, so the last change is
// always looked at.
const (
	minChangeWindow = 20 * time.Millisecond
	maxChangeWindow = 250 * time.Millisecond
)

// changeWindow returns how long to gather tracker changes after a look at
// the fleet that took took.
func changeWindow(took time.Duration) time.Duration {
	return min(max(minChangeWindow, 4*took), maxChangeWindow)
}

// maxGather bounds, in Debounces, how long a build waits for changes to
// stop: a steady stream of changes is still pushed every 4 × Debounce.
const maxGather = 4

// quietGap is the fraction of Debounce without a change that ends a burst.
const quietGap = 4

// debounce returns when a build may start, and when the last change it
// saw came; previous is when the change before the one that woke the
// publisher came. A change Debounce or more after the last build is built
// at once. Otherwise it waits until Debounce after the last build: a
// change that starts a burst (one Debounce/quietGap or more after the
// change before it) waits no longer, with whatever came meanwhile; a change
// that goes on a burst waits on while changes come less than
// Debounce/quietGap apart, at most maxGather × Debounce in all. So builds
// are at least Debounce apart, a burst's first change is built within
// Debounce, and the rest of the burst together after it, however long it
// lasts (a slower stream of changes is built about every Debounce). It
// reports false if ctx was done first.
func (p *Publisher) debounce(ctx context.Context, lastBuild, previous time.Time) (lastChange time.Time, ok bool) {
	lastChange = time.Now()
	wait := p.cfg.Debounce - lastChange.Sub(lastBuild)
	if wait <= 0 {
		return lastChange, ctx.Err() == nil
	}
	gap := p.cfg.Debounce / quietGap
	goesOn := lastChange.Sub(previous) < gap
	ready := time.NewTimer(wait)
	defer ready.Stop()
	longest := time.NewTimer(maxGather * p.cfg.Debounce)
	defer longest.Stop()
	for {
		select {
		case <-ctx.Done():
			return lastChange, false
		case <-p.kick:
			lastChange = time.Now()
		case <-ready.C:
			if quiet := time.Since(lastChange); goesOn && quiet < gap {
				ready.Reset(gap - quiet)
				continue
			}
			return lastChange, true
		case <-longest.C:
			return lastChange, true
		}
	}
}
