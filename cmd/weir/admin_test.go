package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/weir-mesh/weir/examples/quickstart/xdsclient"
	"github.com/weir-mesh/weir/internal/testca"
	"github.com/weir-mesh/weir/policy/admin"
	adminv1 "github.com/weir-mesh/weir/policy/admin/v1"
	"github.com/weir-mesh/weir/snapshot"
)

// adminToken authenticates the tests' admin calls as "ops".
type adminToken struct{}

func (adminToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer tok-ops"}, nil
}
func (adminToken) RequireTransportSecurity() bool { return false }

// startAdmin serves env's files and state (see startRollout) with the
// admin API on loopback, and returns a client authenticated as "ops".
func (env *rolloutEnv) startAdmin(t *testing.T) adminv1.AdminServiceClient {
	t.Helper()
	tokens := filepath.Join(t.TempDir(), "tokens")
	writeFile(t, tokens, "ops:tok-ops\n")
	cfg := testConfig(filepath.Dir(env.policyFile))
	cfg.Catalog, cfg.StateDir, cfg.AdminAddr, cfg.Admin.TokenFile = env.catalog, env.stateDir, "127.0.0.1:0", tokens
	env.w = startWeirWith(t, cfg)
	until(t, "/readyz to answer 200", func() bool { code, _ := env.w.readyz(t); return code == 200 })
	xconn, err := xdsclient.Dial("xds:///greeter", env.w.xdsAddr, "rollout-client")
	must(t, err)
	t.Cleanup(func() { xconn.Close() })
	env.c = &caller{client: testpb.NewTestServiceClient(xconn)}
	conn, err := grpc.NewClient(env.w.srv.adminLis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(adminToken{}))
	must(t, err)
	t.Cleanup(func() { conn.Close() })
	return adminv1.NewAdminServiceClient(conn)
}

// newAdminEnv is startRollout with the admin API.
func newAdminEnv(t *testing.T, policyText string) (*rolloutEnv, adminv1.AdminServiceClient) {
	t.Helper()
	env := rolloutFiles(t, policyText)
	return env, env.startAdmin(t)
}

func TestAdminOverrideMovesTrafficAndSurvivesRestart(t *testing.T) {
	env, client := newAdminEnv(t, greeterPolicy("90", "10"))
	until(t, "90/10 applied", func() bool { return env.w.srv.engine.RoutingApplied("greeter") })
	near(t, "policy file", env.share(t, 500), 10, 6)
	pushes := testutilValue(env.w.srv.metrics.Publishes)
	r, err := client.SetWeights(context.Background(), &adminv1.SetWeightsRequest{Service: "greeter",
		Weights: map[string]string{"v1": "20", "v2": "80"}, Reason: "canary looks good"})
	must(t, err)
	if r.Override == nil || r.Override.By != "ops" || r.Override.Reason != "canary looks good" {
		t.Fatalf("SetWeights returned %v, want an override by ops", r)
	}
	until(t, "the override applied", func() bool { return env.w.srv.engine.RoutingApplied("greeter") })
	near(t, "override", env.share(t, 1000), 80, 6)
	if got := testutilValue(env.w.srv.metrics.Publishes) - pushes; got != 1 {
		t.Errorf("the override took %v pushes, want 1", got)
	}

	env.w.Stop() // a restart on the same state directory
	client = env.startAdmin(t)
	r, err = client.GetRollout(context.Background(), &adminv1.GetRolloutRequest{Service: "greeter"})
	must(t, err)
	if r.Override == nil || r.Override.By != "ops" || r.Weights["v2"] != 8000 {
		t.Fatalf("after a restart: %v, want ops's 20/80 override", r)
	}
	until(t, "the override applied after the restart", func() bool { return env.w.srv.engine.RoutingApplied("greeter") })
	near(t, "override after restart", env.share(t, 1000), 80, 6)
	events, err := client.ListEvents(context.Background(), &adminv1.ListEventsRequest{Service: "greeter"})
	must(t, err)
	if !slices.ContainsFunc(events.Events, func(e *adminv1.Event) bool { return e.Kind == "weights-set" && e.By == "ops" }) {
		t.Errorf("the journal after a restart lacks the override: %v", events.Events)
	}

	writeFile(t, env.policyFile, greeterPolicy("100", "0"))
	until(t, "the policy change to end the override", func() bool {
		r, err := client.GetRollout(context.Background(), &adminv1.GetRolloutRequest{Service: "greeter"})
		return err == nil && r.Override == nil && r.Weights["v1"] == 10000
	})
}

