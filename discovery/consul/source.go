// Package consul is weir's production discovery source. It watches Consul's
// catalog with blocking queries — the service list, and the health of every
// service — and turns the live, health-checked catalog into discovery
// Models. It is the only package of weir itself that imports
// github.com/hashicorp/consul/api (internal/consultest, which starts real
// agents for tests, is the other).
//
// It fails static: when Consul is unreachable or answers errors, the last
// known instances stay in the model (nothing is removed, nothing empty is
// published) and the source reports itself stale until Consul answers again.
// No model is emitted before the first full sync.
package consul

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-mesh/weir/discovery"
)

// Config configures a Source.
type Config struct {
	// Client talks to Consul (see NewClient); its datacenter is the one watched.
	Client *api.Client
	// VersionMetaKey is the service meta key holding an instance's version
	// (default "version"); VersionTagPrefix is the tag prefix used when the
	// meta key is absent (default "version=").
	VersionMetaKey   string
	VersionTagPrefix string
	// ExcludeWarning removes instances whose checks warn, instead of serving
	// them.
	ExcludeWarning bool
	// WaitTime is how long a blocking query may wait (default 5m).
	WaitTime time.Duration
	// MinInterval is the least time between two queries on one resource,
	// which rate-limits a resource that changes constantly (default 50ms).
	MinInterval time.Duration
	// RetryBase and RetryMax bound the jittered exponential backoff after
	// errors (defaults 200ms and 15s).
	RetryBase, RetryMax time.Duration
	Logger              *slog.Logger
	// Registerer receives the source's metrics; nil means none.
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() {
	if c.VersionMetaKey == "" {
		c.VersionMetaKey = defaultVersionMetaKey
	}
	if c.VersionTagPrefix == "" {
		c.VersionTagPrefix = defaultVersionTagPrefix
	}
	if c.WaitTime <= 0 {
		c.WaitTime = 5 * time.Minute
	}
	if c.MinInterval <= 0 {
		c.MinInterval = 50 * time.Millisecond
	}
	if c.RetryBase <= 0 {
		c.RetryBase = 200 * time.Millisecond
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 15 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Source watches Consul. Create it with New; Run starts it.
type Source struct {
	cfg     Config
	block   blocking
	rule    versionRule
	metrics *metrics
	changed chan struct{}

	mu          sync.Mutex
	listSynced  bool
	fullySynced bool // the first full sync is done: a model has been built
	services    map[string]*serviceState
	badNames    map[string]string  // services left out: name → why
	failing     map[string]failure // watcher → its failure
	limited     map[string]bool    // watchers refused with 429, explained once
	staleSince  time.Time
}

// failure is a failing watcher's latest error, and since when it fails.
type failure struct {
	err   string
	since time.Time
}

// serviceState is what one service's watcher has learned.
type serviceState struct {
	cancel      context.CancelFunc
	synced      bool
	instances   []discovery.Instance
	unversioned map[string]bool    // instance IDs grouped under version ""
	skipped     map[string]skipped // instances left out of the model
	// refreshing is, after its watcher failed and answered again, what
	// the failure was until the instances of that answer reach the sink:
	// until then the sink still has those from before the failure.
	refreshing *refresh
}

// refresh is a service's way back from a failure: the failure, and
// whether the instances of the answer that ended it are stored.
type refresh struct {
	failure
	stored bool
}

var (
	_ discovery.Source                = (*Source)(nil)
	_ discovery.StatusReporter        = (*Source)(nil)
	_ discovery.ServiceStatusReporter = (*Source)(nil) // the rollout engine's, found by a type assertion
)

// New returns a Source for cfg.
func New(cfg Config) *Source {
	cfg.setDefaults()
	s := &Source{
		cfg:      cfg,
		block:    blocking{wait: cfg.WaitTime, minInterval: cfg.MinInterval, retryBase: cfg.RetryBase, retryMax: cfg.RetryMax},
		rule:     versionRule{metaKey: cfg.VersionMetaKey, tagPrefix: cfg.VersionTagPrefix},
		changed:  make(chan struct{}, 1),
		services: make(map[string]*serviceState),
		badNames: make(map[string]string),
		failing:  make(map[string]failure),
		limited:  make(map[string]bool),
	}
	s.metrics = newMetrics(cfg.Registerer, s)
	return s
}

// Run watches Consul until ctx is done, delivering a Model to sink after the
// first full sync and after every change.
func (s *Source) Run(ctx context.Context, sink discovery.Sink) error {
	s.cfg.Logger.Info("watching Consul", "versionMetaKey", s.cfg.VersionMetaKey, "versionTagPrefix", s.cfg.VersionTagPrefix)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.watchServiceList(ctx, &wg)
	}()
	s.emit(ctx, sink)
	cancel()
	wg.Wait()
	return nil
}

// emit delivers a model whenever the watchers signal a change, once every
// known service has synced. Changes that arrive while a model is being
// built are folded into the next one.
func (s *Source) emit(ctx context.Context, sink discovery.Sink) {
	var last discovery.Model
	emitted := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.changed:
		}
		refreshed := s.refreshed()
		m, ok, err := s.model()
		if err != nil {
			sink.Reject(err)
			continue
		}
		if !ok {
			continue
		}
		if m = last.Next(m); emitted && m.Equal(last) {
			s.delivered(refreshed)
			continue
		}
		if !emitted {
			s.cfg.Logger.Info("first full sync from Consul complete", "services", len(m.Services()))
		}
		last, emitted = m, true
		sink.Update(m)
		s.delivered(refreshed)
	}
}

