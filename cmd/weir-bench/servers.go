package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/weir-mesh/weir/snapshot"
	"github.com/weir-mesh/weir/xds"
)

// target is a control plane under test: it serves ADS on addr and publishes
// the snapshots it is given to every connected proxy.
type target interface {
	addr() string
	publish(*snapshot.Snapshot) error
	stop()
}

// weirTarget is weir's xDS server wired the way cmd/weir/serve.go wires it,
// minus discovery, policy and the publisher: the harness sets snapshots on
// the cache itself.
type weirTarget struct {
	cache  *xds.Cache
	lis    net.Listener
	cancel context.CancelFunc
	done   chan error
}

func startWeir(first *snapshot.Snapshot) (*weirTarget, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &weirTarget{cache: xds.NewCache(), lis: lis, cancel: cancel, done: make(chan error, 1)}
	if err := t.cache.SetSnapshot(first); err != nil {
		cancel()
		lis.Close()
		return nil, err
	}
	metrics := xds.NewMetrics(prometheus.NewRegistry(), func() float64 { return 0 })
	tracker := xds.NewTracker(slog.New(slog.NewTextHandler(io.Discard, nil)), metrics)
	gs := xds.NewGRPCServer(ctx, t.cache, tracker)
	go func() { t.done <- xds.Serve(ctx, gs, lis) }()
	return t, nil
}

func (t *weirTarget) addr() string                       { return t.lis.Addr().String() }
func (t *weirTarget) publish(s *snapshot.Snapshot) error { return t.cache.SetSnapshot(s) }
func (t *weirTarget) stop()                              { t.cancel(); <-t.done }

// baselineTarget is a plain go-control-plane server: a SnapshotCache keyed
// by node id, with the same snapshot set for every node that connects and
// set again for every node on each change. ads=false, so named
// subscriptions (gRPC's LDS) are answered.
type baselineTarget struct {
	cache  cachev3.SnapshotCache
	lis    net.Listener
	gs     *grpc.Server
	done   chan error
	mu     sync.Mutex
	nodes  map[string]bool
	latest *cachev3.Snapshot
}

func startBaseline(first *snapshot.Snapshot) (*baselineTarget, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t := &baselineTarget{cache: cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil), lis: lis,
		done: make(chan error, 1), nodes: map[string]bool{}}
	if t.latest, err = gcpSnapshot(first); err != nil {
		lis.Close()
		return nil, err
	}
	cb := serverv3.CallbackFuncs{StreamRequestFunc: t.onRequest}
	// The same message limits as weir's server, so neither fails on size.
	t.gs = grpc.NewServer(grpc.MaxRecvMsgSize(16<<20), grpc.MaxSendMsgSize(128<<20))
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(t.gs, serverv3.NewServer(context.Background(), t.cache, cb))
	go func() { t.done <- t.gs.Serve(lis) }()
	return t, nil
}

// onRequest sets the current snapshot for a node the first time it is seen.
func (t *baselineTarget) onRequest(_ int64, req *discoveryv3.DiscoveryRequest) error {
	id := req.GetNode().GetId()
	if id == "" {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.nodes[id] {
		return nil
	}
	t.nodes[id] = true
	return t.cache.SetSnapshot(context.Background(), id, t.latest)
}

func (t *baselineTarget) addr() string { return t.lis.Addr().String() }

func (t *baselineTarget) publish(s *snapshot.Snapshot) error {
	gs, err := gcpSnapshot(s)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.latest = gs
	for id := range t.nodes {
		if err := t.cache.SetSnapshot(context.Background(), id, gs); err != nil {
			return err
		}
	}
	return nil
}

func (t *baselineTarget) stop() { t.gs.Stop(); <-t.done }

// gcpSnapshot converts weir's snapshot into go-control-plane's, serving the
// sidecar and api listeners together.
func gcpSnapshot(s *snapshot.Snapshot) (*cachev3.Snapshot, error) {
	res := map[resourcev3.Type][]types.Resource{}
	for _, c := range s.Clusters {
		res[resourcev3.ClusterType] = append(res[resourcev3.ClusterType], c)
	}
	for _, e := range s.Endpoints {
		res[resourcev3.EndpointType] = append(res[resourcev3.EndpointType], e)
	}
	for _, r := range s.Routes {
		res[resourcev3.RouteType] = append(res[resourcev3.RouteType], r)
	}
	for _, l := range append(append([]*listenerv3.Listener{}, s.APIListeners...), s.SidecarListeners...) {
		res[resourcev3.ListenerType] = append(res[resourcev3.ListenerType], l)
	}
	return cachev3.NewSnapshot(s.Version, res)
}