// silentProxy subscribes to greeter's routes, as a gRPC client of greeter
// does, and never ACKs what it is sent.
func silentProxy(t *testing.T, addr, node string) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); conn.Close() })
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	must(t, err)
	must(t, stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: node, UserAgentName: "gRPC Go"},
		TypeUrl: resourcev3.RouteType, ResourceNames: []string{snapshot.ServiceRouteConfigName("greeter")}}))
	go func() {
		for {
			if _, err := stream.Recv(); err != nil {
				return
			}
		}
	}()
}

func TestAdminListProxies(t *testing.T) {
	env, client := newAdminEnv(t, greeterPolicy("90", "10"))
	env.share(t, 10) // the xDS client connects and ACKs
	nackRoutes(t, env.w.xdsAddr, "nacking-proxy")
	silentProxy(t, env.w.xdsAddr, "silent-proxy")
	var proxies map[string]*adminv1.Proxy
	until(t, "three proxies with their verdicts", func() bool {
		resp, err := client.ListProxies(context.Background(), &adminv1.ListProxiesRequest{})
		must(t, err)
		proxies = map[string]*adminv1.Proxy{}
		for _, p := range resp.Proxies {
			proxies[p.NodeId] = p
		}
		return proxies["rollout-client"].GetVerdict() == admin.Synced && proxies["nacking-proxy"].GetVerdict() == admin.Nacked &&
			proxies["silent-proxy"].GetVerdict() == admin.Stale && proxies["silent-proxy"].Types[0].VersionSent != ""
	})
	nack := proxies["nacking-proxy"]
	if len(nack.Types) != 1 || nack.Types[0].Type != "RouteConfiguration" || nack.Types[0].LastNackError != "route rejected by test" ||
		nack.Kind != "grpc" || nack.Address == "" || nack.ConnectedSince == nil {
		t.Errorf("nacking proxy: %v", nack)
	}
	if c := proxies["rollout-client"]; len(c.Types) != 4 {
		t.Errorf("the xDS client holds %d types, want 4: %v", len(c.Types), c.Types)
	}
}

func TestAdminDiffAppliesNothing(t *testing.T) {
	env, client := newAdminEnv(t, greeterPolicy("90", "10"))
	until(t, "90/10 applied", func() bool { return env.w.srv.engine.RoutingApplied("greeter") })
	version := env.w.srv.publisher.Current().Version
	resp, err := client.Diff(context.Background(), &adminv1.DiffRequest{Files: map[string]string{
		"greeter.yaml": greeterPolicy("50", "50")}})
	must(t, err)
	if len(resp.Errors) != 0 || len(resp.Services) != 1 {
		t.Fatalf("Diff = %v, want greeter's change only", resp)
	}
	d := resp.Services[0]
	if d.Service != "greeter" || d.WeightsBefore["v2"] != 1000 || d.WeightsAfter["v2"] != 5000 || d.StrategyAfter != "fixed" ||
		len(d.RoutesChanged) != 1 || len(d.ClustersAdded)+len(d.ClustersRemoved) != 0 {
		t.Errorf("greeter's diff: %v, want 90/10 → 50/50 with one route changed", d)
	}
	if got := env.w.srv.engine.Routing().Map()["greeter"].Weights.String(); got != "v1=90 v2=10" || env.w.srv.publisher.Current().Version != version {
		t.Errorf("Diff applied something: routing %s, snapshot %s (was %s)", got, env.w.srv.publisher.Current().Version, version)
	}
}

