package consul

import (
	"context"
	"slices"
	"sync"

	"github.com/hashicorp/consul/api"

	"github.com/weir-mesh/weir/internal/yamlfile"
)

const serviceListWatcher = "service list"

// watchServiceList follows the catalog's service list, starting a watcher
// for every service that appears and stopping the watcher of every service
// that goes. Service watchers join wg.
func (s *Source) watchServiceList(ctx context.Context, wg *sync.WaitGroup) {
	var names []string
	var bad map[string]string
	fetch := func(q *api.QueryOptions) (*api.QueryMeta, error) {
		s.metrics.requests.WithLabelValues("catalog_services").Inc()
		list, meta, err := s.cfg.Client.Catalog().Services(q)
		if err == nil {
			names, bad = serviceNames(list)
		}
		return meta, err
	}
	s.block.run(ctx, fetch, loopHooks{
		changed: func() { s.setServices(ctx, wg, names, bad) },
		failed:  func(err error) { s.failed(ctx, serviceListWatcher, err) },
		ok:      func() { s.recovered(ctx, serviceListWatcher) },
	})
}

// serviceNames returns the services weir routes to, sorted: every service
// but Consul's own and those whose names are not valid weir service names,
// which it returns in bad with the reason.
func serviceNames(list map[string][]string) (names []string, bad map[string]string) {
	names = make([]string, 0, len(list))
	for name := range list {
		if name == consulServiceName {
			continue
		}
		if err := yamlfile.CheckServiceName(name); err != nil {
			if bad == nil {
				bad = make(map[string]string)
			}
			bad[name] = err.Error()
			continue
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return names, bad
}

// setServices starts and stops service watchers to match names, and
// remembers the services left out for their names (bad), logging each
// once.
func (s *Source) setServices(ctx context.Context, wg *sync.WaitGroup, names []string, bad map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, st := range s.services {
		if !slices.Contains(names, name) {
			st.cancel()
			delete(s.services, name)
			delete(s.failing, name)
			delete(s.limited, name)
			s.cfg.Logger.Info("service left the catalog", "service", name)
		}
	}
	for _, name := range sortedKeys(bad) {
		if _, seen := s.badNames[name]; !seen {
			s.cfg.Logger.Warn("service skipped: its name is not a valid weir service name", "service", name, "error", bad[name])
		}
	}
	s.badNames = bad
	for _, name := range names {
		if _, ok := s.services[name]; ok {
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		s.services[name] = &serviceState{cancel: cancel}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.watchService(wctx, name)
		}()
	}
	s.listSynced = true
	s.signal()
}

// watchService follows the health of one service's instances.
func (s *Source) watchService(ctx context.Context, name string) {
	var entries []*api.ServiceEntry
	fetch := func(q *api.QueryOptions) (*api.QueryMeta, error) {
		s.metrics.requests.WithLabelValues("health_service").Inc()
		list, meta, err := serviceHealth(s.cfg.Client, name, q)
		if err == nil {
			entries = list
		}
		return meta, err
	}
	s.block.run(ctx, fetch, loopHooks{
		changed: func() { s.setInstances(ctx, name, entries) },
		failed:  func(err error) { s.failed(ctx, name, err) },
		ok:      func() { s.recovered(ctx, name) },
	})
}

// serviceHealth queries the health of service's instances, from the
// servers' state store rather than from the agent's streaming view.
//
// A blocking query for a service's health is answered by the agent's
// streaming backend (Consul 1.10 and later, use_streaming_backend), which
// can answer at the service's latest index without an instance registered
// at or before it: Consul 1.14, under a burst of registrations, answered
// index 66 with 50 instances where the state store held 51 at index 66.
// The loop waits on the index it was given, so the missing instance would
// be seen only after the service next changed. The near parameter is the
// one a query can carry to be answered by the servers (the blocking-query
// backend), whose index and result come from one read of the state store;
// weir sorts instances itself, so the order near asks for costs nothing.
func serviceHealth(client *api.Client, service string, q *api.QueryOptions) ([]*api.ServiceEntry, *api.QueryMeta, error) {
	q.Near = "_agent"
	return client.Health().Service(service, "", false, q)
}

// setInstances stores a service's latest instances, unless its watcher has
// been stopped meanwhile. Unversioned and skipped instances are logged once
// each: the sets kept are replaced on every update, so an instance that
// leaves is forgotten, and logged again should it come back.
func (s *Source) setInstances(ctx context.Context, name string, entries []*api.ServiceEntry) {
	c := convert(entries, s.rule, s.cfg.ExcludeWarning)
	unversioned := make(map[string]bool, len(c.unversioned))
	for _, id := range c.unversioned {
		unversioned[id] = true
	}
	s.mu.Lock()
	st, ok := s.services[name]
	if !ok || ctx.Err() != nil {
		s.mu.Unlock()
		return
	}
	var freshUnversioned, freshSkipped []string
	for _, id := range c.unversioned {
		if !st.unversioned[id] {
			freshUnversioned = append(freshUnversioned, id)
		}
	}
	for _, id := range sortedKeys(c.skipped) {
		if prev, seen := st.skipped[id]; !seen || prev.reason != c.skipped[id].reason {
			freshSkipped = append(freshSkipped, id)
		}
	}
	st.instances, st.synced = c.instances, true
	st.unversioned, st.skipped = unversioned, c.skipped
	if st.refreshing != nil {
		st.refreshing.stored = true
	}
	s.mu.Unlock()

	for _, id := range freshUnversioned {
		s.cfg.Logger.Warn("instance has no version; grouped as version \"\"", "service", name, "instance", id,
			"metaKey", s.cfg.VersionMetaKey, "tagPrefix", s.cfg.VersionTagPrefix)
	}
	for _, id := range freshSkipped {
		sk := c.skipped[id]
		s.cfg.Logger.Warn("instance skipped: "+sk.detail, "service", name, "instance", id, "reason", string(sk.reason))
	}
	s.signal()
}
