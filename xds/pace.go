package xds

import (
	"context"
	"sync"
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

// burstGap is how long without a change ends a burst: changes closer
// together than this make one.
func (p *Publisher) burstGap() time.Duration { return p.cfg.Debounce / quietGap }

// changeTimes records when inputs changed, for debounce.
type changeTimes struct {
	mu   sync.Mutex
	last time.Time // when the last change came
	// pending tells a change came since the last build; goesOn, that the
	// first of them came less than a gap after the change before it.
	pending, goesOn bool
}

// changed records a change at now: if it is the first since the last
// build, whether it came less than gap after the change before it.
func (c *changeTimes) changed(now time.Time, gap time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.pending {
		c.pending, c.goesOn = true, now.Sub(c.last) < gap
	}
	c.last = now
}

// building records that a build is reading the inputs: changes from now
// on are the next build's.
func (c *changeTimes) building() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = false
}

// times returns when the last change came, and whether the first change
// since the last build went on a burst.
func (c *changeTimes) times() (last time.Time, goesOn bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last, c.pending && c.goesOn
}

// debounce returns when a build may start. A change Debounce or more after
// the last build is built at once. Otherwise it waits until Debounce after
// the last build: a change that starts a burst (one Debounce/quietGap or
// more after the change before it) waits no longer, with whatever came
// meanwhile; a change that goes on a burst waits on, from then, while
// changes come less than Debounce/quietGap apart, at most maxGather ×
// Debounce in all. A burst goes on through a build: changes that came
// while the last build ran are judged by when they came, not by when the
// publisher looked. So builds are at least Debounce apart, and a burst
// that begins after a quiet spell has its first change built within
// Debounce and the rest together after it, however long it lasts (a
// slower stream of changes is built about every Debounce). A pause in a
// burst before Debounce has passed does not end it: what comes after the
// pause is gathered with it. It reports false if ctx was done first.
func (p *Publisher) debounce(ctx context.Context, lastBuild time.Time) bool {
	wait := p.cfg.Debounce - time.Since(lastBuild)
	if wait <= 0 {
		return ctx.Err() == nil
	}
	gap := p.burstGap()
	ready := time.NewTimer(wait)
	defer ready.Stop()
	longest := time.NewTimer(maxGather * p.cfg.Debounce)
	defer longest.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-p.kick: // this build takes the change; changeTimes has its time
		case <-ready.C:
			// Judged now, not on entry: the kick that woke the publisher
			// may be of a change the last build already took.
			last, goesOn := p.changes.times()
			if quiet := time.Since(last); goesOn && quiet < gap {
				ready.Reset(gap - quiet)
				continue
			}
			return true
		case <-longest.C:
			return true
		}
	}
}
