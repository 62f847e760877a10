package xds

import (
	"context"
	"slices"
	"time"

	"github.com/weir-mesh/weir/snapshot"
)

// What the fleet holds: releasing the clusters bridges keep, moving a
// bridge on to its target, and telling the rollout engine what was applied.

// checkApplied runs whenever what proxies hold may have changed. Once no
// proxy lacks the clusters, endpoints or routes being served (or, while a
// bridge is served, AckTimeout has passed), the clusters earlier snapshots
// routed to are released, and a bridge moves on to its target. The engine
// learns which routing the fleet holds once enough connected proxies are in
// sync with a target snapshot (see applies). Once ctx is done, a look
// counts for nothing (see stopping).
func (p *Publisher) checkApplied(ctx context.Context) {
	p.mu.Lock()
	target, current, bridgeSince := p.target, p.current, p.bridgeSince
	p.mu.Unlock()
	// Only a bridge needs the pending proxies named: to wait for them in
	// status, and to warn about them when it stops waiting.
	bridging := !bridgeSince.IsZero()
	fleet := p.lookAtFleet(bridging)
	if stopping(ctx) {
		return
	}
	reconnecting := p.lookedAt(fleet, time.Now())
	if current == nil {
		return // connected proxies count, and none holds anything yet
	}
	timedOut := bridging && time.Since(bridgeSince) >= p.cfg.AckTimeout
	if timedOut && fleet.pending > 0 {
		p.cfg.Logger.Warn("proxies have not applied the new routes; moving on without them",
			"waited", p.cfg.AckTimeout, "pending", fleet.nodes)
	}
	p.mu.Lock()
	if fleet.pending == 0 || timedOut {
		p.unconfirmed.confirmed(current)
		p.status.AwaitingRoutes = nil
	} else if bridging {
		p.status.AwaitingRoutes = fleet.nodes
	}
	p.mu.Unlock()
	if bridging && (fleet.pending == 0 || timedOut) {
		p.wake() // on to the target
	}
	if target == nil {
		return
	}
	if p.cfg.Tracker != nil {
		p.cfg.Metrics.AppliedFraction.Set(appliedFraction(fleet.synced, fleet.total, reconnecting))
		if !applies(fleet, reconnecting, p.cfg.AppliedThreshold) {
			return
		}
	}
	p.cfg.Engine.Applied(*target)
}

// stopping reports whether ctx, that of the publisher's Run, is done:
// weir is stopping. The xDS streams end with that same ctx, so a look at
// the fleet by the end of which ctx was done may have found proxies gone
// that the stop disconnected, and a fleet without proxies counts as
// having applied everything (see appliedFraction). Counting such a look
// told the engine that the fleet applied a step it never held, and the
// engine saved the step after it before weir stopped. A look that ended
// before ctx was done saw no stream that the stop closed: those close
// only after it.
func stopping(ctx context.Context) bool { return ctx.Err() != nil }

// AppliedFraction is the fraction of the connected proxies that subscribed
// to something which, as the last look at the fleet found them, hold what
// they should: what the publisher gates on and weir_fleet_applied_fraction
// reads (see appliedFraction). The publisher looks after every publish and
// after every change window (at most maxChangeWindow) in which proxies
// connected, left, ACKed or NACKed, so the count is at most that old; a
// caller pays nothing for it, while a look at 10,000 proxies costs
// milliseconds and holds up their ACKs.
func (p *Publisher) AppliedFraction() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return appliedFraction(p.synced, p.total, p.reconnecting)
}

// unconfirmedClusters returns a function that returns, sorted, the
// clusters that snapshots not yet applied by every proxy route to: those
// of the snapshots unconfirmed holds now. Finding them walks every route
// of those snapshots, which a bridge needs only when a change removes or
// empties a cluster.
func (p *Publisher) unconfirmedClusters() func() []string {
	p.mu.Lock()
	u := p.unconfirmed
	p.mu.Unlock()
	return u.routed
}

// earlierHeld returns nil when the last look at the fleet found every
// proxy holding the snapshot served (or the wait for them timed out, after
// which the proxies still pending are not waited for), else a function
// that looks at the fleet again and returns none if every proxy holds it
// now, or else the snapshots served before it that proxies may hold
// instead, and whether those are all of them (see snapshot.BridgeFrom).
// What proxies hold is judged when the bridge asks, not taken from the
// last look, which may be a change window old: a change published after
// the fleet applied the snapshot served, but before the publisher looked,
// is not bridged for clusters the proxies have set up.
func (p *Publisher) earlierHeld() func() ([]*snapshot.Snapshot, bool) {
	p.mu.Lock()
	held, complete := p.unconfirmed.earlier(p.current)
	p.mu.Unlock()
	if len(held) == 0 && complete {
		return nil
	}
	return func() ([]*snapshot.Snapshot, bool) {
		if p.lookAtFleet(false).pending == 0 {
			return nil, true
		}
		return held, complete
	}
}

// unconfirmed are the snapshots served since every proxy last held what
// was served, oldest first. It holds at most maxUnconfirmed: beyond that
// (proxies that do not keep up), the clusters they route to are kept
// instead.
type unconfirmed struct {
	snapshots []*snapshot.Snapshot
	clusters  []string // sorted: those routed to by snapshots no longer held
	// lost reports that snapshots were let go of before the fleet held
	// what was served: proxies may hold one that snapshots does not.
	lost bool
}

const maxUnconfirmed = 8

