package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-mesh/weir/discovery"
)

// EngineConfig configures an Engine.
type EngineConfig struct {
	// Store persists rollouts and the journal; nil keeps them in memory.
	Store *Store
	// Clock is the time source (default time.Now); tests inject one.
	Clock func() time.Time
	// OnChange is called, without locks held, whenever the routing the
	// engine asks for changes.
	OnChange func()
	// Discovery, unless nil, tells how discovery's view of each service
	// relates to its upstream: while a service's is stale, its rollout
	// pauses (see Observation).
	Discovery discovery.ServiceStatusReporter
	Logger    *slog.Logger
}

// Engine runs every service's rollout: it applies policy sets (with the
// documented rules for edits mid-rollout), advances rollouts on the
// evidence it is given — what the fleet applied, NACKs, serving instances —
// and the clock, executes operator operations, and persists state and
// journal. Its routing feeds snapshot building.
type Engine struct {
	cfg EngineConfig

	mu       sync.Mutex
	policies Set
	rollouts map[string]Rollout // services with a canary, blueGreen or rolling policy
	frozen   map[string]Routing // services whose policy file was deleted mid-rollout
	// parked are the rollouts of frozen services, kept (and saved with
	// the others) so that the same policy coming back continues its
	// rollout rather than starting it over.
	parked   map[string]Rollout
	applied  Table           // the routing the fleet has applied
	model    discovery.Model // the last observed: serving instances per version
	observed bool            // whether a model was observed: before, serving is unknown, not none
	// started is when the first model was observed: no step's progress
	// deadline counts the time before, when weir (restarted, say) could
	// see no proxy apply anything.
	started time.Time
	// nack is the last NACK not yet evaluated. Nack sets it without
	// taking mu, which a tick holds while it saves, and wakes Run.
	nack    atomic.Pointer[Nack]
	wake    chan struct{}
	journal []Event // recent events, newest last
	unsaved unsaved // what the engine's own decisions changed that is not saved yet
	// overrides are set-weights operations on services with a fixed
	// policy; each lasts until that policy changes.
	overrides map[string]FixedOverride
	seq       uint64 // events committed since start: the last one's sequence number
	// routing is what Routing last returned. Whatever changes a service's
	// routing (policies, rollouts, frozen or overrides) names it to
	// invalidate, and the next call of Routing makes a table that follows
	// routing (see Table.Next) and names those services. Returning the
	// very same table while no routing changed, and one that says which
	// services' did when some did, tells a snapshot builder so without
	// comparing every service's routing.
	routing Table
	dirty   map[string]bool // the services whose routing may have changed since routing was made

	waitingMu sync.Mutex   // guards waiting; never take mu while holding it
	waiting   []*waitingOp // operators' operations waiting for mu (see operate)

	restored bool // see Restored; set by NewEngine only
}

// FixedOverride is a set-weights operation in force on a service with a
// fixed policy. Policy identifies the policy it overrides: when that
// changes (or goes), the override ends.
type FixedOverride struct {
	Override
	Policy string
}

// ErrNoPolicy rejects an operation on a service without a policy of the
// kind it needs.
var ErrNoPolicy = errors.New("no such policy")

const journalMemory = 500

// NewEngine returns an Engine, loading stored state if there is a store.
func NewEngine(cfg EngineConfig) (*Engine, error) {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	e := &Engine{cfg: cfg, rollouts: map[string]Rollout{}, frozen: map[string]Routing{},
		parked: map[string]Rollout{}, overrides: map[string]FixedOverride{}, wake: make(chan struct{}, 1)}
	if cfg.Store != nil {
		var err error
		if e.rollouts, e.frozen, e.overrides, err = cfg.Store.Load(); err != nil {
			return nil, err
		}
		for svc := range e.frozen { // a frozen service's stored rollout is parked
			if r, ok := e.rollouts[svc]; ok {
				e.parked[svc] = r
				delete(e.rollouts, svc)
			}
		}
		if e.journal, err = cfg.Store.Events(journalMemory); err != nil {
			return nil, err
		}
		e.seq = uint64(len(e.journal))
		for _, r := range e.rollouts {
			cfg.Logger.Info("rollout restored", "service", r.Service, "phase", r.Phase, "step", r.Step, "weights", r.Weights().String())
			e.restored = e.restored || !r.Done()
		}
	}
	return e, nil
}

// Restored reports whether the engine started with a rollout in progress
// from its store: weir was restarted mid-rollout, and the proxies it
// served are yet to reconnect.
func (e *Engine) Restored() bool { return e.restored }

// SetPolicies applies a new policy set. A rollout whose policy is read
// again unchanged continues where it is; edited steps continue from the
// current weight; a different version pair or strategy starts over; a
// deleted policy freezes the service's current weights, and the same
// policy coming back continues the rollout.
func (e *Engine) SetPolicies(set Set) {
	e.mu.Lock()
	st := e.next(set, e.cfg.Clock())
	before := routingOf(e.policies, e.rollouts, e.frozen, e.overrides)
	e.rollouts, e.frozen, e.parked, e.overrides, e.policies = st.rollouts, st.frozen, st.parked, st.overrides, set
	e.invalidate(changedServices(before, routingOf(set, st.rollouts, st.frozen, st.overrides))...)
	e.commitOwn(st.events, st.gone)
	e.mu.Unlock()
	e.changed()
}

