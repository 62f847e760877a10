package xds

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/policy"
	"github.com/weir-mesh/weir/snapshot"
)

// On Kubernetes, pods come and go all day, and each new pod's sidecar or
// gRPC client connects with a node id never seen before. Whatever weir
// keeps per stream, node or proxy must go with it.

// TestChurnReleasesWhatProxiesLeave connects and disconnects hundreds of
// proxies, each a pod of its own (a node id and a connection), over real
// ADS streams, while snapshots are published. Their streams end every way
// a stream ends: the client cancels it, closes its side, resets the
// connection, or vanishes (the connection stays open and silent until
// keepalive gives up on it). Some NACK before they leave, some hold two
// streams at once, some leave watches open, and the second round reuses
// the first round's node ids. Afterwards everything the tracker, the
// cache and the publisher keep per proxy, every metric series and the
// goroutines are back to what they were after a warm-up.
func TestChurnReleasesWhatProxiesLeave(t *testing.T) {
	cs := startChurnServer(t)
	cs.round(t, len(churnModes)) // fills what is per type, not per proxy: label values, lazy goroutines
	baseline := cs.settled(t, nil)
	for round := range 2 { // the same node ids twice
		cs.round(t, 200)
		got := cs.settled(t, baseline)
		if !maps.Equal(got, baseline) {
			t.Fatalf("after round %d of churn, what weir keeps grew:\n%s", round+1, countsDiff(baseline, got))
		}
	}
}

// churnServer is a real xDS server with a publisher and its own metrics.
type churnServer struct {
	*testServer
	publisher *Publisher
	registry  *prometheus.Registry
	services  []string
}

// vanishWithin bounds how long the server takes to drop a vanished proxy:
// the test shortens keepalive to about a second, its least, rather than
// wait 40 s.
const vanishWithin = time.Second