func TestServeRefusesExposureWithoutCredentials(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(*serveConfig)
		want string
	}{
		{"admin", func(c *serveConfig) { c.AdminAddr = "0.0.0.0:0" }, "--admin-addr 0.0.0.0:0 listens beyond loopback without credentials"},
		{"admin, no host", func(c *serveConfig) { c.AdminAddr = ":0" }, "--admin-token-file"},
		{"xds", func(c *serveConfig) { c.XDSAddr = "0.0.0.0:0" }, "--xds-addr 0.0.0.0:0 listens beyond loopback without TLS"},
		{"half TLS", func(c *serveConfig) { c.XDSTLS.Cert = "x.pem" }, "--xds-tls-cert and --xds-tls-key go together"},
		{"bad tokens", func(c *serveConfig) { c.Admin.TokenFile = filepath.Join(t.TempDir(), "none") }, "--admin-token-file"},
		{"tokens in clear", func(c *serveConfig) {
			c.AdminAddr = "0.0.0.0:0"
			c.Admin.TokenFile = "../../examples/quickstart/admin-token"
		}, "--admin-addr 0.0.0.0:0 listens beyond loopback without TLS"},
	} {
		cfg := testConfig("")
		cfg.Catalog = "unused.yaml"
		tt.edit(&cfg)
		_, err := newServer(cfg, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: newServer = %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}

// writeCerts writes a CA, a server certificate for 127.0.0.1 and its key
// to dir, and returns their paths and a client certificate signed by the
// CA.
func writeCerts(t *testing.T, dir string) (tlsFiles, tls.Certificate, *x509.CertPool) {
	t.Helper()
	ca := testca.New(t, "test CA")
	file := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		must(t, os.WriteFile(path, data, 0o600))
		return path
	}
	cert, key := ca.Server(t, "weir").PEM(t)
	files := tlsFiles{Cert: file("server.pem", cert), Key: file("server-key.pem", key), ClientCA: file("ca.pem", ca.PEM())}
	return files, ca.Client(t, "proxy").Certificate, ca.Pool()
}

// firstClusters opens an ADS stream with creds and waits for the first
// CDS response.
func firstClusters(t *testing.T, addr string, creds credentials.TransportCredentials) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	must(t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	err = stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "tls-proxy", UserAgentName: "envoy"}, TypeUrl: resourcev3.ClusterType})
	if err != nil {
		return err
	}
	_, err = stream.Recv()
	return err
}

func TestXDSOverMutualTLS(t *testing.T) {
	files, clientCert, roots := writeCerts(t, t.TempDir())
	port := startBackend(t, "greeter-v1-a", "v1")
	dir := t.TempDir()
	catalog := filepath.Join(dir, "catalog.yaml")
	writeFile(t, catalog, fmt.Sprintf("services:\n  - name: greeter\n    instances:\n      - {id: a, address: 127.0.0.1, port: %d, version: v1}\n", port))
	cfg := testConfig("")
	cfg.Catalog, cfg.XDSTLS = catalog, files
	w := startWeirWith(t, cfg)
	until(t, "/readyz to answer 200", func() bool { code, _ := w.readyz(t); return code == 200 })

	good := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{clientCert}, RootCAs: roots, MinVersion: tls.VersionTLS12})
	if err := firstClusters(t, w.xdsAddr, good); err != nil {
		t.Errorf("xDS over mTLS with a valid client certificate: %v", err)
	}
	noCert := credentials.NewTLS(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
	if err := firstClusters(t, w.xdsAddr, noCert); err == nil {
		t.Error("xDS over TLS without a client certificate was served")
	}
	if err := firstClusters(t, w.xdsAddr, insecure.NewCredentials()); err == nil {
		t.Error("plaintext xDS was served by a TLS listener")
	}
}

