package consul

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weir-mesh/weir/internal/logbuf"
)

// newTestSource returns a Source that talks to no Consul, for driving its
// state directly, with its logs and metrics.
func newTestSource(t *testing.T) (*Source, *logbuf.Buffer, *prometheus.Registry) {
	t.Helper()
	logs := &logbuf.Buffer{}
	reg := prometheus.NewRegistry()
	return New(Config{Logger: logs.Logger(), Registerer: reg}), logs, reg
}

// addService makes name known to s as setServices would, returning the ctx
// its watcher would run under and the function that stops it.
func addService(s *Source, name string) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	s.services[name] = &serviceState{cancel: cancel}
	s.listSynced = true
	s.mu.Unlock()
	return ctx, cancel
}

func serviceEntry(service, id string, port int, meta map[string]string) *api.ServiceEntry {
	return &api.ServiceEntry{
		Node:    &api.Node{Node: "node-1", Address: "10.0.0.9"},
		Service: &api.AgentService{ID: id, Service: service, Port: port, Meta: meta},
	}
}

// TestModelAfterFirstSync: before the first full sync every known service
// must have synced; afterwards a new service that has not synced is left
// out instead of freezing every other service.
func TestModelAfterFirstSync(t *testing.T) {
	s, _, _ := newTestSource(t)
	gctx, _ := addService(s, "greeter")
	lctx, _ := addService(s, "ledger")
	v1 := map[string]string{"version": "v1"}
	s.setInstances(gctx, "greeter", []*api.ServiceEntry{serviceEntry("greeter", "g1", 9000, v1)})
	if _, ok, _ := s.model(); ok {
		t.Fatal("a model before ledger synced, before the first full sync")
	}
	if s.Status().Synced {
		t.Error("status synced before the first full sync")
	}
	s.setInstances(lctx, "ledger", []*api.ServiceEntry{serviceEntry("ledger", "l1", 9001, v1)})
	if _, ok, err := s.model(); !ok || err != nil {
		t.Fatalf("no model after every service synced: %v", err)
	}
	if !s.Status().Synced {
		t.Error("status not synced after the first full sync")
	}

	addService(s, "billing") // appears, and its watcher never gets an answer
	s.setInstances(gctx, "greeter", []*api.ServiceEntry{serviceEntry("greeter", "g1", 9000, v1), serviceEntry("greeter", "g2", 9002, v1)})
	m, ok, err := s.model()
	if !ok || err != nil {
		t.Fatalf("an unsynced new service froze the model (ok %v, err %v)", ok, err)
	}
	if svc, _ := m.Service("greeter"); len(svc.Instances) != 2 {
		t.Errorf("greeter has %d instances, want the update's 2", len(svc.Instances))
	}
	if _, ok := m.Service("billing"); ok {
		t.Error("the unsynced billing is in the model")
	}
}

// TestFailedAfterServiceGone: a watcher whose query fails just after its
// service left the catalog must not leave the source stale forever.
func TestFailedAfterServiceGone(t *testing.T) {
	s, _, _ := newTestSource(t)
	ctx, _ := addService(s, "greeter")
	s.setServices(context.Background(), &sync.WaitGroup{}, nil, nil) // greeter leaves: cancelled and deleted
	s.failed(ctx, "greeter", errors.New("connection reset"))
	if st := s.Status(); st.Stale {
		t.Fatalf("status = %+v after a removed service's watcher failed, want not stale", st)
	}

	// The same for a recovery racing with removal: it must not clear the
	// error of a new watcher of the same name.
	ctx2, _ := addService(s, "greeter")
	s.failed(ctx2, "greeter", errors.New("timeout"))
	s.recovered(ctx, "greeter") // the old, stopped watcher
	if !s.Status().Stale {
		t.Fatal("a stopped watcher's recovery cleared the live watcher's error")
	}
}

