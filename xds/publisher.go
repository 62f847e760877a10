package xds

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/policy"
	"github.com/weir-mesh/weir/snapshot"
)

// Input sources named in rejections, metrics and /readyz.
const (
	SourceDiscovery = "discovery"
	SourcePolicies  = "policies"
)

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	Cache   *Cache
	Metrics *Metrics
	Logger  *slog.Logger
	// Debounce is the least time between builds. A change that comes
	// Debounce or more after the last build is built at once; one that
	// comes sooner waits until Debounce after it, and, if it goes on a
	// burst (it came less than a quarter of Debounce after the change
	// before it), on while changes still come that close (at most
	// maxGather × Debounce). So the first change of a burst after a quiet
	// spell is pushed within Debounce, and the rest of it becomes one more
	// push (see debounce). Default 50 ms.
	Debounce time.Duration
	// Tracker tells which proxies have applied what; with it, clusters that
	// traffic moves off are removed only after the fleet applied the new
	// routes, or after AckTimeout (default 10 s). A weir restarted
	// mid-rollout waits as long for its fleet to reconnect (see applies).
	Tracker    *Tracker
	AckTimeout time.Duration
	// Engine runs the rollouts: it turns policies into routing and learns
	// what the fleet applied. Default: an in-memory engine.
	Engine *policy.Engine
	// AppliedThreshold is the fraction of connected proxies that must hold
	// a snapshot before its routing counts as applied (default 1).
	AppliedThreshold float64
	SidecarAddress   string
	SidecarPort      uint32
}

// Status is what the publisher is serving, for /readyz and logs.
type Status struct {
	Ready       bool // a snapshot is being served
	Version     string
	PublishedAt time.Time
	Waiting     []string          // inputs the first snapshot still waits for
	Rejected    map[string]string // source → why its latest input was rejected
	Warnings    []string          // from the current snapshot's report
	BuildError  string            // the last build failure, if the last build failed
	// AwaitingRoutes lists the proxies whose ACK of new routes is awaited
	// before clusters that traffic moved off are removed.
	AwaitingRoutes []string
	// AwaitingReconnect is, while a weir restarted mid-rollout waits for a
	// proxy to reconnect before it counts a step applied, when it stops
	// waiting; zero otherwise.
	AwaitingReconnect time.Time
}

// Publisher turns discovery models and policy sets into snapshots in the
// cache. It publishes nothing until both inputs have arrived once, and it
// never replaces a good snapshot with a failed build: the last good config
// keeps serving.
type Publisher struct {
	cfg     PublisherConfig
	kick    chan struct{}
	changes changeTimes
	// afterBuild, if set, runs after each build: tests stand in for a
	// build and fan-out that take time with it.
	afterBuild func()

	mu         sync.Mutex
	model      *discovery.Model
	policies   *policy.Set
	rejected   map[string]string
	status     Status
	lastReport []string
	current    *snapshot.Snapshot // being served; only publish writes it
	builder    snapshot.Builder   // remembers services; only publish uses it
	// unconfirmed are the snapshots served since every proxy last held
	// what was served: bridges keep the clusters they route to.
	unconfirmed unconfirmed
	// bridgeSince is when the bridge being served was first served; zero
	// while a target is served.
	bridgeSince time.Time
	// target is the routing the current snapshot was built for, when it
	// is not a bridge; nil while a bridge is served.
	target *policy.Table
	// synced of total connected proxies held what they should at the
	// last look at the fleet (see AppliedFraction).
	synced, total int
	// reconnecting is set while a weir restarted mid-rollout waits for
	// its fleet to reconnect (see applies): until a look at the fleet
	// finds a proxy connected, or reconnectBy passes.
	reconnecting bool
	// reconnectBy is AckTimeout after Run started: the wait ends then
	// even if no proxy reconnected. Zero before Run.
	reconnectBy time.Time
}

// NewPublisher returns a Publisher; Run starts it.
func NewPublisher(cfg PublisherConfig) *Publisher {
	if cfg.Debounce <= 0 {
		cfg.Debounce = 50 * time.Millisecond
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 10 * time.Second
	}
	if cfg.AppliedThreshold <= 0 || cfg.AppliedThreshold > 1 {
		cfg.AppliedThreshold = 1
	}
	if cfg.Engine == nil {
		cfg.Engine, _ = policy.NewEngine(policy.EngineConfig{Logger: cfg.Logger}) // cannot fail without a store
	}
	// Without a tracker no look at the fleet gates anything: there is no
	// fleet to wait for.
	reconnecting := cfg.Engine.Restored() && cfg.Tracker != nil
	return &Publisher{cfg: cfg, kick: make(chan struct{}, 1), rejected: make(map[string]string), reconnecting: reconnecting}
}

// ErrEmptyWorld rejects a model without services: publishing it would
// remove every listener and cluster from every proxy at once.
var ErrEmptyWorld = errors.New("discovery reports no services at all; refusing to publish an empty world")