// engineState is what SetPolicies would make of the engine's state.
type engineState struct {
	rollouts  map[string]Rollout
	frozen    map[string]Routing
	parked    map[string]Rollout
	overrides map[string]FixedOverride
	events    []Event
	gone      []string
}

// next returns the state after applying set at now, leaving the engine's
// own untouched. mu must be held.
func (e *Engine) next(set Set, now time.Time) engineState {
	st := engineState{rollouts: maps.Clone(e.rollouts), frozen: maps.Clone(e.frozen), parked: maps.Clone(e.parked),
		overrides: maps.Clone(e.overrides)}
	for svc, r := range st.rollouts {
		p, ok := set.Get(svc)
		if !ok || !p.Strategy.rolls() {
			if !ok {
				st.frozen[svc], st.parked[svc] = Routing{Weights: r.Weights()}, r
				st.events = append(st.events, event(r, now, "frozen", "policy removed; weights frozen at %s", r.Weights()))
			}
			delete(st.rollouts, svc)
			st.gone = append(st.gone, svc)
		}
	}
	for _, svc := range set.Services() {
		p, _ := set.Get(svc)
		parked, wasParked := st.parked[svc]
		if _, ok := st.frozen[svc]; ok {
			delete(st.frozen, svc)
			delete(st.parked, svc)
			st.gone = append(st.gone, svc)
		}
		if !p.Strategy.rolls() {
			continue
		}
		r, ok := st.rollouts[svc]
		if wasParked {
			r, ok = parked, true
			if !r.Done() { // nothing was observed while parked: the step starts over
				r.StepSince, r.AppliedAt = now, time.Time{}
			}
		}
		next, ev := reconcile(p, r, ok, now)
		if wasParked && (len(ev) == 0 || ev[0].Kind == "edited") {
			st.events = append(st.events, event(next, now, "unfrozen", "policy back; the rollout continues from %s", describe(next)))
		}
		st.rollouts[svc] = next
		st.events = append(st.events, ev...)
	}
	st.events = append(st.events, dropOverrides(st.overrides, set, now)...)
	return st
}

// rolls reports whether the strategy runs a rollout.
func (s Strategy) rolls() bool { return s == Canary || s == BlueGreen || s == Rolling }

// Routing returns, per service with a policy or frozen weights, what its
// traffic should do now. It returns the very same table until some
// service's routing changes, and then one that follows it and names the
// services whose routing changed (see Table.ChangedSince).
func (e *Engine) Routing() Table {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.dirty) == 0 && !e.routing.history.IsZero() {
		return e.routing
	}
	if e.routing.history.IsZero() {
		e.routing = TableOf(routingOf(e.policies, e.rollouts, e.frozen, e.overrides))
	} else {
		e.routing = e.routing.Next(slices.Sorted(maps.Keys(e.dirty)), e.routingFor)
	}
	clear(e.dirty)
	return e.routing
}

// routingFor returns service's routing now, and whether it has one. mu
// must be held.
func (e *Engine) routingFor(service string) (Routing, bool) {
	return routingFor(service, e.policies, e.rollouts, e.frozen, e.overrides)
}

// invalidate records that the routing of services may have changed. mu
// must be held.
func (e *Engine) invalidate(services ...string) {
	if e.dirty == nil {
		e.dirty = make(map[string]bool)
	}
	for _, svc := range services {
		e.dirty[svc] = true
	}
}

// changedServices returns, sorted, the services whose routing differs
// between before and after, or that only one of them routes.
func changedServices(before, after map[string]Routing) []string {
	var changed []string
	for svc, r := range after {
		if b, ok := before[svc]; !ok || !reflect.DeepEqual(b, r) {
			changed = append(changed, svc)
		}
	}
	for svc := range before {
		if _, ok := after[svc]; !ok {
			changed = append(changed, svc)
		}
	}
	slices.Sort(changed)
	return changed
}

// routingOf returns the routing of every service with a policy or frozen
// weights (see routingFor).
func routingOf(set Set, rollouts map[string]Rollout, frozen map[string]Routing, overrides map[string]FixedOverride) map[string]Routing {
	out := make(map[string]Routing, len(frozen)+set.Len())
	maps.Copy(out, frozen)
	for svc := range set.policies {
		out[svc], _ = routingFor(svc, set, rollouts, frozen, overrides)
	}
	return out
}

