package consul

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/internal/consultest"
)

// idleWait is the blocking-query wait used to measure idle traffic.
const idleWait = 10 * time.Second

// BenchmarkSync1000x10 measures, against a real Consul agent holding 1,000
// services of 10 instances each: the time to the first full sync, the
// requests per second sent to Consul at idle, and the memory of the model.
// It does the same work whatever b.N is; run it with -benchtime=1x.
func BenchmarkSync1000x10(b *testing.B) {
	const services, instances = 1000, 10
	agent := consultest.New(b, consultest.Options{MaxConnsPerClient: 4 * services})
	registerCatalog(b, agent, services, instances)

	for range b.N {
		client, err := NewClient(ClientConfig{Address: agent.Addr()})
		if err != nil {
			b.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		// A short wait makes idle re-issues frequent enough to count: the
		// figure to compare is one query per watch per wait.
		src := New(Config{Client: client, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: reg, WaitTime: idleWait})
		rec := &recorder{models: make(chan discovery.Model, 16), rejects: make(chan error, 16)}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- src.Run(ctx, rec) }()
		first := <-rec.models
		syncTime := time.Since(start)
		if got := len(first.Services()); got != services {
			b.Fatalf("first model has %d services, want %d", got, services)
		}

		const idle = 3 * idleWait
		before := testutil.ToFloat64(src.metrics.requests.WithLabelValues("health_service")) +
			testutil.ToFloat64(src.metrics.requests.WithLabelValues("catalog_services"))
		time.Sleep(idle) // measuring a rate over a fixed window, not waiting for a condition
		after := testutil.ToFloat64(src.metrics.requests.WithLabelValues("health_service")) +
			testutil.ToFloat64(src.metrics.requests.WithLabelValues("catalog_services"))

		b.ReportMetric(syncTime.Seconds()*1000, "ms-first-sync")
		b.ReportMetric((after-before)/idle.Seconds(), "idle-req/s")
		// Each watch re-issues its query once per wait (minus up to 1/16
		// jitter, 1/32 on average): anything above this is extra traffic.
		b.ReportMetric(float64(services+1)/(idleWait.Seconds()*31/32), "blocking-req/s")
		b.ReportMetric(float64(modelBytes(first, src)), "model-bytes")
		cancel()
		<-done
	}
}

// modelBytes returns the heap held by one model like m, built the way the
// source builds it: the average over several copies, so that unrelated
// garbage collected meanwhile does not swamp the figure.
func modelBytes(m discovery.Model, src *Source) uint64 {
	const copies = 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	held := make([]discovery.Model, copies)
	for i := range held {
		held[i], _, _ = src.model()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(held)
	runtime.KeepAlive(m)
	if after.HeapAlloc < before.HeapAlloc {
		return 0
	}
	return (after.HeapAlloc - before.HeapAlloc) / copies
}

// registerCatalog registers services×instances instances directly in the
// catalog, spread over ten nodes, sixteen requests at a time.
func registerCatalog(tb testing.TB, agent *consultest.Agent, services, instances int) {
	tb.Helper()
	work := make(chan *api.CatalogRegistration)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				if _, err := agent.Client.Catalog().Register(r, nil); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
				}
			}
		}()
	}
	for s := range services {
		for i := range instances {
			node := fmt.Sprintf("node-%d", i)
			work <- &api.CatalogRegistration{
				Node: node, Address: fmt.Sprintf("10.0.%d.1", i), SkipNodeUpdate: true,
				Service: &api.AgentService{
					ID: fmt.Sprintf("svc-%04d-%d", s, i), Service: fmt.Sprintf("svc-%04d", s),
					Address: fmt.Sprintf("10.%d.%d.%d", s/250, s%250, i+1), Port: 8080,
					Meta: map[string]string{"version": fmt.Sprintf("v%d", i%2+1)},
				},
			}
		}
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		tb.Fatal(firstErr)
	}
}
