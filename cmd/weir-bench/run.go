package main

import (
	"context"
	"fmt"
	"runtime"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weir-mesh/weir/snapshot"
	"github.com/weir-mesh/weir/xds"
)

// server names a control plane and how to start it.
type server struct {
	name  string
	start func(*snapshot.Snapshot) (target, error)
	// expected returns the version_info a proxy ACKs once it holds snap.
	expected func(t target, snap *snapshot.Snapshot, typeURL string, p *proxy, names []string) string
}

var servers = []server{
	{name: "weir", start: func(s *snapshot.Snapshot) (target, error) { return startWeir(s) },
		expected: func(t target, _ *snapshot.Snapshot, typeURL string, p *proxy, names []string) string {
			class := xds.Envoy
			if p.grpc {
				class = xds.GRPC
			}
			return t.(*weirTarget).cache.VersionFor(typeURL, class, names, false)
		}},
	{name: "baseline", start: func(s *snapshot.Snapshot) (target, error) { return startBaseline(s) },
		expected: func(_ target, snap *snapshot.Snapshot, _ string, _ *proxy, _ []string) string { return snap.Version }},
}

// serverResult is what one server measured.
type serverResult struct {
	name          string
	weights       []fractions // per change
	endpoints     []fractions
	heapPerStream float64 // bytes
	connect       time.Duration
	storm         time.Duration // every stream dropped and reconnected at once → all served
	stormPeak     float64       // peak heap during the storm / steady heap
	errs          []string
}

// fractions are the times until 50 %, 99 % and 100 % of the proxies ACKed.
type fractions struct{ p50, p99, all time.Duration }

func fractionsOf(times []time.Duration) fractions {
	at := func(q float64) time.Duration {
		i := int(float64(len(times))*q+0.999999) - 1
		return times[max(0, min(i, len(times)-1))]
	}
	return fractions{at(0.5), at(0.99), at(1)}
}

// result is one run: every server under the same workload.
type result struct {
	cfg     config
	cores   int
	servers []serverResult
	notes   []string
}

func run(ctx context.Context, cfg config) (*result, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	res := &result{cfg: cfg, cores: runtime.NumCPU()}
	for _, s := range servers {
		sr, err := measure(ctx, cfg, s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		res.servers = append(res.servers, sr)
	}
	return res, nil
}

// measure runs every scenario against one freshly started server.
func measure(ctx context.Context, cfg config, s server) (serverResult, error) {
	sr := serverResult{name: s.name}
	w := newWorld(cfg.Services, cfg.Endpoints)
	snap, err := w.build()
	if err != nil {
		return sr, err
	}
	t, err := s.start(snap)
	if err != nil {
		return sr, err
	}
	defer t.stop()
	before := heapInuse() // after start: the per-stream cost, not the server's fixed cost
	start := time.Now()
	f, err := connect(ctx, cfg, t.addr())
	if err != nil {
		return sr, err
	}
	defer f.close()
	sr.connect = time.Since(start)
	sr.heapPerStream = float64(int64(heapInuse())-int64(before)) / float64(cfg.Streams)
	f.settled.Store(true)

	for i := range cfg.Changes {
		w.toggleWeights()
		fr, err := change(ctx, cfg, s, t, f, w, resourcev3.RouteType, -1)
		if err != nil {
			sr.errs = append(sr.errs, fmt.Sprintf("weight change %d: %v", i, err))
			return sr, nil
		}
		sr.weights = append(sr.weights, fr)
	}
	for i := range cfg.Changes {
		svc := i % cfg.Services
		w.moveEndpoint(svc)
		fr, err := change(ctx, cfg, s, t, f, w, resourcev3.EndpointType, svc)
		if err != nil {
			sr.errs = append(sr.errs, fmt.Sprintf("endpoint change %d: %v", i, err))
			return sr, nil
		}
		sr.endpoints = append(sr.endpoints, fr)
	}
	sr.storm, sr.stormPeak, err = reconnectStorm(ctx, cfg, t, f)
	if err != nil {
		sr.errs = append(sr.errs, fmt.Sprintf("reconnect storm: %v", err))
	}
	return sr, nil
}

// reconnectStorm drops every stream of f at once and connects them all
// again, as a fleet does when its control plane restarts or its network
// blips, and returns how long until every proxy held routes and endpoints
// again, and the peak heap meanwhile relative to the steady heap before.
func reconnectStorm(ctx context.Context, cfg config, t target, f *fleet) (time.Duration, float64, error) {
	steady := heapInuse()
	peak := make(chan uint64, 1)
	stop := make(chan struct{})
	go func() { peak <- samplePeakHeap(stop) }()
	f.close()
	start := time.Now()
	again, err := connect(ctx, cfg, t.addr())
	took := time.Since(start)
	close(stop)
	p := <-peak
	if err != nil {
		return 0, 0, err
	}
	again.close()
	return took, float64(p) / float64(steady), nil
}

// samplePeakHeap returns the largest HeapInuse seen every 10 ms until stop
// is closed.
func samplePeakHeap(stop <-chan struct{}) uint64 {
	var peak uint64
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		peak = max(peak, m.HeapInuse)
		select {
		case <-stop:
			return peak
		case <-t.C:
		}
	}
}

// change publishes the world as it is now and waits until every proxy that
// sees the change (for EDS: Envoys and the gRPC clients of service svc)
// ACKed the new version of typeURL.
func change(ctx context.Context, cfg config, s server, t target, f *fleet, w *world, typeURL string, svc int) (fractions, error) {
	if err := ctx.Err(); err != nil {
		return fractions{}, err
	}
	snap, err := w.build()
	if err != nil {
		return fractions{}, err
	}
	start := time.Now()
	if err := t.publish(snap); err != nil {
		return fractions{}, err
	}
	expected := map[int]string{}
	for _, p := range f.proxies {
		names := []string{snapshot.RouteConfigName}
		if typeURL == resourcev3.EndpointType {
			if p.grpc && p.svc != serviceName(svc) {
				continue
			}
			names = snapshotClusters(snap, p.grpc, p.svc)
		}
		expected[p.idx] = s.expected(t, snap, typeURL, p, names)
	}
	times, err := f.await(typeURL, start, expected, cfg.Timeout)
	if err != nil {
		return fractions{}, err
	}
	return fractionsOf(times), nil
}

// heapInuse returns the live heap after a full collection.
func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}