// Update implements discovery.Sink.
func (p *Publisher) Update(m discovery.Model) {
	if len(m.Services()) == 0 {
		p.reject(SourceDiscovery, ErrEmptyWorld)
		return
	}
	p.cfg.Engine.ObserveModel(m)
	p.mu.Lock()
	p.model = &m
	p.accept(SourceDiscovery)
	p.mu.Unlock()
	p.wake()
}

// Reject implements discovery.Sink.
func (p *Publisher) Reject(err error) { p.reject(SourceDiscovery, err) }

// SetPolicies takes the result of a policy directory load: a new set, or
// the error that rejected the directory's latest contents.
func (p *Publisher) SetPolicies(set policy.Set, err error) {
	if err != nil {
		p.reject(SourcePolicies, err)
		return
	}
	p.cfg.Engine.SetPolicies(set)
	p.mu.Lock()
	p.policies = &set
	p.accept(SourcePolicies)
	p.mu.Unlock()
	p.wake()
}

// accept clears a source's rejection. mu must be held.
func (p *Publisher) accept(source string) {
	if _, ok := p.rejected[source]; ok {
		p.cfg.Logger.Info("input accepted again", "source", source)
	}
	delete(p.rejected, source)
	p.cfg.Metrics.RejectedSources.WithLabelValues(source).Set(0)
}

// reject records a source's rejection. Its metrics change under mu, as
// accept's do: whoever sees the rejection in status sees it counted, and a
// later acceptance's gauge of 0 is never overwritten by this 1.
func (p *Publisher) reject(source string, err error) {
	p.mu.Lock()
	p.cfg.Metrics.Rejections.WithLabelValues(source).Inc()
	p.cfg.Metrics.RejectedSources.WithLabelValues(source).Set(1)
	p.rejected[source] = err.Error()
	serving := p.status.Ready
	p.mu.Unlock()
	if !serving { // before the first publish there is no last good config
		p.cfg.Logger.Error("input rejected; nothing is published until it is fixed", "source", source, "error", err)
		return
	}
	p.cfg.Logger.Error("input rejected; the last good config keeps serving", "source", source, "error", err)
}

// Wake schedules a build, as an input change does.
func (p *Publisher) Wake() { p.wake() }

func (p *Publisher) wake() {
	p.changes.changed(time.Now(), p.burstGap())
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Status returns what is being served and why anything is held back.
func (p *Publisher) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.status
	s.Rejected = maps.Clone(p.rejected)
	s.Waiting = p.waiting()
	if p.reconnecting {
		s.AwaitingReconnect = p.reconnectBy
	}
	return s
}

// waiting lists the inputs that have not arrived yet. mu must be held.
func (p *Publisher) waiting() []string {
	var w []string
	if p.model == nil {
		w = append(w, SourceDiscovery)
	}
	if p.policies == nil {
		w = append(w, SourcePolicies)
	}
	return w
}

// Run builds and publishes snapshots until ctx is done. ctx is meant to be
// that of the xDS server (see NewGRPCServer), whose streams end with it:
// once it is done, no look at the fleet tells the engine anything (see
// stopping).
func (p *Publisher) Run(ctx context.Context) error {
	var changes <-chan struct{}
	if p.cfg.Tracker != nil {
		changes = p.cfg.Tracker.Changed()
	}
	var gathered <-chan time.Time // nil: no tracker change waits for a look
	window := minChangeWindow
	var lastBuild time.Time
	p.startReconnectWait(time.Now())
	for {
		var deadline <-chan time.Time // nil: no bridge waiting
		if d := p.bridgeDeadline(); !d.IsZero() {
			deadline = time.After(time.Until(d)) // collected once unreferenced (Go ≥ 1.23)
		}
		var reconnectEnd <-chan time.Time // nil: no wait for the fleet to reconnect
		if d := p.reconnectDeadline(); !d.IsZero() {
			reconnectEnd = time.After(time.Until(d))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changes:
			if gathered == nil {
				gathered = time.After(window)
			}
			continue
		case <-gathered:
			gathered = nil
			start := time.Now()
			p.checkApplied(ctx)
			window = changeWindow(time.Since(start))
			continue
		case <-deadline:
			p.checkApplied(ctx)
			continue
		case <-reconnectEnd:
			p.checkApplied(ctx)
			continue
		case <-p.kick:
		}
		if !p.debounce(ctx, lastBuild) {
			return nil
		}
		p.changes.building()
		built := p.publish(ctx)
		if p.afterBuild != nil {
			p.afterBuild()
		}
		if built {
			lastBuild = time.Now()
		}
	}
}

