package xds

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/prometheus/client_golang/prometheus"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/policy"
	"github.com/weir-mesh/weir/snapshot"
)

// waitTimeout bounds every wait for something that should happen.
const waitTimeout = 10 * time.Second

type testServer struct {
	cache   *Cache
	tracker *Tracker
	addr    string
}

func startServer(t *testing.T) *testServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(prometheus.NewRegistry(), func() float64 { return 0 })
	ts := &testServer{cache: NewCache(), tracker: NewTracker(slog.New(slog.NewTextHandler(io.Discard, nil)), m), addr: lis.Addr().String()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, NewGRPCServer(ctx, ts.cache, ts.tracker), lis, ServeOptions{}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ts
}

// greeterSnapshot builds a real snapshot of one service "greeter" with one
// instance per version, at the given weights.
func greeterSnapshot(t *testing.T, weights policy.Weights, versions ...string) *snapshot.Snapshot {
	t.Helper()
	var instances []discovery.Instance
	for i, v := range versions {
		instances = append(instances, discovery.Instance{ID: "greeter-" + v, Address: "127.0.0.1", Port: uint32(9100 + i), Version: v})
	}
	m, err := discovery.NewModel([]discovery.Service{{Name: "greeter", Instances: instances}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := snapshot.Build(snapshot.Input{Model: m, Routing: policy.TableOf(map[string]policy.Routing{"greeter": {Weights: weights}})})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// adsClient is a raw ADS stream, the way a proxy speaks it.
type adsClient struct {
	t      *testing.T
	node   *corev3.Node
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	resps  chan *discoveryv3.DiscoveryResponse
	cancel context.CancelFunc
}

func dialADS(t *testing.T, addr string, node *corev3.Node) *adsClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &adsClient{t: t, node: node, stream: stream, resps: make(chan *discoveryv3.DiscoveryResponse, 16), cancel: cancel}
	go func() {
		defer close(c.resps)
		for {
			r, err := stream.Recv()
			if err != nil {
				return
			}
			c.resps <- r
		}
	}()
	t.Cleanup(func() { cancel(); conn.Close() })
	return c
}

func (c *adsClient) send(req *discoveryv3.DiscoveryRequest) {
	c.t.Helper()
	req.Node = c.node
	if err := c.stream.Send(req); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// subscribe opens a subscription: names empty means wildcard.
func (c *adsClient) subscribe(typeURL string, names ...string) {
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: typeURL, ResourceNames: names})
}

func (c *adsClient) ack(r *discoveryv3.DiscoveryResponse, names ...string) {
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: r.TypeUrl, VersionInfo: r.VersionInfo, ResponseNonce: r.Nonce, ResourceNames: names})
}

func (c *adsClient) nack(r *discoveryv3.DiscoveryResponse, goodVersion string, names ...string) {
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: r.TypeUrl, VersionInfo: goodVersion, ResponseNonce: r.Nonce,
		ResourceNames: names, ErrorDetail: &statuspb.Status{Code: 3, Message: "test rejects this"}})
}

func (c *adsClient) recv() *discoveryv3.DiscoveryResponse {
	c.t.Helper()
	select {
	case r, ok := <-c.resps:
		if !ok {
			c.t.Fatal("stream closed")
		}
		return r
	case <-time.After(waitTimeout):
		c.t.Fatal("no response within", waitTimeout)
		return nil
	}
}

func resourceNames(t *testing.T, r *discoveryv3.DiscoveryResponse) []string {
	t.Helper()
	var names []string
	for _, a := range r.Resources {
		m, err := a.UnmarshalNew()
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, cachev3.GetResourceName(m))
	}
	return names
}

var (
	envoyNode = &corev3.Node{Id: "sidecar-1", Cluster: "web", UserAgentName: "envoy"}
	grpcNode  = &corev3.Node{Id: "client-1", UserAgentName: "gRPC Go"}
)

// eventually polls cond until it holds or the wait times out; it polls a
// condition, it does not stand in for one.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type discoveryRequest = discoveryv3.DiscoveryRequest

func emptySnapshot(t *testing.T) *snapshot.Snapshot {
	t.Helper()
	s, err := snapshot.Build(snapshot.Input{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