// model returns the current model, and false until the first full sync:
// until then every known service must have synced. Afterwards a service
// that appeared but has not synced yet is left out until it does, so that
// one watcher that cannot get an answer (Consul refusing connections, say)
// does not freeze updates for every other service.
func (s *Source) model() (discovery.Model, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.listSynced {
		return discovery.Model{}, false, nil
	}
	services := make([]discovery.Service, 0, len(s.services))
	for name, st := range s.services {
		if !st.synced {
			if !s.fullySynced {
				return discovery.Model{}, false, nil
			}
			continue
		}
		services = append(services, discovery.Service{Name: name, Instances: st.instances})
	}
	m, err := discovery.NewModel(services)
	if err != nil {
		return discovery.Model{}, false, fmt.Errorf("consul: %w", err)
	}
	s.fullySynced = true
	return m, true, nil
}

func (s *Source) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// Status implements discovery.StatusReporter.
func (s *Source) Status() discovery.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := discovery.Status{Synced: s.fullySynced, Stale: len(s.failing) > 0, StaleSince: s.staleSince}
	for _, name := range sortedKeys(s.failing) {
		st.Error = name + ": " + s.failing[name].err
		break
	}
	return st
}

// ServiceStatus implements discovery.ServiceStatusReporter: service's
// instances are stale while its own watcher fails. The service list's
// watcher failing leaves them current: each service has a watcher of its
// own, which goes on answering.
func (s *Source) ServiceStatus(service string) discovery.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := discovery.Status{Synced: s.fullySynced}
	if f, ok := s.failing[service]; ok {
		st.Stale, st.StaleSince, st.Error = true, f.since, service+": "+f.err
	} else if svc, ok := s.services[service]; ok && svc.refreshing != nil {
		f := svc.refreshing.failure
		st.Stale, st.StaleSince, st.Error = true, f.since, service+": "+f.err+" (answering again; its instances are on their way)"
	}
	return st
}

// refreshed returns the refreshes, by service, whose instances, stored
// after their watcher answered again, the next model carries. It must be
// called before that model is made: a service stored meanwhile is not
// among them, nor is a refresh begun meanwhile (its watcher failed and
// answered again), which replaces the one returned.
func (s *Source) refreshed() map[string]*refresh {
	s.mu.Lock()
	defer s.mu.Unlock()
	var taken map[string]*refresh
	for name, st := range s.services {
		if st.refreshing != nil && st.refreshing.stored {
			if taken == nil {
				taken = make(map[string]*refresh)
			}
			taken[name] = st.refreshing
		}
	}
	return taken
}

// delivered ends the refreshes taken (see refreshed): the sink has their
// instances now, or had them already when the model was the same. A
// service whose refresh is another one now stays stale.
func (s *Source) delivered(taken map[string]*refresh) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, r := range taken {
		if st, ok := s.services[name]; ok && st.refreshing == r {
			st.refreshing = nil
		}
	}
}

// failed records a watcher's error; the first failure starts staleness.
// A watcher stopped meanwhile (its service left the catalog) is ignored:
// nothing would ever clear its error again.
func (s *Source) failed(ctx context.Context, watcher string, err error) {
	s.metrics.errors.Inc()
	s.mu.Lock()
	if !s.watching(ctx, watcher) {
		s.mu.Unlock()
		return
	}
	if len(s.failing) == 0 {
		s.staleSince = time.Now()
	}
	f, already := s.failing[watcher]
	if !already {
		f.since = time.Now()
	}
	f.err = err.Error()
	s.failing[watcher] = f
	synced := s.fullySynced
	explain := tooManyRequests(err) && !s.limited[watcher]
	if explain {
		s.limited[watcher] = true
	}
	services := len(s.services)
	s.mu.Unlock()
	if !already {
		if synced {
			s.cfg.Logger.Warn("Consul query failing; serving the last known catalog", "watch", watcher, "error", err)
		} else {
			s.cfg.Logger.Warn("Consul unreachable; waiting for the first sync before publishing anything", "watch", watcher, "error", err)
		}
	}
	if explain {
		s.cfg.Logger.Warn("Consul refused a connection (429 Too Many Requests): its limits.http_max_conns_per_client (default 200) "+
			"is lower than what weir needs, since weir holds one connection per watched service plus one for the service list; "+
			"raise that limit on the Consul agent weir talks to", "watch", watcher, "services", services)
	}
}

// tooManyRequests reports whether err is Consul refusing a connection over
// its per-client connection limit.
func tooManyRequests(err error) bool {
	var se api.StatusError
	return errors.As(err, &se) && se.Code == http.StatusTooManyRequests
}

// watching reports whether watcher is still running: its ctx is live and,
// for a service watcher, its service is known. mu must be held.
func (s *Source) watching(ctx context.Context, watcher string) bool {
	if ctx.Err() != nil {
		return false
	}
	_, ok := s.services[watcher]
	return ok || watcher == serviceListWatcher
}

// recovered clears a watcher's error; the last one clears staleness.
func (s *Source) recovered(ctx context.Context, watcher string) {
	s.mu.Lock()
	if !s.watching(ctx, watcher) {
		s.mu.Unlock()
		return
	}
	f, was := s.failing[watcher]
	if st, ok := s.services[watcher]; ok && was {
		st.refreshing = &refresh{failure: f}
	}
	delete(s.failing, watcher)
	delete(s.limited, watcher)
	ended := was && len(s.failing) == 0
	since := s.staleSince
	if ended {
		s.staleSince = time.Time{}
	}
	s.mu.Unlock()
	if ended {
		s.cfg.Logger.Info("Consul answering again; resyncing", "staleFor", time.Since(since).Round(time.Millisecond))
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
