package consul

import (
	"context"
	"slices"
	"sync"

	"github.com/hashicorp/consul/api"
)

const serviceListWatcher = "service list"

// watchServiceList follows the catalog's service list, starting a watcher
// for every service that appears and stopping the watcher of every service
// that goes. Service watchers join wg.
func (s *Source) watchServiceList(ctx context.Context, wg *sync.WaitGroup) {
	var names []string
	fetch := func(q *api.QueryOptions) (*api.QueryMeta, error) {
		s.metrics.requests.WithLabelValues("catalog_services").Inc()
		list, meta, err := s.cfg.Client.Catalog().Services(q)
		if err == nil {
			names = serviceNames(list)
		}
		return meta, err
	}
	s.block.run(ctx, fetch, loopHooks{
		changed: func() { s.setServices(ctx, wg, names) },
		failed:  func(err error) { s.failed(serviceListWatcher, err) },
		ok:      func() { s.recovered(serviceListWatcher) },
	})
}

// serviceNames returns the services weir routes to, sorted: every service
// but Consul's own.
func serviceNames(list map[string][]string) []string {
	names := make([]string, 0, len(list))
	for name := range list {
		if name != consulServiceName {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// setServices starts and stops service watchers to match names.
func (s *Source) setServices(ctx context.Context, wg *sync.WaitGroup, names []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, st := range s.services {
		if !slices.Contains(names, name) {
			st.cancel()
			delete(s.services, name)
			delete(s.failing, name)
			s.cfg.Logger.Info("service left the catalog", "service", name)
		}
	}
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
		list, meta, err := s.cfg.Client.Health().Service(name, "", false, q)
		if err == nil {
			entries = list
		}
		return meta, err
	}
	s.block.run(ctx, fetch, loopHooks{
		changed: func() { s.setInstances(ctx, name, entries) },
		failed:  func(err error) { s.failed(name, err) },
		ok:      func() { s.recovered(name) },
	})
}

// setInstances stores a service's latest instances, unless its watcher has
// been stopped meanwhile.
func (s *Source) setInstances(ctx context.Context, name string, entries []*api.ServiceEntry) {
	c := convert(entries, s.rule, s.cfg.ExcludeWarning)
	s.mu.Lock()
	st, ok := s.services[name]
	if !ok || ctx.Err() != nil {
		s.mu.Unlock()
		return
	}
	st.instances, st.synced, st.unversioned = c.instances, true, len(c.unversioned)
	newlyUnversioned := s.noteUnversioned(c.unversioned)
	s.mu.Unlock()

	for _, id := range newlyUnversioned {
		s.cfg.Logger.Warn("instance has no version; grouped as version \"\"", "service", name, "instance", id,
			"metaKey", s.cfg.VersionMetaKey, "tagPrefix", s.cfg.VersionTagPrefix)
	}
	for _, id := range c.badAddress {
		s.cfg.Logger.Warn("instance skipped: its address is not an IP literal", "service", name, "instance", id)
	}
	s.signal()
}

// noteUnversioned returns the unversioned instances not reported before,
// so each is logged once. mu must be held.
func (s *Source) noteUnversioned(ids []string) []string {
	var fresh []string
	for _, id := range ids {
		if !s.reported[id] {
			s.reported[id] = true
			fresh = append(fresh, id)
		}
	}
	return fresh
}
