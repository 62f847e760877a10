package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weir-mesh/weir/snapshot"
)

// serverResult is what one server measured.
type serverResult struct {
	name      string
	weights   []fractions // per change
	endpoints []fractions
	connect   time.Duration
	connected usage         // just after every stream was served
	steady    usage         // once the resident set stopped shrinking after that
	idle      usage         // before any proxy connected
	cpuWeight time.Duration // CPU per weight change
	genWeight time.Duration // the generator's CPU per weight change
	cpuEndpt  time.Duration // CPU per endpoint change
	marshal   float64       // resources serialised per weight change (weir only; NaN otherwise)
	burst     burstResult
	storm     time.Duration // every stream dropped and reconnected at once → all served
	preStorm  usage         // just before the storm
	stormPeak usage         // peaks while the storm is served
	stormCPU  time.Duration // the server's CPU during the storm
	stormGen  time.Duration // the generator's (this process's) CPU during the storm
	pushPeak  usage         // peaks during the weight changes
	errs      []string
}

// usage is a server's memory: resident set and Go heap in use.
type usage struct{ rss, heap, stacks float64 }

// burstResult is what a burst of changes caused.
type burstResult struct {
	took   time.Duration // until every change was made (the server answered)
	first  time.Duration // from the first change until the verifying proxy held one
	last   time.Duration // … held the last change
	pushes float64       // snapshots the server published meanwhile
}

// fractions are the times until 50 %, 99 % and 100 % of the proxies ACKed.
type fractions struct{ p50, p99, all time.Duration }

func fractionsOf(times []time.Duration) fractions {
	return fractions{percentile(times, 0.5), percentile(times, 0.99), percentile(times, 1)}
}

// result is one run: every server under the same workload.
type result struct {
	cfg     config
	cores   int
	servers []serverResult
}

func run(ctx context.Context, cfg config) (*result, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	res := &result{cfg: cfg, cores: runtime.NumCPU()}
	for _, s := range servers {
		if cfg.Only != "" && cfg.Only != s.name {
			continue
		}
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
	sr := serverResult{name: s.name, marshal: math.NaN()}
	dir, err := os.MkdirTemp("", "weir-bench-"+s.name+"-")
	if err != nil {
		return sr, err
	}
	defer os.RemoveAll(dir)
	w, err := newWorld(dir, cfg.Services, cfg.Endpoints)
	if err != nil {
		return sr, err
	}
	t, err := s.start(ctx, cfg, w)
	if err != nil {
		return sr, err
	}
	defer t.close()
	if sr.idle, err = t.usage(); err != nil {
		return sr, err
	}
	start := time.Now()
	f, err := connect(ctx, cfg, t.xdsAddr)
	if err != nil {
		return sr, err
	}
	defer func() { f.close() }()
	sr.connect = time.Since(start)
	f.settled.Store(true)
	if sr.connected, err = t.usage(); err != nil {
		return sr, err
	}
	if sr.steady, err = t.steady(ctx); err != nil {
		return sr, err
	}
	if cfg.ProfileDir != "" {
		if err := t.heapProfile(filepath.Join(cfg.ProfileDir, s.name+".heap.pprof")); err != nil {
			return sr, err
		}
		go t.cpuProfile(filepath.Join(cfg.ProfileDir, s.name+".cpu.pprof"), cfg.ProfileTime)
		stopProfile, err := generatorProfile(filepath.Join(cfg.ProfileDir, s.name+".generator.cpu.pprof"))
		if err != nil {
			return sr, err
		}
		time.AfterFunc(cfg.ProfileTime, stopProfile)
		defer stopProfile() // sooner, if the scenarios end sooner
	}
	for _, sc := range []func(context.Context, config, *target, *fleet, *world, *serverResult) error{
		weightChanges, endpointChanges, burst,
	} {
		if err := sc(ctx, cfg, t, f, w, &sr); err != nil {
			sr.errs = append(sr.errs, err.Error())
			return sr, nil
		}
	}
	f, err = reconnectStorm(ctx, cfg, t, f, &sr)
	if err != nil {
		sr.errs = append(sr.errs, fmt.Sprintf("reconnect storm: %v", err))
	}
	return sr, nil
}

// ownCPU returns the user and system CPU time this process has used.
func ownCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Steady state: after a fleet connects, the runtime keeps the pages that
// the first responses to every stream took, and hands them back to the
// system over the next seconds. The resident set is steady once a second
// takes less than steadyShrink of it away, or after steadyWait.
const (
	steadyShrink = 0.01
	steadyWait   = 30 * time.Second
)

// steady returns the server's memory once its resident set has stopped
// shrinking.
func (p *process) steady(ctx context.Context) (usage, error) {
	last, err := p.usage()
	deadline := time.Now().Add(steadyWait)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for err == nil && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-tick.C:
		}
		var u usage
		if u, err = p.usage(); err == nil {
			shrank := last.rss-u.rss > steadyShrink*last.rss
			last = u
			if !shrank {
				break
			}
		}
	}
	return last, err
}

