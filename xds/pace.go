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

// debounce returns when a build may start: at once after a quiet spell
// (Debounce since the last build ended). Otherwise it waits until Debounce
// after the last build, and on while changes still come less than
// Debounce/quietGap apart, at most maxGather × Debounce in all. So builds
// are at least Debounce apart; the first change after a quiet spell is
// built at once and the rest of its burst together while its changes come
// closer than that, however long it lasts (a slower stream of changes is
// built about every Debounce); and a lone change soon after a build waits
// for the rest of Debounce only. It reports false if ctx was done first.
func (p *Publisher) debounce(ctx context.Context, lastBuild time.Time) bool {
	wait := p.cfg.Debounce - time.Since(lastBuild)
	if wait <= 0 {
		return ctx.Err() == nil
	}
	gap := p.cfg.Debounce / quietGap
	ready := time.NewTimer(wait)
	defer ready.Stop()
	longest := time.NewTimer(maxGather * p.cfg.Debounce)
	defer longest.Stop()
	lastChange := lastBuild // only changes that come while it waits extend the wait
	for {
		select {
		case <-ctx.Done():
			return false
		case <-p.kick:
			lastChange = time.Now()
		case <-ready.C:
			if quiet := time.Since(lastChange); quiet < gap {
				ready.Reset(gap - quiet)
				continue
			}
			return true
		case <-longest.C:
			return true
		}
	}
}
