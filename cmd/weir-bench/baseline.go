package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
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
	"github.com/weir-mesh/weir/xds"
)

// The baseline: what most hand-rolled control planes are. It reads the same
// catalog and policy files as weir (fixed weights only), rebuilds with
// weir's own snapshot.Build on every change, and sets the result in a
// go-control-plane SnapshotCache once per node id, with ads=false so that
// named subscriptions (gRPC's LDS) are answered. Like weir, it serves an
// Envoy the sidecar listener and a gRPC client the api_listeners (the
// class of a node is weir's, xds.ClassOf). One version stands for every
// type of a snapshot, as cachev3.NewSnapshot makes it: a change re-sends
// all four types to every proxy. It runs in a process of its own, like
// weir, so that each is measured alone.

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
			StreamRequestFunc:      func(_ int64, req *discoveryv3.DiscoveryRequest) error { return b.seen(req.GetNode()) },
			StreamDeltaRequestFunc: func(_ int64, req *discoveryv3.DeltaDiscoveryRequest) error { return b.seen(req.GetNode()) },
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

// baseline holds the latest inputs and snapshots, and every node seen.
type baseline struct {
	cache     cachev3.SnapshotCache
	published prometheus.Counter
	registry  *prometheus.Registry

	mu       sync.Mutex // held while the inputs change and snapshots are set
	model    *discovery.Model
	policies *policy.Set

	// nodesMu guards nodes and latest, apart from mu: a stream's request
	// callback takes it, and must not wait while a rebuild sets every
	// node's snapshot.
	nodesMu sync.Mutex
	nodes   map[string]xds.Class // every node seen, by id
	latest  map[xds.Class]*cachev3.Snapshot
}

func newBaseline() *baseline {
	b := &baseline{cache: cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil), nodes: map[string]xds.Class{},
		registry: prometheus.NewRegistry(),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_snapshots_published_total", Help: "Snapshots published (set for every node)."})}
	b.registry.MustRegister(b.published, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return b
}

func (b *baseline) opsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		b.nodesMu.Lock()
		ready := b.latest != nil
		b.nodesMu.Unlock()
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
	latest := map[xds.Class]*cachev3.Snapshot{}
	for _, class := range []xds.Class{xds.Envoy, xds.GRPC} {
		if err == nil {
			latest[class], err = gcpSnapshot(snap, class)
		}
	}
	if err != nil {
		slog.Error("baseline: build failed", "err", err)
		return
	}
	b.published.Inc() // before any proxy can see it, so that a reader who saw it counts it
	b.nodesMu.Lock()
	b.latest = latest
	nodes := maps.Clone(b.nodes) // a node seen from now on is set latest by seen
	b.nodesMu.Unlock()
	for id, class := range nodes {
		if err := b.cache.SetSnapshot(context.Background(), id, latest[class]); err != nil {
			slog.Error("baseline: set snapshot", "node", id, "err", err)
		}
	}
}

// seen sets the current snapshot of its class for a node the first time it
// is seen.
func (b *baseline) seen(node *corev3.Node) error {
	b.nodesMu.Lock()
	defer b.nodesMu.Unlock()
	id := node.GetId()
	if _, ok := b.nodes[id]; ok || id == "" || b.latest == nil {
		return nil
	}
	class := xds.ClassOf(node)
	b.nodes[id] = class
	return b.cache.SetSnapshot(context.Background(), id, b.latest[class])
}

// gcpSnapshot converts weir's snapshot into go-control-plane's for a proxy
// of class: an Envoy gets the sidecar listener, a gRPC client the
// api_listeners.
func gcpSnapshot(s *snapshot.Snapshot, class xds.Class) (*cachev3.Snapshot, error) {
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
	listeners := s.APIListeners
	if class == xds.Envoy {
		listeners = s.SidecarListeners
	}
	for l := range listeners.Values() {
		res[resourcev3.ListenerType] = append(res[resourcev3.ListenerType], l)
	}
	snap, err := cachev3.NewSnapshot(s.Version, res)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", s.Version, err)
	}
	return snap, nil
}