// routingFor returns service's routing, and whether it has one: that of
// its policy's rollout, override or weights, or else its frozen weights.
// The policies' and overrides' weights are shared, not copied: neither
// changes once set (NewSet and Get copy a policy's), and a snapshot
// builder tells an unchanged policy by its very Weights map.
func routingFor(service string, set Set, rollouts map[string]Rollout, frozen map[string]Routing, overrides map[string]FixedOverride) (Routing, bool) {
	p, ok := set.policies[service]
	if !ok {
		r, ok := frozen[service]
		return r, ok
	}
	if r, ok := rollouts[service]; ok {
		return r.Routing(p), true
	}
	if o, ok := overrides[service]; ok {
		return Routing{Weights: o.Weights}, true
	}
	return Routing{Weights: p.Weights}, true
}

// ObserveModel records how many instances of each version serve: m, which
// is counted only for the services the engine asks about (see servingOf),
// so that a change of one service costs nothing per service here.
func (e *Engine) ObserveModel(m discovery.Model) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.observed {
		e.started = e.cfg.Clock()
	}
	e.model, e.observed = m, true
}

// servingOf returns the serving instances per version of service in the
// last model observed; nil if it has none. e.mu must be held.
func (e *Engine) servingOf(service string) map[string]int {
	svc, ok := e.model.Service(service)
	if !ok {
		return nil
	}
	return svc.ServingCount()
}

// appliedTo returns the routing the fleet has applied to service: the
// zero Routing if none. mu must be held.
func (e *Engine) appliedTo(service string) Routing {
	r, _ := e.applied.Get(service)
	return r
}

// Applied records the routing that the fleet has applied: that of the
// snapshot every proxy is now in sync with.
func (e *Engine) Applied(routing Table) {
	e.mu.Lock()
	e.applied = routing
	e.mu.Unlock()
	e.Tick()
}

// IsApplied reports whether the fleet has applied the routing service's
// rollout asks for now.
func (e *Engine) IsApplied(service string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.rollouts[service]
	if !ok {
		return false
	}
	p, _ := e.policies.Get(service)
	return reflect.DeepEqual(e.appliedTo(service), r.Routing(p))
}

// RoutingApplied reports whether the fleet has applied the routing service
// asks for now, whatever its policy.
func (e *Engine) RoutingApplied(service string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	want, ok := e.routingFor(service)
	return ok && reflect.DeepEqual(e.appliedTo(service), want)
}

// Nack records a proxy's rejection, and returns at once: it runs on the
// rejecting proxy's stream, and the rollouts in progress pause (or abort)
// when Run next ticks, which it wakes. Of NACKs that come before that
// tick, the last is the one the journal names.
func (e *Engine) Nack(proxy, err string) {
	e.nack.Store(&Nack{Proxy: proxy, Error: err})
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Tick advances every rollout to the engine's clock. Until a model is
// observed it does nothing: a restarted weir knows its rollouts before
// discovery's first sync, and without a model no version would seem to
// serve.
func (e *Engine) Tick() {
	e.mu.Lock()
	if !e.observed {
		e.mu.Unlock()
		return
	}
	now := e.cfg.Clock()
	var events []Event
	var changed []Rollout
	routingChanged := false
	nack := e.nack.Swap(nil)
	for svc, r := range e.rollouts {
		p, _ := e.policies.Get(svc)
		obs := Observation{Now: now, Since: e.started, Serving: e.servingOf(svc), DiscoveryStale: e.discoveryStale(svc), Nack: nack,
			Applied: reflect.DeepEqual(e.appliedTo(svc), r.Routing(p))}
		next, ev := Advance(p, r, obs)
		if !reflect.DeepEqual(next, r) {
			e.rollouts[svc] = next
			changed = append(changed, next)
			if !reflect.DeepEqual(next.Routing(p), r.Routing(p)) {
				e.invalidate(svc)
				routingChanged = true
			}
		}
		events = append(events, ev...)
	}
	if len(changed) > 0 || len(events) > 0 || e.unsaved.failing {
		e.commitOwn(events, nil)
	}
	e.mu.Unlock()
	if routingChanged {
		e.changed()
	}
}

// discoveryStale says since when and why discovery's upstream fails for
// service, or is "" while it answers (or nothing reports on it).
func (e *Engine) discoveryStale(service string) string {
	if e.cfg.Discovery == nil {
		return ""
	}
	st := e.cfg.Discovery.ServiceStatus(service)
	if !st.Stale {
		return ""
	}
	return fmt.Sprintf("since %s: %s", st.StaleSince.UTC().Format(time.TimeOnly), st.Error)
}

// Run ticks the engine every interval, and after every NACK, until ctx
// is done. Once it is, Run ticks no more, though a tick or a NACK is due:
// a stopping weir moves no rollout (and saves none moved), since it would
// publish the step to no proxy, and restarted it would restore a step
// that no proxy held.
func (e *Engine) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-e.wake:
		}
		if ctx.Err() != nil { // select picks at random among the ready cases
			return nil
		}
		e.Tick()
	}
}

func (e *Engine) changed() {
	if e.cfg.OnChange != nil {
		e.cfg.OnChange()
	}
}