// publish builds a snapshot from the latest inputs and serves it if it is
// valid and new. When the change moves traffic off clusters that it also
// removes or empties, it first serves a bridge (see snapshot.Bridge), waits
// until the fleet has applied the bridge's routes, and then schedules the
// next publish, which serves the target built from the inputs of that time.
// It reports whether it built: not while the first snapshot waits for an
// input. Once ctx is done, what it serves tells the engine nothing (see
// checkApplied).
func (p *Publisher) publish(ctx context.Context) bool {
	in, routing, ok := p.input()
	if !ok {
		return false
	}
	target, err := p.builder.Build(in)
	step := target
	if err == nil && p.current != nil {
		step, err = snapshot.BridgeFrom(p.current, target, p.unconfirmedClusters(), p.earlierHeld())
	}
	if err != nil {
		p.failed(err)
		return true
	}
	if p.current != nil && step.Version == p.current.Version {
		if step == target {
			// Same resources, perhaps for a new routing (a pause step), or
			// a bridge's, whose inputs went back to what it serves: what
			// the fleet holds carries it, and nothing is bridged.
			p.mu.Lock()
			p.target, p.bridgeSince = routing, time.Time{}
			p.mu.Unlock()
			p.checkApplied(ctx)
		} else if p.bridgeFromServed() {
			// A bridge identical to what is served (it withholds all the
			// change gave, as when it gives all traffic to a cluster the
			// fleet has not set up): waiting for the fleet as a bridge
			// does is what moves it on to its target.
			p.checkApplied(ctx)
		}
		p.record(step, false)
		return true
	}
	// Counted before any proxy can see it: whoever saw the snapshot sees it counted.
	if err := p.cfg.Cache.SetSnapshot(step, p.cfg.Metrics.Publishes.Inc); err != nil {
		p.failed(err)
		return true
	}
	p.mu.Lock()
	p.current, p.target = step, nil
	if step == target {
		p.target = routing
	}
	p.unconfirmed.served(step)
	bridging := step != target
	if bridging && p.bridgeSince.IsZero() {
		p.bridgeSince = time.Now()
	} else if !bridging {
		p.bridgeSince = time.Time{}
	}
	p.mu.Unlock()
	p.record(step, true)
	if bridging {
		p.cfg.Logger.Info("serving a bridge: clusters traffic moves off or onto stay until proxies apply the new routes",
			"bridge", step.Version)
	}
	p.checkApplied(ctx)
	return true
}

// input returns the inputs of the next build, and false while the first
// snapshot still waits for one of them.
func (p *Publisher) input() (snapshot.Input, *policy.Table, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.waiting()) > 0 {
		return snapshot.Input{}, nil, false
	}
	routing := p.cfg.Engine.Routing()
	return snapshot.Input{
		Model:          *p.model,
		Routing:        routing,
		SidecarAddress: p.cfg.SidecarAddress,
		SidecarPort:    p.cfg.SidecarPort,
	}, &routing, true
}

// failed records a build or publish failure; the last good snapshot stays.
func (p *Publisher) failed(err error) {
	p.cfg.Metrics.BuildErrors.Inc()
	p.cfg.Logger.Error("snapshot build failed; the last good snapshot keeps serving", "error", err)
	p.mu.Lock()
	p.status.BuildError = err.Error()
	p.mu.Unlock()
}

// record updates status and logs after a successful build.
func (p *Publisher) record(snap *snapshot.Snapshot, published bool) {
	warnings := snap.Report.Warnings()
	p.mu.Lock()
	p.status.BuildError = ""
	p.status.Warnings = warnings
	if published {
		p.status.Ready, p.status.Version, p.status.PublishedAt = true, snap.Version, time.Now()
	}
	changed := !slices.Equal(warnings, p.lastReport)
	p.lastReport = warnings
	p.mu.Unlock()

	if published {
		p.cfg.Logger.Info("snapshot published", "version", snap.Version,
			"services", snap.APIListeners.Len(), "clusters", snap.Clusters.Len())
	}
	if changed {
		for _, w := range warnings {
			p.cfg.Logger.Warn("routing around a problem", "detail", w)
		}
	}
	p.cfg.Metrics.UnservedVersions.Reset()
	for _, u := range snap.Report.Unserved {
		p.cfg.Metrics.UnservedVersions.WithLabelValues(u.Service, u.Version).Set(1)
	}
}

// ServingTarget reports whether the snapshot being served is the one built
// from the latest inputs, not a bridge on the way to it.
func (p *Publisher) ServingTarget() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.target != nil
}

// Current returns the snapshot being served, nil before the first.
func (p *Publisher) Current() *snapshot.Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.current
}

// SnapshotAge returns the seconds since the current snapshot was published.
func (p *Publisher) SnapshotAge() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.status.PublishedAt.IsZero() {
		return 0
	}
	return time.Since(p.status.PublishedAt).Seconds()
}

// Model returns the discovery model of the latest accepted update, and
// false before the first.
func (p *Publisher) Model() (discovery.Model, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.model == nil {
		return discovery.Model{}, false
	}
	return *p.model, true
}
