package xds

import (
	"slices"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weir-mesh/weir/snapshot"
)

// What the fleet holds: releasing the clusters bridges keep, moving a
// bridge on to its target, and telling the rollout engine what was applied.

// checkApplied runs whenever what proxies hold may have changed. Once no
// proxy lacks the clusters, endpoints or routes being served (or, while a
// bridge is served, AckTimeout has passed), the clusters earlier snapshots
// routed to are released, and a bridge moves on to its target. The engine
// learns which routing the fleet holds once enough connected proxies are in
// sync with a target snapshot; with no proxy connected a snapshot counts as
// applied, since proxies that connect later get it.
func (p *Publisher) checkApplied() {
	p.mu.Lock()
	target, current, bridgeSince := p.target, p.current, p.bridgeSince
	p.mu.Unlock()
	if current == nil {
		return
	}
	var pending []string
	if p.cfg.Tracker != nil {
		pending = p.pendingProxies()
	}
	timedOut := !bridgeSince.IsZero() && time.Since(bridgeSince) >= p.cfg.AckTimeout
	if timedOut && len(pending) > 0 {
		p.cfg.Logger.Warn("proxies have not applied the new routes; moving on without them",
			"waited", p.cfg.AckTimeout, "pending", pending)
	}
	p.mu.Lock()
	if len(pending) == 0 || timedOut {
		p.unconfirmed = snapshot.RoutedClusters(current.Resources)
		p.status.AwaitingRoutes = nil
	} else if !bridgeSince.IsZero() {
		p.status.AwaitingRoutes = pending
	}
	p.mu.Unlock()
	if !bridgeSince.IsZero() && (len(pending) == 0 || timedOut) {
		p.wake() // on to the target
	}
	if target == nil {
		return
	}
	if p.cfg.Tracker != nil {
		synced, total := p.cfg.Tracker.InSync(p.cfg.Cache.VersionFor)
		p.cfg.Metrics.AppliedFraction.Set(fraction(synced, total))
		if fraction(synced, total) < p.cfg.AppliedThreshold {
			return
		}
	}
	p.cfg.Engine.Applied(target)
}

// unconfirmedClusters returns the clusters that snapshots not yet applied by
// every proxy route to.
func (p *Publisher) unconfirmedClusters() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.unconfirmed)
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

func fraction(synced, total int) float64 {
	if total == 0 {
		return 1
	}
	return float64(synced) / float64(total)
}

// pendingProxies lists, sorted, the proxies that have not applied the
// clusters, endpoints or routes being served: a gRPC client ACKs routes
// before it has fetched the clusters they name.
func (p *Publisher) pendingProxies() []string {
	var all []string
	for _, typeURL := range []string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.RouteType} {
		all = append(all, p.cfg.Tracker.Pending(typeURL, p.cfg.Cache.VersionFor)...)
	}
	slices.Sort(all)
	return slices.Compact(all)
}

// union returns the sorted union of two sorted lists of names.
func union(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}