// served records that s is served.
func (u *unconfirmed) served(s *snapshot.Snapshot) {
	u.snapshots = append(u.snapshots, s)
	if len(u.snapshots) > maxUnconfirmed {
		u.clusters, u.snapshots, u.lost = u.routed(), nil, true
	}
}

// earlier returns the snapshots other than current that proxies may hold,
// and whether those are all of them.
func (u *unconfirmed) earlier(current *snapshot.Snapshot) ([]*snapshot.Snapshot, bool) {
	var held []*snapshot.Snapshot
	for _, s := range u.snapshots {
		if s != current {
			held = append(held, s)
		}
	}
	return held, !u.lost
}

// confirmed records that every proxy holds current, the snapshot served.
func (u *unconfirmed) confirmed(current *snapshot.Snapshot) {
	*u = unconfirmed{snapshots: []*snapshot.Snapshot{current}}
}

// routed returns, sorted, the clusters that u's snapshots route to.
func (u unconfirmed) routed() []string {
	out := slices.Clone(u.clusters)
	for _, s := range u.snapshots {
		out = append(out, snapshot.RoutedClusters(s.Resources)...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// bridgeDeadline returns when a bridge being served stops waiting for
// proxies, or the zero time when no bridge is served.
func (p *Publisher) bridgeDeadline() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bridgeSince.IsZero() {
		return time.Time{}
	}
	return p.bridgeSince.Add(p.cfg.AckTimeout)
}

// applies reports whether the fleet, as a look at it found it, has applied
// the target it was looked at against: at least threshold of the connected
// proxies hold it (see appliedFraction).
func applies(fleet fleetStatus, reconnecting bool, threshold float64) bool {
	return appliedFraction(fleet.synced, fleet.total, reconnecting) >= threshold
}

// appliedFraction is the fraction of the total connected proxies that hold
// what they should (synced). With none connected it is 1, since proxies
// that connect later get what is served; but 0 while a weir restarted
// mid-rollout waits for its fleet to reconnect (reconnecting). Those
// proxies hold what weir served before the restart: had nobody applied a
// step, the rollout would take the steps after it unseen, and the proxies
// would come back to weights they never went through. The wait ends after
// AckTimeout, though: a fleet that does not come back (scaled away, or a
// cluster without clients) must not hold the rollout for ever.
func appliedFraction(synced, total int, reconnecting bool) float64 {
	switch {
	case total > 0:
		return float64(synced) / float64(total)
	case reconnecting:
		return 0
	}
	return 1
}

// startReconnectWait starts the clock of a restarted weir's wait for its
// fleet to reconnect, if it waits: the wait ends AckTimeout after now at
// the latest.
func (p *Publisher) startReconnectWait(now time.Time) {
	p.mu.Lock()
	waits := p.reconnecting
	if waits {
		p.reconnectBy = now.Add(p.cfg.AckTimeout)
	}
	p.mu.Unlock()
	if waits {
		p.cfg.Logger.Info("waiting up to the ack timeout for the fleet to reconnect before moving the restored rollouts",
			"ack_timeout", p.cfg.AckTimeout)
	}
}

// reconnectDeadline returns when a restarted weir stops waiting for its
// fleet to reconnect, or the zero time when it does not wait (or Run has
// not started the wait's clock).
func (p *Publisher) reconnectDeadline() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.reconnecting {
		return time.Time{}
	}
	return p.reconnectBy
}

// lookedAt records what a look at the fleet found at now, ends the wait
// for the fleet to reconnect once a proxy is connected or the wait's time
// is up (logging which), and reports whether the wait goes on.
func (p *Publisher) lookedAt(fleet fleetStatus, now time.Time) (reconnecting bool) {
	p.mu.Lock()
	p.synced, p.total = fleet.synced, fleet.total
	waited := p.reconnecting
	p.reconnecting = waited && !reconnectWaitEnds(fleet.total, p.reconnectBy, now)
	reconnecting = p.reconnecting
	p.mu.Unlock()
	switch {
	case !waited || reconnecting:
	case fleet.total > 0:
		p.cfg.Logger.Info("a proxy reconnected; the restored rollouts go on as the fleet applies their steps", "proxies", fleet.total)
	default:
		p.cfg.Logger.Warn("no proxy reconnected within the ack timeout; the restored rollouts go on without the fleet",
			"ack_timeout", p.cfg.AckTimeout)
	}
	return reconnecting
}

// reconnectWaitEnds reports whether the wait for the fleet to reconnect
// ends at a look that found total proxies connected at now: when a proxy
// is, or at by (zero: not yet started).
func reconnectWaitEnds(total int, by, now time.Time) bool {
	return total > 0 || !by.IsZero() && !now.Before(by)
}

// lookAtFleet reports what the connected proxies hold; without a tracker,
// nothing is pending and no proxy counts.
func (p *Publisher) lookAtFleet(list bool) fleetStatus {
	if p.cfg.Tracker == nil {
		return fleetStatus{}
	}
	epoch, current, needs := p.cfg.Cache.Versions()
	return p.cfg.Tracker.fleet(current, needs, epoch, list)
}

// bridgeFromServed records that the bridge just built is the snapshot
// already served, which is no target: the publisher waits for the fleet
// as it does for any bridge, and moves on to the target once the fleet
// holds it (or AckTimeout passes). It reports whether that wait starts
// now.
func (p *Publisher) bridgeFromServed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.bridgeSince.IsZero() {
		return false
	}
	p.target, p.bridgeSince = nil, time.Now()
	return true
}
