package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/discovery/file"
	"github.com/weir-mesh/weir/policy"
	"github.com/weir-mesh/weir/snapshot"
)

// The baseline: what most hand-rolled control planes are. It reads the same
// catalog and policy files as weir (fixed weights only), rebuilds with
// weir's own snapshot.Build on every change, and sets the result in a
// go-control-plane SnapshotCache once per node id, with ads=false so that
// named subscriptions (gRPC's LDS) are answered. It runs in a process of its
// own, like weir, so that each is measured alone.

// baselineFlags are the command line of `weir-bench baseline`.
type baselineFlags struct {
	catalog, policies, xdsAddr, opsAddr string
}

func runBaseline(ctx context.Context, args []string) error {
	var fl baselineFlags
	fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
	fs.StringVar(&fl.catalog, "catalog", "", "catalog file (watched)")
	fs.StringVar(&fl.policies, "policies", "", "policy directory (watched; fixed weights only)")
	fs.StringVar(&fl.xdsAddr, "xds-addr", "127.0.0.1:0", "address to serve ADS on")
	fs.StringVar(&fl.opsAddr, "ops-addr", "127.0.0.1:0", "address to serve /readyz, /metrics and /debug/pprof on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fl.catalog == "" || fl.policies == "" {
		return errors.New("baseline: --catalog and --policies are required")
	}
	b := newBaseline()
	xdsLis, err := net.Listen("tcp", fl.xdsAddr)
	if err != nil {
		return err
	}
	opsLis, err := net.Listen("tcp", fl.opsAddr)
	if err != nil {
		return err
	}
	// The same message limits as weir's server, so that neither fails on size.
	gs := grpc.NewServer(grpc.MaxRecvMsgSize(16<<20), grpc.MaxSendMsgSize(128<<20))
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs,
		serverv3.NewServer(ctx, b.cache, serverv3.CallbackFuncs{
			StreamRequestFunc:      func(_ int64, req *discoveryv3.DiscoveryRequest) error { return b.seen(req.GetNode().GetId()) },
			StreamDeltaRequestFunc: func(_ int64, req *discoveryv3.DeltaDiscoveryRequest) error { return b.seen(req.GetNode().GetId()) },
		}))
	ops := &http.Server{Handler: b.opsHandler()}
	go ops.Serve(opsLis)
	go gs.Serve(xdsLis)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	go (&file.Source{Path: fl.catalog, Logger: log}).Run(ctx, b)
	go (&policy.Watcher{Dir: fl.policies, Logger: log}).Run(ctx, b.setPolicies)
	<-ctx.Done()
	gs.Stop()
	return ops.Close()
}

// baseline holds the latest inputs and snapshot, and every node id seen.
type baseline struct {
	cache     cachev3.SnapshotCache
	published prometheus.Counter
	registry  *prometheus.Registry

	mu       sync.Mutex
	model    *discovery.Model
	policies *policy.Set
	nodes    map[string]bool
	latest   *cachev3.Snapshot
}

func newBaseline() *baseline {
	b := &baseline{cache: cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil), nodes: map[string]bool{},
		registry: prometheus.NewRegistry(),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_snapshots_published_total", Help: "Snapshots published (set for every node)."})}
	b.registry.MustRegister(b.published, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return b
}

func (b *baseline) opsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		b.mu.Lock()
		ready := b.latest != nil
		b.mu.Unlock()
		if !ready {
			http.Error(w, "no snapshot yet", http.StatusServiceUnavailable)
		}
	})
	mux.Handle("/metrics", promhttp.HandlerFor(b.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	return mux
}

// Update and Reject make baseline a discovery.Sink.
func (b *baseline) Update(m discovery.Model) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.model = &m
	b.rebuild()
}

func (b *baseline) Reject(err error) { slog.Warn("baseline: catalog rejected", "err", err) }

func (b *baseline) setPolicies(set policy.Set, err error) {
	if err != nil {
		slog.Warn("baseline: policies rejected", "err", err)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.policies = &set
	b.rebuild()
}

// rebuild builds the snapshot of the current inputs and sets it for every
// node. b.mu must be held.
func (b *baseline) rebuild() {
	if b.model == nil || b.policies == nil {
		return
	}
	routing := map[string]policy.Routing{}
	for _, svc := range b.policies.Services() {
		if p, _ := b.policies.Get(svc); p.Strategy == policy.Fixed {
			routing[svc] = policy.Routing{Weights: p.Weights}
		}
	}
	snap, err := snapshot.Build(snapshot.Input{Model: *b.model, Routing: policy.TableOf(routing)})
	if err == nil {
		b.latest, err = gcpSnapshot(snap)
	}
	if err != nil {
		slog.Error("baseline: build failed", "err", err)
		return
	}
	b.published.Inc() // before any proxy can see it, so that a reader who saw it counts it
	for id := range b.nodes {
		if err := b.cache.SetSnapshot(context.Background(), id, b.latest); err != nil {
			slog.Error("baseline: set snapshot", "node", id, "err", err)
		}
	}
}

// seen sets the current snapshot for a node the first time it is seen.
func (b *baseline) seen(id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if id == "" || b.nodes[id] || b.latest == nil {
		return nil
	}
	b.nodes[id] = true
	return b.cache.SetSnapshot(context.Background(), id, b.latest)
}

// gcpSnapshot converts weir's snapshot into go-control-plane's, serving the
// sidecar and api listeners together.
func gcpSnapshot(s *snapshot.Snapshot) (*cachev3.Snapshot, error) {
	res := map[resourcev3.Type][]types.Resource{}
	for c := range s.Clusters.Values() {
		res[resourcev3.ClusterType] = append(res[resourcev3.ClusterType], c)
	}
	for e := range s.Endpoints.Values() {
		res[resourcev3.EndpointType] = append(res[resourcev3.EndpointType], e)
	}
	for _, r := range s.RouteConfigurations() {
		res[resourcev3.RouteType] = append(res[resourcev3.RouteType], r)
	}
	for _, l := range append(s.APIListeners.Slice(), s.SidecarListeners.Slice()...) {
		res[resourcev3.ListenerType] = append(res[resourcev3.ListenerType], l)
	}
	snap, err := cachev3.NewSnapshot(s.Version, res)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", s.Version, err)
	}
	return snap, nil
}
