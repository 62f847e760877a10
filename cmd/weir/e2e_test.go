package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/weir-mesh/weir/examples/quickstart/backend"
	"github.com/weir-mesh/weir/examples/quickstart/xdsclient"
	"github.com/weir-mesh/weir/snapshot"
)

// waitTimeout bounds every wait in these tests.
const waitTimeout = 20 * time.Second

// weir is an in-process `weir serve` on loopback ports picked by the kernel.
type weir struct {
	srv     *server
	xdsAddr string
	opsURL  string
	// Stop shuts this weir down as SIGTERM does and waits for it.
	Stop func()
}

// testConfig is a serve configuration on kernel-picked loopback ports.
func testConfig(policies string) serveConfig {
	return serveConfig{XDSAddr: "127.0.0.1:0", OpsAddr: "127.0.0.1:0", Policies: policies,
		SidecarAddress: "127.0.0.1", SidecarPort: 15001, Debounce: 20 * time.Millisecond, AckTimeout: 10 * time.Second}
}

// startWeir serves catalog and the policies directory until the test ends.
func startWeir(t testing.TB, catalog, policies string) *weir {
	t.Helper()
	cfg := testConfig(policies)
	cfg.Catalog = catalog
	return startWeirWith(t, cfg)
}

// startWeirWith serves cfg until the test ends; xdsOpts are added to the
// xDS server's options.
func startWeirWith(t testing.TB, cfg serveConfig, xdsOpts ...grpc.ServerOption) *weir {
	t.Helper()
	var logs io.Writer = testWriter{t}
	if _, ok := t.(*testing.B); ok {
		logs = io.Discard // benchmarks print every log line
	}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, err := newServer(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	srv.xdsOpts = append(srv.xdsOpts, xdsOpts...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("weir serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return &weir{srv: srv, xdsAddr: srv.xdsLis.Addr().String(), opsURL: "http://" + srv.opsLis.Addr().String(), Stop: stop}
}

// testWriter sends weir's logs to the test log, shown on failure.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimSpace(string(p)))
	return len(p), nil
}

// readyz fetches /readyz.
func (w *weir) readyz(t testing.TB) (int, readiness) {
	t.Helper()
	resp, err := http.Get(w.opsURL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r readiness
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, r
}

// metrics fetches /metrics.
func (w *weir) metrics(t testing.TB) string {
	t.Helper()
	resp, err := http.Get(w.opsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// startBackend serves a demo backend on a free loopback port and returns
// its port.
func startBackend(t testing.TB, id, version string) int {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- backend.Serve(ctx, lis, id, version) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("backend %s: %v", id, err)
		}
	})
	return lis.Addr().(*net.TCPAddr).Port
}

// writeFile replaces path atomically, the way editors and deploy tools do.
func writeFile(t testing.TB, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func greeterPolicy(v1, v2 string) string {
	return fmt.Sprintf("service: greeter\nstrategy: fixed\nweights: {v1: %s, v2: %s}\n", v1, v2)
}

// until polls cond until it holds, failing the test after waitTimeout.
func until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// result is one RPC's outcome.
type result struct {
	at      time.Time
	version string
	err     error
}

// caller sends RPCs back to back and records every outcome.
type caller struct {
	client testpb.TestServiceClient
	mu     sync.Mutex
	log    []result
}

func (c *caller) call(ctx context.Context) result {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := c.client.UnaryCall(ctx, &testpb.SimpleRequest{})
	r := result{at: time.Now(), version: resp.GetHostname(), err: err}
	c.mu.Lock()
	c.log = append(c.log, r)
	c.mu.Unlock()
	return r
}

// results returns the outcomes recorded so far.
func (c *caller) results() []result {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]result(nil), c.log...)
}

// routesFetched returns the route configurations node subscribed to.
func routesFetched(w *weir, node string) []string {
	for _, p := range w.srv.tracker.Proxies() {
		if p.NodeID == node {
			return p.Types[resourcev3.RouteType].Names
		}
	}
	return nil
}

// startGreeterCaller starts weir on catalog and policies and returns it,
// ready, with a caller of greeter through grpc-go's xds resolver as node.
func startGreeterCaller(t *testing.T, catalog, policies, node string) (*weir, *caller) {
	t.Helper()
	w := startWeir(t, catalog, policies)
	until(t, "/readyz to answer 200", func() bool { code, _ := w.readyz(t); return code == http.StatusOK })
	conn, err := xdsclient.Dial("xds:///greeter", w.xdsAddr, node)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return w, &caller{client: testpb.NewTestServiceClient(conn)}
}

// TestEndToEndWeightShift is the walking skeleton's promise: weights from a
// policy file reach a real gRPC xDS client's traffic, a broken edit changes
// nothing, and a rewrite shifts all traffic without a failed request.
func TestEndToEndWeightShift(t *testing.T) {
	v1 := startBackend(t, "greeter-v1-a", "v1")
	v2 := startBackend(t, "greeter-v2-a", "v2")
	dir := t.TempDir()
	catalog := filepath.Join(dir, "catalog.yaml")
	writeFile(t, catalog, fmt.Sprintf(`services:
  - name: greeter
    instances:
      - {id: greeter-v1-a, address: 127.0.0.1, port: %d, version: v1}
      - {id: greeter-v2-a, address: 127.0.0.1, port: %d, version: v2}
`, v1, v2))
	policies := filepath.Join(dir, "policies")
	if err := os.Mkdir(policies, 0o755); err != nil {
		t.Fatal(err)
	}
	policyFile := filepath.Join(policies, "greeter.yaml")
	writeFile(t, policyFile, greeterPolicy("90", "10"))

	w, c := startGreeterCaller(t, catalog, policies, "e2e-client")
	ctx := context.Background()

	// 90/10: of 2,000 RPCs, 10 % ± 3 % reach v2.
	v2Count := 0
	for range 2000 {
		r := c.call(ctx)
		if r.err != nil {
			t.Fatalf("RPC failed at 90/10: %v", r.err)
		}
		if r.version == "v2" {
			v2Count++
		}
	}
	if share := float64(v2Count) / 20; share < 7 || share > 13 {
		t.Fatalf("v2 got %.1f %% of 2000 RPCs at 90/10, want 10 %% ± 3 %%", share)
	}
	// grpc-go fetched the route configuration its api_listener names:
	// greeter's own, not the one every service shares.
	if got := routesFetched(w, "e2e-client"); !slices.Equal(got, []string{snapshot.ServiceRouteConfigName("greeter")}) {
		t.Fatalf("the gRPC client fetched route configurations %q, want greeter's own", got)
	}

	// From here on RPCs flow continuously in the background.
	flowCtx, stopFlow := context.WithCancel(ctx)
	flowDone := make(chan struct{})
	go func() {
		defer close(flowDone)
		for flowCtx.Err() == nil {
			c.call(ctx) // not flowCtx: stopping the flow must not cancel an RPC in flight
		}
	}()
	defer func() { stopFlow(); <-flowDone }()

	// A broken edit is rejected, shows in /readyz, and changes nothing.
	version := w.srv.publisher.Status().Version
	broken := time.Now()
	writeFile(t, policyFile, greeterPolicy("90", "20"))
	until(t, "the broken policy to be rejected", func() bool {
		_, r := w.readyz(t)
		return strings.Contains(r.Rejected["policies"], "greeter.yaml")
	})
	if _, r := w.readyz(t); !r.Ready || r.Version != version {
		t.Fatalf("after a broken edit /readyz says ready=%v version=%s, want still ready at %s", r.Ready, r.Version, version)
	}
	if m := w.metrics(t); !strings.Contains(m, `weir_config_rejected{source="policies"} 1`) {
		t.Errorf("/metrics does not show the rejection:\n%s", m)
	}

	// Traffic kept its 90/10 split while the broken file sat there.
	until(t, "1,000 RPCs after the broken edit", func() bool { return len(since(c.results(), broken)) >= 1000 })
	if share := v2Share(since(c.results(), broken)); share < 5 || share > 15 {
		t.Errorf("v2 got %.1f %% of the RPCs after the broken edit, want 10 %% ± 5 %%", share)
	}

	// Rewrite to 0/100: within 2 s every RPC goes to v2.
	rewrite := time.Now()
	writeFile(t, policyFile, greeterPolicy("0", "100"))
	until(t, "the 0/100 policy to be published", func() bool { return w.srv.publisher.Status().Version != version })
	until(t, "3 s of RPCs after the rewrite", func() bool {
		rs := c.results()
		return rs[len(rs)-1].at.Sub(rewrite) > 3*time.Second
	})
	stopFlow()
	<-flowDone

	var lastV1 time.Time
	afterRewrite := 0
	for _, r := range c.results() {
		if r.err != nil {
			t.Errorf("RPC failed at %s: %v", r.at.Format(time.StampMilli), r.err)
		}
		if r.at.After(rewrite) {
			afterRewrite++
			if r.version == "v1" {
				lastV1 = r.at
			}
		}
	}
	if shift := lastV1.Sub(rewrite); shift > 2*time.Second {
		t.Errorf("v1 still answered %v after the rewrite to 0/100, want every RPC on v2 within 2 s", shift)
	}
	t.Logf("%d RPCs in all, %d after the rewrite; last v1 answer %v after it", len(c.results()), afterRewrite, lastV1.Sub(rewrite).Round(time.Millisecond))
	if _, r := w.readyz(t); len(r.Rejected) != 0 {
		t.Errorf("after a good edit /readyz still lists rejections: %v", r.Rejected)
	}
}

// since returns the results at or after t.
func since(rs []result, t time.Time) []result {
	var out []result
	for _, r := range rs {
		if !r.at.Before(t) {
			out = append(out, r)
		}
	}
	return out
}

// v2Share returns the percentage of results answered by v2.
func v2Share(rs []result) float64 {
	if len(rs) == 0 {
		return 0
	}
	n := 0
	for _, r := range rs {
		if r.version == "v2" {
			n++
		}
	}
	return 100 * float64(n) / float64(len(rs))
}

// TestEndToEndReRegistrationInMaintenance sends calls through grpc-go's
// xds resolver to a service whose v2 has two registrations at one address
// and port, the first by ID in maintenance and the other passing (as
// Consul keeps during a re-registration): every call must be answered.
// v2 once got its share of the calls with only the DRAINING copy listed,
// which grpc-go drops, and about half the calls failed.
func TestEndToEndReRegistrationInMaintenance(t *testing.T) {
	v1, v2 := startBackend(t, "greeter-v1-a", "v1"), startBackend(t, "greeter-v2-b", "v2")
	dir := t.TempDir()
	catalog := filepath.Join(dir, "catalog.yaml")
	writeFile(t, catalog, fmt.Sprintf(`services:
  - name: greeter
    instances:
      - {id: greeter-v1-a, address: 127.0.0.1, port: %d, version: v1}
      - {id: greeter-v2-a, address: 127.0.0.1, port: %d, version: v2, health: maintenance}
      - {id: greeter-v2-b, address: 127.0.0.1, port: %d, version: v2}
`, v1, v2, v2))
	policies := filepath.Join(dir, "policies")
	if err := os.Mkdir(policies, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(policies, "greeter.yaml"), greeterPolicy("50", "50"))
	_, c := startGreeterCaller(t, catalog, policies, "e2e-reregistration")
	answered := map[string]int{}
	for range 200 {
		r := c.call(context.Background())
		if r.err != nil {
			t.Fatalf("a call failed after %v were answered: %v", answered, r.err)
		}
		answered[r.version]++
	}
	if answered["v2"] == 0 {
		t.Errorf("answered %v, want v2 to take some of the calls", answered)
	}
}