// usage measures a server's memory after a forced collection.
func (p *process) usage() (usage, error) {
	heap, stacks, err := p.liveHeap()
	if err != nil {
		return usage{}, err
	}
	rss, err := p.rss()
	return usage{rss: float64(rss), heap: heap, stacks: stacks}, err
}

// weightChanges is scenario (a): the weighted service's split moves
// between 90/10 and 50/50; every Envoy-shaped proxy (weir_outbound holds
// every service) and the gRPC-shaped proxies of weightedService (which
// fetch its own route configuration) must ACK new routes. Other gRPC-shaped
// proxies receive nothing, and a round waiting for them would time out.
func weightChanges(ctx context.Context, cfg config, t *target, f *fleet, _ *world, sr *serverResult) error {
	cpu0, err := t.cpu()
	if err != nil {
		return err
	}
	marshalled0, marshalErr := t.metric("weir_xds_resources_marshalled_total")
	gen0 := ownCPU()
	peak := t.samplePeaks()
	ws := weights{90, 10}
	for i := range cfg.Changes {
		ws = ws.next()
		r := f.begin(resourcev3.RouteType, func(p *proxy) bool { return !p.grpc || p.svc == weightedService })
		if err := t.setWeights(ctx, ws); err != nil {
			return fmt.Errorf("weight change %d: %w", i, err)
		}
		times, err := f.await(r, cfg.Timeout)
		if err != nil {
			return fmt.Errorf("weight change %d: %w", i, err)
		}
		if err := f.awaitObserved(holdsWeights(ws), cfg.Timeout); err != nil {
			return fmt.Errorf("weight change %d to %d/%d: %w (it holds %v)", i, ws.v1, ws.v2, err, f.observed().weights)
		}
		sr.weights = append(sr.weights, fractionsOf(times))
	}
	sr.pushPeak = peak()
	cpu1, err := t.cpu()
	if err != nil {
		return err
	}
	sr.cpuWeight = (cpu1 - cpu0) / time.Duration(cfg.Changes)
	sr.genWeight = (ownCPU() - gen0) / time.Duration(cfg.Changes)
	if marshalled1, err := t.metric("weir_xds_resources_marshalled_total"); err == nil && marshalErr == nil {
		sr.marshal = (marshalled1 - marshalled0) / float64(cfg.Changes)
	}
	return nil
}

// holdsWeights accepts what the verifying proxy holds once the weighted
// service's v1 cluster has ws.v1 percent of its weight.
func holdsWeights(ws weights) func(observed) bool {
	return func(o observed) bool {
		var total uint32
		for _, w := range o.weights {
			total += w
		}
		v1 := o.weights[snapshot.ClusterName(weightedService, "v1")]
		return total > 0 && math.Abs(float64(v1)/float64(total)*100-float64(ws.v1)) < 0.01
	}
}

// endpointChanges is scenario (b): the first endpoint of one service after
// another moves to a new port in the catalog file; every Envoy-shaped proxy
// and the gRPC-shaped proxies of that service must ACK new endpoints.
func endpointChanges(ctx context.Context, cfg config, t *target, f *fleet, w *world, sr *serverResult) error {
	cpu0, err := t.cpu()
	if err != nil {
		return err
	}
	for i := range cfg.Changes {
		svc := i % cfg.Services
		port := uint32(10000 + i)
		r := f.begin(resourcev3.EndpointType, func(p *proxy) bool { return !p.grpc || p.svc == serviceName(svc) })
		if err := w.moveEndpoint(svc, port); err != nil {
			return err
		}
		times, err := f.await(r, cfg.Timeout)
		if err != nil {
			return fmt.Errorf("endpoint change %d: %w", i, err)
		}
		if err := f.awaitObserved(holdsPort(serviceName(svc), port), cfg.Timeout); err != nil {
			return fmt.Errorf("endpoint change %d: %w", i, err)
		}
		sr.endpoints = append(sr.endpoints, fractionsOf(times))
	}
	cpu1, err := t.cpu()
	if err != nil {
		return err
	}
	sr.cpuEndpt = (cpu1 - cpu0) / time.Duration(cfg.Changes)
	return nil
}