func startChurnServer(t *testing.T) *churnServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, func() float64 { return 0 })
	cs := &churnServer{testServer: &testServer{cache: NewCache(), tracker: NewTracker(logger, m), addr: lis.Addr().String()}, registry: reg}
	cs.publisher = NewPublisher(PublisherConfig{Cache: cs.cache, Tracker: cs.tracker, Metrics: m, Logger: logger,
		Debounce: 10 * time.Millisecond, AckTimeout: time.Hour}) // a bridge ends because its proxies left
	engine := cs.publisher.cfg.Engine
	reg.MustRegister(NewRolloutCollector(engine))
	cs.tracker.OnNack(func(node, _, msg string) { engine.Nack(node, msg) }) // as weir serve wires it
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	gs := NewGRPCServer(ctx, cs.cache, cs.tracker, grpc.KeepaliveParams(keepalive.ServerParameters{Time: vanishWithin, Timeout: vanishWithin}))
	go func() { done <- Serve(ctx, gs, lis, ServeOptions{}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	runPublisher(t, cs.publisher)
	cs.services = []string{"svc-0", "svc-1", "svc-2"}
	cs.publisher.SetPolicies(policy.Set{}, nil)
	cs.publisher.Update(churnModel(t, cs.services, true))
	eventually(t, "the first snapshot", func() bool { return cs.cache.Version() != "" })
	return cs
}

// churnModel serves every service in v1, and in v2 too when withV2.
func churnModel(t *testing.T, services []string, withV2 bool) discovery.Model {
	t.Helper()
	var all []discovery.Service
	for i, name := range services {
		instances := []discovery.Instance{{ID: name + "-1", Address: "127.0.0.1", Port: uint32(9000 + 2*i), Version: "v1"}}
		if withV2 {
			instances = append(instances, discovery.Instance{ID: name + "-2", Address: "127.0.0.1", Port: uint32(9001 + 2*i), Version: "v2"})
		}
		all = append(all, discovery.Service{Name: name, Instances: instances})
	}
	m, err := discovery.NewModel(all)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// round runs proxies pods through their lives, a few at a time, while v2
// comes and goes: pushes reach streams as they come and go, and bridges
// wait for proxies that leave without applying them.
func (cs *churnServer) round(t *testing.T, proxies int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, proxies)
	limit := make(chan struct{}, 24)
	for i := range proxies {
		if i%40 == 20 {
			cs.publisher.Update(churnModel(t, cs.services, i%80 == 60))
		}
		limit <- struct{}{}
		wg.Go(func() {
			defer func() { <-limit }()
			if err := cs.live(i); err != nil {
				errs <- fmt.Errorf("proxy %d (%s): %w", i, churnModes[i%len(churnModes)].name, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
}

// settled returns the counts of what weir keeps once they are want, or,
// with want nil, once they stop changing; or after waitTimeout, as they
// are then.
func (cs *churnServer) settled(t *testing.T, want map[string]int) map[string]int {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	last := cs.counts(t)
	for stable := 0; time.Now().Before(deadline); {
		if want != nil && maps.Equal(last, want) || want == nil && stable == 20 {
			break
		}
		time.Sleep(10 * time.Millisecond) // polls the counts; nothing signals them
		next := cs.counts(t)
		if maps.Equal(next, last) {
			stable++
		} else {
			stable = 0
		}
		last = next
	}
	return last
}

// counts returns the size of everything weir keeps per stream, node or
// proxy, the series of every metric and the goroutines.
func (cs *churnServer) counts(t *testing.T) map[string]int {
	t.Helper()
	owed := 0
	cs.cache.owed.Range(func(any, any) bool { owed++; return true })
	cs.tracker.mu.Lock()
	tracked := len(cs.tracker.proxies)
	cs.tracker.mu.Unlock()
	_, total := lastLook(cs.publisher)
	c := map[string]int{
		"tracker proxies":          tracked,
		"cache watches":            cs.cache.watches(),
		"cache owed names":         owed,
		"publisher fleet total":    total,
		"publisher awaiting":       len(cs.publisher.Status().AwaitingRoutes),
		"goroutines":               runtime.NumGoroutine(),
		"weir_xds_connected_value": 0,
	}
	families, err := cs.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		c["series "+f.GetName()] = len(f.GetMetric())
		if f.GetName() == "weir_xds_connected_streams" {
			c["weir_xds_connected_value"] = int(f.GetMetric()[0].GetGauge().GetValue())
		}
	}
	return c
}

// countsDiff lists, sorted, the counts that differ.
func countsDiff(want, got map[string]int) string {
	var out string
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if got[k] != want[k] {
			out += fmt.Sprintf("  %s: %d, was %d\n", k, got[k], want[k])
		}
	}
	return out
}

// churnMode is one way a pod's proxy lives and leaves.
type churnMode struct {
	name  string
	envoy bool // an Envoy sidecar, else a proxyless gRPC client
	live  func(cs *churnServer, p *churnPod) error
}

var churnModes = []churnMode{
	{"envoy, cancels", true, envoyCancels},
	{"gRPC client, NACKs, closes its side", false, grpcNacksAndCloses},
	{"gRPC client, watches open, resets the connection", false, grpcResets},
	{"envoy over delta, NACKs, is owed, cancels", true, deltaNacksAndIsOwed},
	{"envoy, reconnects before its old stream closed", true, envoyReconnects},
	{"envoy's endpoint service over delta, NACKs, closes its side", true, edsNacksAndCloses},
	{"opens a stream and says nothing", false, silent},
	{"gRPC client, vanishes", false, grpcVanishes},
}

func envoyCancels(cs *churnServer, p *churnPod) error {
	s, err := p.sotw()
	if err != nil {
		return err
	}
	if err := s.envoy(cs.clusters()); err != nil {
		return err
	}
	s.cancel()
	return nil
}

func grpcNacksAndCloses(cs *churnServer, p *churnPod) error {
	s, err := p.sotw()
	if err != nil {
		return err
	}
	clusters := cs.clusters()[:2]
	r, err := s.exchange(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResourceNames: clusters})
	if err != nil {
		return err
	}
	if err := s.send(&discoveryv3.DiscoveryRequest{TypeUrl: r.TypeUrl, ResponseNonce: r.Nonce, ResourceNames: clusters,
		ErrorDetail: churnRejection}); err != nil {
		return err
	}
	return s.closeSend()
}

var churnRejection = &statuspb.Status{Code: 3, Message: "churn rejects this"}

func grpcResets(cs *churnServer, p *churnPod) error {
	s, err := p.sotw()
	if err != nil {
		return err
	}
	if err := s.grpcClient(cs.services[p.id%len(cs.services)]); err != nil {
		return err
	}
	return p.reset()
}

func deltaNacksAndIsOwed(_ *churnServer, p *churnPod) error {
	d, err := p.delta(nil)
	if err != nil {
		return err
	}
	r, err := d.exchange(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType})
	if err != nil {
		return err
	}
	if err := d.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: r.Nonce, ErrorDetail: churnRejection}); err != nil {
		return err
	}
	// Asking for more is answered with what the NACK left owed.
	if _, err := d.exchange(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResourceNamesSubscribe: []string{"gone/v9"}}); err != nil {
		return err
	}
	d.cancel()
	return nil
}