// TestServeAdminRefusesWithoutCredentials checks the refusals through weir
// serve's own wiring: no token, a wrong token, and reflection without a
// token are all Unauthenticated; health needs no credentials.
func TestServeAdminRefusesWithoutCredentials(t *testing.T) {
	env, _ := newAdminEnv(t, greeterPolicy("90", "10"))
	conn, err := grpc.NewClient(env.w.srv.adminLis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	must(t, err)
	t.Cleanup(func() { conn.Close() })
	client := adminv1.NewAdminServiceClient(conn)
	ctx := context.Background()
	if _, err := client.ListRollouts(ctx, &adminv1.ListRolloutsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no token: %v, want Unauthenticated", err)
	}
	bad := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer not-the-token")
	if _, err := client.ListRollouts(bad, &adminv1.ListRolloutsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("wrong token: %v, want Unauthenticated", err)
	}
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	must(t, err)
	// The server may refuse the stream before the request is even sent
	// (Send then fails with EOF); either way Recv reports why.
	_ = stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
	if _, err := stream.Recv(); status.Code(err) != codes.Unauthenticated {
		t.Errorf("reflection without a token: %v, want Unauthenticated", err)
	}
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("health without a token: %v, want it served", err)
	}
}

// TestServeAdminOffWarnsOfNoCredentials checks that the start-up log warns
// that the admin API refuses every call only when there is one: with
// --admin-addr "" nothing listens, and the warning sent operators looking
// for credentials that nothing needs.
func TestServeAdminOffWarnsOfNoCredentials(t *testing.T) {
	for _, tt := range []struct {
		adminAddr string
		warn      bool
	}{{"", false}, {"127.0.0.1:0", true}} {
		var logs strings.Builder
		cfg := testConfig("")
		cfg.Catalog, cfg.AdminAddr = "../../examples/quickstart/catalog.yaml", tt.adminAddr
		srv, err := newServer(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
		must(t, err)
		for _, lis := range []net.Listener{srv.xdsLis, srv.opsLis, srv.adminLis} {
			if lis != nil {
				lis.Close()
			}
		}
		if got := strings.Contains(logs.String(), "refuses every call"); got != tt.warn {
			t.Errorf("--admin-addr %q without credentials: warned %v, want %v; log:\n%s", tt.adminAddr, got, tt.warn, logs.String())
		}
	}
}

// TestCtlNotSavedIsNotUnreachable closes the state store under a running
// weir, so that no operation can be saved, and checks that weir ctl says
// so with its own exit code: it used to report "cannot reach weir" (exit 7)
// while weir was answering.
func TestCtlNotSavedIsNotUnreachable(t *testing.T) {
	env, _ := newAdminEnv(t, greeterPolicy("90", "10"))
	must(t, env.w.srv.store.Close()) // Run's own Close of it is then a no-op
	tokens := filepath.Join(t.TempDir(), "tokens")
	writeFile(t, tokens, "ops:tok-ops\n")
	ctlEnv(t)
	_, stderr, err := runWeir(t, "ctl", "--addr", env.w.srv.adminLis.Addr().String(), "--token-file", tokens,
		"set-weights", "greeter", "v1=50", "v2=50", "--reason", "even split")
	if got := ctlExitCode(err); got != ctlExitNotSaved || strings.Contains(stderr, "cannot reach") ||
		!strings.Contains(stderr, "could not be saved") {
		t.Errorf("set-weights with a closed store: exit code %d, stderr %q; want %d and the save named", got, stderr, ctlExitNotSaved)
	}
	if got := env.w.srv.engine.Routing().Map()["greeter"].Weights.String(); got != "v1=90 v2=10" {
		t.Errorf("routing after a refused save: %s, want v1=90 v2=10", got)
	}
}