// holdsPort accepts what the verifying proxy holds once svc's v1 cluster
// has an endpoint on port.
func holdsPort(svc string, port uint32) func(observed) bool {
	return func(o observed) bool { return slices.Contains(o.ports[snapshot.ClusterName(svc, "v1")], port) }
}

// burst makes cfg.Burst weight changes, started evenly over
// cfg.BurstWindow each without waiting for the one before (an operator's
// script, or many), and measures how many pushes they cause, how soon the
// first change the server applied reaches the verifying proxy, and when
// the last does. Before it, the verifying proxy holds a split that none of
// the changes makes (all on v1), so the first split it holds that differs
// is the burst's, whatever else was still on its way; then two debounces
// pass without a change.
func burst(ctx context.Context, cfg config, t *target, f *fleet, _ *world, sr *serverResult) error {
	before := weights{v1: 100, v2: 0}
	if err := t.setWeights(ctx, before); err != nil {
		return fmt.Errorf("burst: %w", err)
	}
	if err := f.awaitObserved(holdsWeights(before), cfg.Timeout); err != nil {
		return fmt.Errorf("burst: all on v1 before it: %w", err)
	}
	// Pacing, not waiting for a condition: the burst begins after a quiet
	// spell, as an operator's does, rather than within a debounce of the
	// change above, which the server would take it to go on.
	time.Sleep(2 * cfg.Debounce)
	published0, err := t.metric("weir_snapshots_published_total")
	if err != nil {
		return err
	}
	start := time.Now()
	type seen struct {
		after time.Duration
		err   error
	}
	first := make(chan seen, 1)
	go func() {
		err := f.awaitObserved(func(o observed) bool { return !holdsWeights(before)(o) }, cfg.Timeout)
		first <- seen{time.Since(start), err}
	}()
	gap := cfg.BurstWindow / time.Duration(cfg.Burst)
	errs := make(chan error, cfg.Burst)
	for k := range cfg.Burst {
		if wait := time.Until(start.Add(time.Duration(k) * gap)); wait > 0 {
			time.Sleep(wait) // pacing the burst, not waiting for a condition
		}
		go func() { errs <- t.setWeights(ctx, weights{v1: k % 100, v2: 100 - k%100}) }()
	}
	for range cfg.Burst {
		if err := <-errs; err != nil {
			return fmt.Errorf("burst: %w", err)
		}
	}
	sr.burst.took = time.Since(start)
	seenFirst := <-first
	if seenFirst.err != nil {
		return fmt.Errorf("burst: first change: %w", seenFirst.err)
	}
	sr.burst.first = seenFirst.after
	final, err := t.weights(ctx)
	if err != nil {
		return fmt.Errorf("burst: %w", err)
	}
	if err := f.awaitObserved(holdsWeights(final), cfg.Timeout); err != nil {
		return fmt.Errorf("burst: last change (%d/%d): %w", final.v1, final.v2, err)
	}
	sr.burst.last = time.Since(start)
	published1, err := t.metric("weir_snapshots_published_total")
	sr.burst.pushes = published1 - published0
	return err
}

// reconnectStorm drops every stream of f at once and connects them all
// again, as a fleet does when its control plane restarts or its network
// blips, and records how long until every proxy held routes and endpoints
// again and the server's memory peaks meanwhile. It returns the new fleet.
func reconnectStorm(ctx context.Context, cfg config, t *target, f *fleet, sr *serverResult) (*fleet, error) {
	var err error
	if sr.preStorm, err = t.usage(); err != nil {
		return f, err
	}
	peak := t.samplePeaks()
	f.close()
	cpu0, err0 := t.cpu()
	gen0 := ownCPU()
	start := time.Now()
	again, err := connect(ctx, cfg, t.xdsAddr)
	sr.storm = time.Since(start)
	sr.stormGen = ownCPU() - gen0
	cpu1, err1 := t.cpu()
	sr.stormPeak = peak()
	if err := errors.Join(err, err0, err1); err != nil {
		return f, err
	}
	sr.stormCPU = cpu1 - cpu0
	again.settled.Store(true)
	return again, nil
}