// TestServiceStatusIsPerService checks that a service's instances are
// stale while its own watcher fails, since its first failure, and not
// while another service's or the service list's watcher fails: one
// watcher refused with 429 must not hold every service's rollout. (When
// it is current again: TestServiceStaysStaleUntilItsFreshInstancesAreDelivered.)
func TestServiceStatusIsPerService(t *testing.T) {
	s, _, _ := newTestSource(t)
	gctx, _ := addService(s, "greeter")
	addService(s, "ledger")
	s.failed(gctx, "greeter", errors.New("connection reset"))
	first := s.ServiceStatus("greeter")
	s.failed(gctx, "greeter", errors.New("timeout"))
	s.failed(context.Background(), serviceListWatcher, errors.New("429 Too Many Requests"))
	got := s.ServiceStatus("greeter")
	if !got.Stale || got.Error != "greeter: timeout" || !got.StaleSince.Equal(first.StaleSince) || got.StaleSince.IsZero() {
		t.Errorf("greeter's watcher failing twice: %+v, want stale since its first failure (%v), with its latest error", got, first.StaleSince)
	}
	if st := s.ServiceStatus("ledger"); st.Stale {
		t.Errorf("ledger, whose watcher answers, while greeter's and the list's fail: %+v, want not stale", st)
	}
}

// greeterAnsweringAgain returns a source whose greeter, synced with one
// instance of v1, failed ("connection refused") and answered again, with
// the answer's instances not stored yet; greeter's watcher context; and
// v1's meta.
func greeterAnsweringAgain(t *testing.T) (*Source, context.Context, map[string]string) {
	t.Helper()
	s, _, _ := newTestSource(t)
	gctx, _ := addService(s, "greeter")
	v1 := map[string]string{"version": "v1"}
	s.setInstances(gctx, "greeter", []*api.ServiceEntry{serviceEntry("greeter", "g1", 9000, v1)})
	s.failed(gctx, "greeter", errors.New("connection refused"))
	s.recovered(gctx, "greeter")
	return s, gctx, v1
}

// TestServiceStaysStaleUntilItsFreshInstancesAreDelivered checks that a
// service whose watcher answers again stays stale until the instances of
// that answer reach the sink: until then the sink has those from before
// the failure, and a rollout resumed on them could step on once before
// the fresh ones pause it for health.
func TestServiceStaysStaleUntilItsFreshInstancesAreDelivered(t *testing.T) {
	s, gctx, v1 := greeterAnsweringAgain(t)
	if st := s.ServiceStatus("greeter"); !st.Stale || !strings.Contains(st.Error, "connection refused (answering again") {
		t.Errorf("answered again, its instances not stored yet: %+v, want stale", st)
	}
	before := s.refreshed() // a model made now has the old instances
	s.setInstances(gctx, "greeter", []*api.ServiceEntry{serviceEntry("greeter", "g1", 9000, v1), serviceEntry("greeter", "g2", 9001, v1)})
	if st := s.ServiceStatus("greeter"); !st.Stale {
		t.Errorf("its instances stored, not delivered: %+v, want stale", st)
	}
	s.delivered(before)
	if st := s.ServiceStatus("greeter"); !st.Stale {
		t.Errorf("a model made before its instances were stored was delivered: %+v, want still stale", st)
	}
	after := s.refreshed()
	if !slices.Equal(slices.Sorted(maps.Keys(after)), []string{"greeter"}) {
		t.Fatalf("refreshed = %v, want greeter's", after)
	}
	s.delivered(after)
	if st := s.ServiceStatus("greeter"); st.Stale {
		t.Errorf("its fresh instances delivered: %+v, want current", st)
	}
}

