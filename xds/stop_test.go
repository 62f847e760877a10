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
