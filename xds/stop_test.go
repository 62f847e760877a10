package xds

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/policy"
)

// TestServeStopsWithAProxyThatStoppedReading checks that Serve returns soon
// after its grace period while a proxy that stopped reading is owed a
// response larger than its flow-control window: those bytes can never be
// written, and a graceful stop alone waited for them forever.
func TestServeStopsWithAProxyThatStoppedReading(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cache, tracker := NewCache(), NewTracker(logger, NewMetrics(prometheus.NewRegistry(), func() float64 { return 0 }))
	services := make([]discovery.Service, 2000) // their clusters are some 200 KB, the window 64 KB
	for i := range services {
		services[i] = oneInstance(fmt.Sprintf("svc-%04d", i), "127.0.0.1", 9000)
	}
	mustSet(t, cache, snapshotOf(t, services...))

	const grace = 200 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, NewGRPCServer(ctx, cache, tracker), lis, ServeOptions{GracePeriod: grace, Logger: logger})
	}()
	stalledADS(t, lis.Addr().String())
	// The tracker records a response just before it is sent, and the send
	// itself only queues the bytes, so from here on they are stuck.
	eventually(t, "the clusters to be sent", func() bool {
		ps := tracker.Proxies()
		return len(ps) == 1 && ps[0].Types[resourcev3.ClusterType].Sent != ""
	})

	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
		t.Logf("Serve returned %v after ctx ended (grace period %v)", time.Since(start).Round(time.Millisecond), grace)
	case <-time.After(waitTimeout):
		t.Fatalf("Serve still running %v after ctx ended, with a grace period of %v", waitTimeout, grace)
	}
}

// stalledADS opens an ADS stream as an Envoy with a 64 KB flow-control
// window, asks for every cluster and never reads the answer.
func stalledADS(t *testing.T, addr string) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(65535), grpc.WithInitialConnWindowSize(65535)) // fixed: no BDP growth
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: envoyNode, TypeUrl: resourcev3.ClusterType}); err != nil {
		t.Fatal(err)
	}
}

// quickCanary is a canary whose 40 % step is followed, as soon as the
// fleet applied it, by the 60 % one.
const quickCanary = `service: greeter
strategy: canary
stable: v1
canary:
  version: v2
  steps:
    - setWeight: 40
    - setWeight: 60
    - pause: {}
`

// TestStoppingAppliesNoStep stops the xDS server, as weir stopping does
// (its ctx ends), while the one proxy connected has not applied a
// canary's 40 % step, and then lets the publisher look at the fleet, as a
// look or a publish under way when weir stops does. The stop closed the
// proxy's stream, and the publisher took the fleet without it for one
// that applied the step: the engine went on to 60 % and saved that, and
// the restarted weir restored a step that no proxy ever held.
func TestStoppingAppliesNoStep(t *testing.T) {
	for _, tc := range []struct {
		name string
		look func(context.Context, *Publisher)
	}{
		{"a look at the fleet", func(ctx context.Context, p *Publisher) { p.checkApplied(ctx) }},
		{"a publish", func(ctx context.Context, p *Publisher) { p.publish(ctx) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			store, err := policy.OpenStore(dir)
			if err != nil {
				t.Fatal(err)
			}
			p, ctx := stoppedMidStep(t, store)
			tc.look(ctx, p)
			if r := p.cfg.Engine.Rollouts()[0]; r.Step != 0 || !r.AppliedAt.IsZero() {
				t.Errorf("weir stopped, its fleet gone with it: the rollout is at step %d (%s), applied at %v; want step 0 (40 %%), not applied",
					r.Step, r.Weights(), r.AppliedAt)
			}
			store.Close()
			if r := storedGreeter(t, dir); r.Step != 0 || !r.AppliedAt.IsZero() {
				t.Errorf("the stopped weir saved the rollout at step %d (%s), applied at %v; want step 0 (40 %%), not applied: no proxy held more",
					r.Step, r.Weights(), r.AppliedAt)
			}
		})
	}
}

// stoppedMidStep returns a publisher, over an engine that saves into
// store, that served quickCanary's 40 % step to a gRPC client which has
// not applied it, and the ctx of its xDS server, which is done: the
// server has stopped, closing the client's stream.
func stoppedMidStep(t *testing.T, store *policy.Store) (*Publisher, context.Context) {
	t.Helper()
	p, set := parsePolicy(t, quickCanary)
	logger := slog.New(slog.DiscardHandler)
	engine, err := policy.NewEngine(policy.EngineConfig{Store: store, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	metrics := NewMetrics(prometheus.NewRegistry(), func() float64 { return 0 })
	tracker := NewTracker(logger, metrics)
	pub := NewPublisher(PublisherConfig{Cache: NewCache(), Tracker: tracker, Metrics: metrics, Logger: logger, Engine: engine})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel() // the server is stopped before this returns
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, NewGRPCServer(ctx, pub.cfg.Cache, tracker), lis, ServeOptions{}) }()
	dialADS(t, lis.Addr().String(), grpcNode).subscribe(resourcev3.ListenerType, p.Service)
	eventually(t, "the client to subscribe", func() bool { return len(tracker.Proxies()) == 1 })

	pub.SetPolicies(set, nil)
	pub.Update(greeterModel(t, "v1", "v2"))
	pub.publish(ctx)
	if r := engine.Rollouts(); !pub.ServingTarget() || len(r) != 1 || r[0].Step != 0 || !r[0].AppliedAt.IsZero() {
		t.Fatalf("served the target: %v; rollouts %+v; want greeter's at its 40 %% step, not applied", pub.ServingTarget(), r)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if ps := tracker.Proxies(); len(ps) != 0 {
		t.Fatalf("after the server stopped, %d proxies are connected, want none", len(ps))
	}
	return pub, ctx
}

// parsePolicy parses text, greeter.yaml, and returns its policy and set.
func parsePolicy(t *testing.T, text string) (policy.Policy, policy.Set) {
	t.Helper()
	p, err := policy.ParseFile("greeter.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	set, err := policy.NewSet(p)
	if err != nil {
		t.Fatal(err)
	}
	return p, set
}

// storedGreeter returns greeter's rollout as saved in the store in dir.
func storedGreeter(t *testing.T, dir string) policy.Rollout {
	t.Helper()
	store, err := policy.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rollouts, _, _, err := store.Load()
	if err != nil {
		t.Fatal(err)
	}
	return rollouts["greeter"]
}