// TestUnversionedForgotten: the unversioned instances logged are kept per
// service and replaced on each update, so the set does not grow without
// bound and an instance that comes back is reported again.
func TestUnversionedForgotten(t *testing.T) {
	s, logs, _ := newTestSource(t)
	ctx, _ := addService(s, "greeter")
	const msg = "instance has no version"
	updates := [][]string{{"a", "b"}, {"a", "b"}, {"c"}, {"a"}}
	wantLogs := []int{2, 2, 3, 4}
	for i, ids := range updates {
		var entries []*api.ServiceEntry
		for _, id := range ids {
			entries = append(entries, serviceEntry("greeter", id, 9000, nil))
		}
		s.setInstances(ctx, "greeter", entries)
		if got := logs.Count(msg); got != wantLogs[i] {
			t.Errorf("after update %d %q: %d warnings, want %d", i, ids, got, wantLogs[i])
		}
		if got := len(s.services["greeter"].unversioned); got != len(ids) {
			t.Errorf("after update %d: %d unversioned IDs kept, want %d", i, got, len(ids))
		}
	}
}

// TestSkippedLoggedOnceAndCounted: an instance left out is logged once, not
// on every update of its service, and counted by reason.
func TestSkippedLoggedOnceAndCounted(t *testing.T) {
	s, logs, reg := newTestSource(t)
	ctx, _ := addService(s, "greeter")
	entries := []*api.ServiceEntry{
		serviceEntry("greeter", "ok", 9000, map[string]string{"version": "v1"}),
		serviceEntry("greeter", "high", 70000, map[string]string{"version": "v1"}),
		serviceEntry("greeter", "slash", 9000, map[string]string{"version": "b/c"}),
	}
	s.setInstances(ctx, "greeter", entries)
	s.setInstances(ctx, "greeter", entries)
	s.setServices(context.Background(), &sync.WaitGroup{}, []string{"greeter"}, map[string]string{"a/b": "invalid"})
	s.setServices(context.Background(), &sync.WaitGroup{}, []string{"greeter"}, map[string]string{"a/b": "invalid"})
	if got := logs.Count("instance skipped"); got != 2 {
		t.Errorf("%d instance-skipped warnings after two identical updates, want 2", got)
	}
	if got := logs.Count("service skipped"); got != 1 {
		t.Errorf("%d service-skipped warnings after two identical lists, want 1", got)
	}
	want := `
# HELP weir_consul_skipped_instances Instances left out of the model because Consul's data is not routable (for reason service_name: services), by reason.
# TYPE weir_consul_skipped_instances gauge
weir_consul_skipped_instances{reason="address"} 0
weir_consul_skipped_instances{reason="port"} 1
weir_consul_skipped_instances{reason="service_name"} 1
weir_consul_skipped_instances{reason="version"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "weir_consul_skipped_instances"); err != nil {
		t.Error(err)
	}
	m, ok, err := s.model()
	if !ok || err != nil {
		t.Fatalf("model: ok %v, err %v", ok, err)
	}
	if svc, _ := m.Service("greeter"); len(svc.Instances) != 1 {
		t.Errorf("greeter has %d instances, want only the valid one", len(svc.Instances))
	}
}

// TestStaleSecondsBeforeFirstSync: a catalog never had cannot be stale.
func TestStaleSecondsBeforeFirstSync(t *testing.T) {
	s, _, reg := newTestSource(t)
	s.failed(context.Background(), serviceListWatcher, errors.New("connection refused"))
	s.mu.Lock()
	s.staleSince = time.Now().Add(-time.Minute)
	s.mu.Unlock()
	if st := s.Status(); st.Synced || !st.Stale {
		t.Fatalf("status = %+v, want unsynced and failing", st)
	}
	gauge := func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "weir_discovery_stale_seconds" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("no weir_discovery_stale_seconds")
		return 0
	}
	if got := gauge(); got != 0 {
		t.Errorf("weir_discovery_stale_seconds = %v before the first sync, want 0", got)
	}
	s.setServices(context.Background(), &sync.WaitGroup{}, nil, nil)
	if _, ok, _ := s.model(); !ok {
		t.Fatal("no model for an empty catalog")
	}
	if got := gauge(); got < 60 {
		t.Errorf("weir_discovery_stale_seconds = %v after the first sync, stale for a minute", got)
	}
}

// TestBlockingResyncAfterError: after an error the next query waits on
// index 1, which Consul answers at once, and its answer counts as a change;
// then the loop blocks on the new index again.
func TestBlockingResyncAfterError(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type answer struct {
		index uint64
		err   error
	}
	answers := []answer{{42, nil}, {0, errors.New("down")}, {42, nil}, {42, nil}}
	var waited []uint64
	changes := 0
	fetch := func(q *api.QueryOptions) (*api.QueryMeta, error) {
		waited = append(waited, q.WaitIndex)
		a := answers[len(waited)-1]
		if len(waited) == len(answers) {
			cancel()
		}
		return &api.QueryMeta{LastIndex: a.index}, a.err
	}
	b := blocking{wait: time.Minute, retryBase: time.Millisecond, retryMax: time.Millisecond}
	b.run(ctx, fetch, loopHooks{changed: func() { changes++ }, failed: func(error) {}, ok: func() {}})
	if want := []uint64{0, 42, 1, 42}; !slices.Equal(waited, want) {
		t.Errorf("waited on %v, want %v", waited, want)
	}
	if changes != 2 {
		t.Errorf("%d changes, want 2: the first answer and the resync after the error", changes)
	}
}

// TestRefreshDeliveredIsTheOneTaken checks that a model made before a
// service failed and answered again, and delivered after its new answer
// was stored, does not end the new refresh: the sink does not have that
// answer's instances yet.
func TestRefreshDeliveredIsTheOneTaken(t *testing.T) {
	s, gctx, v1 := greeterAnsweringAgain(t)
	s.setInstances(gctx, "greeter", []*api.ServiceEntry{serviceEntry("greeter", "g1", 9000, v1)})
	taken := s.refreshed() // the emit loop takes greeter's refresh, then makes a model
	s.failed(gctx, "greeter", errors.New("connection reset"))
	s.recovered(gctx, "greeter")
	s.setInstances(gctx, "greeter", []*api.ServiceEntry{serviceEntry("greeter", "g2", 9001, v1)})
	s.delivered(taken) // the model made before g2 was stored reaches the sink
	if st := s.ServiceStatus("greeter"); !st.Stale {
		t.Errorf("a refresh stored after the model was made was ended by its delivery: %+v, want still stale", st)
	}
}

// TestBlockingResyncReadsConsistently: the queries that answer at once to
// resync — the first, the one after an error, and the one after an index
// that went backwards — are consistent reads; those that wait on an index
// are not.
func TestBlockingResyncReadsConsistently(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type answer struct {
		index uint64
		err   error
	}
	answers := []answer{{42, nil}, {43, nil}, {0, errors.New("down")}, {43, nil}, {41, nil}, {44, nil}}
	var waited []uint64
	var consistent []bool
	fetch := func(q *api.QueryOptions) (*api.QueryMeta, error) {
		waited = append(waited, q.WaitIndex)
		consistent = append(consistent, q.RequireConsistent)
		a := answers[len(waited)-1]
		if len(waited) == len(answers) {
			cancel()
		}
		return &api.QueryMeta{LastIndex: a.index}, a.err
	}
	b := blocking{wait: time.Minute, retryBase: time.Millisecond, retryMax: time.Millisecond}
	b.run(ctx, fetch, loopHooks{changed: func() {}, failed: func(error) {}, ok: func() {}})
	if want := []uint64{0, 42, 43, 1, 43, 1}; !slices.Equal(waited, want) {
		t.Fatalf("waited on %v, want %v", waited, want)
	}
	if want := []bool{true, false, false, true, false, true}; !slices.Equal(consistent, want) {
		t.Errorf("consistent reads %v, want %v (the first query and each on index 1)", consistent, want)
	}
}