// envoyReconnects opens a second stream, on a connection of its own, while
// the first is still open, and breaks the first one's connection only then.
func envoyReconnects(cs *churnServer, p *churnPod) error {
	old, err := p.sotw()
	if err != nil {
		return err
	}
	if err := old.envoy(cs.clusters()); err != nil {
		return err
	}
	again := &churnPod{id: p.id, node: p.node, addr: p.addr}
	defer again.close()
	s, err := again.sotw()
	if err != nil {
		return err
	}
	if err := s.envoy(cs.clusters()); err != nil {
		return err
	}
	if err := p.reset(); err != nil {
		return err
	}
	s.cancel()
	return nil
}

func edsNacksAndCloses(cs *churnServer, p *churnPod) error {
	d, err := p.delta(func(ctx context.Context, conn *grpc.ClientConn) (deltaStream, error) {
		return endpointservice.NewEndpointDiscoveryServiceClient(conn).DeltaEndpoints(ctx)
	})
	if err != nil {
		return err
	}
	r, err := d.exchange(&discoveryv3.DeltaDiscoveryRequest{ResourceNamesSubscribe: cs.clusters()[:1]})
	if err != nil {
		return err
	}
	if err := d.send(&discoveryv3.DeltaDiscoveryRequest{ResponseNonce: r.Nonce, ErrorDetail: churnRejection}); err != nil {
		return err
	}
	return d.closeSend()
}

func silent(_ *churnServer, p *churnPod) error {
	s, err := p.sotw()
	if err != nil {
		return err
	}
	s.cancel()
	return nil
}

func grpcVanishes(cs *churnServer, p *churnPod) error {
	s, err := p.sotw()
	if err != nil {
		return err
	}
	if err := s.grpcClient(cs.services[p.id%len(cs.services)]); err != nil {
		return err
	}
	return p.vanish(cs)
}

// clusters returns every cluster the churn server serves, sorted.
func (cs *churnServer) clusters() []string {
	var out []string
	for _, s := range cs.services {
		out = append(out, snapshot.ClusterName(s, "v1"), snapshot.ClusterName(s, "v2"))
	}
	return out
}

// live runs proxy i's life: a pod of its own, whose node id depends on i
// alone, so that every round reuses the last one's.
func (cs *churnServer) live(i int) error {
	mode := churnModes[i%len(churnModes)]
	agent := "gRPC Go"
	if mode.envoy {
		agent = "envoy"
	}
	p := &churnPod{id: i, node: &corev3.Node{Id: fmt.Sprintf("pod-%03d", i), Cluster: "churn", UserAgentName: agent}, addr: cs.addr}
	defer p.close()
	return mode.live(cs, p)
}
