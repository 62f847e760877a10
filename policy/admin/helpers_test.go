package admin

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/policy"
	adminv1 "github.com/weir-mesh/weir/policy/admin/v1"
)

const canaryFile = `service: greeter
strategy: canary
stable: v1
canary:
  version: v2
  steps:
    - setWeight: 20
    - pause: {}
`

func fixedFile(v1, v2 string) string {
	return fmt.Sprintf("service: catalog\nstrategy: fixed\nweights: {v1: %s, v2: %s}\n", v1, v2)
}

var epoch = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// testSet parses policy files named NAME.yaml from name → content.
func testSet(t *testing.T, files map[string]string) policy.Set {
	t.Helper()
	set, errs := parseCandidate(files)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return set
}

// testEngine runs greeter's canary (v1 → v2, at 20 %) and catalog's fixed
// 90/10 split over a model where catalog's v3 does not serve.
func testEngine(t *testing.T) *policy.Engine {
	t.Helper()
	e, err := policy.NewEngine(policy.EngineConfig{Clock: func() time.Time { return epoch }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	e.SetPolicies(testSet(t, map[string]string{"greeter.yaml": canaryFile, "catalog.yaml": fixedFile("90", "10")}))
	in := func(id, v string, h discovery.Health) discovery.Instance {
		return discovery.Instance{ID: id, Address: "127.0.0.1", Port: 8080, Version: v, Health: h}
	}
	m, err := discovery.NewModel([]discovery.Service{
		{Name: "greeter", Instances: []discovery.Instance{in("g1", "v1", discovery.Passing), in("g2", "v2", discovery.Passing)}},
		{Name: "catalog", Instances: []discovery.Instance{in("c1", "v1", discovery.Passing), in("c2", "v2", discovery.Passing),
			in("c3", "v3", discovery.Critical)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.ObserveModel(m)
	return e
}

// testServer serves s on loopback with auth and, if tlsCfg is set, TLS.
func testServer(t *testing.T, s *Server, auth Auth, tlsCfg *tls.Config) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts := auth.ServerOptions()
	if tlsCfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	gs := grpc.NewServer(opts...)
	s.Register(gs)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	return lis.Addr().String()
}

// tokenCreds sends a bearer token without TLS (tests only).
type tokenCreds string

func (c tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(c)}, nil
}
func (tokenCreds) RequireTransportSecurity() bool { return false }

// dial returns a client that authenticates with token ("" for none).
func dial(t *testing.T, addr, token string) adminv1.AdminServiceClient {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(tokenCreds(token)))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return adminv1.NewAdminServiceClient(conn)
}

// env is an admin server over testEngine with token "alice:secret-a".
type env struct {
	engine *policy.Engine
	client adminv1.AdminServiceClient
	addr   string
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	if cfg.Engine == nil {
		cfg.Engine = testEngine(t)
	}
	cfg.Clock = func() time.Time { return epoch.Add(time.Minute) }
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.WatchInterval = 10 * time.Millisecond
	tokens, err := ParseTokens("tokens", []byte("alice:secret-a\n"))
	if err != nil {
		t.Fatal(err)
	}
	addr := testServer(t, NewServer(cfg), Auth{Tokens: tokens}, nil)
	return &env{engine: cfg.Engine, client: dial(t, addr, "secret-a"), addr: addr}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// wantCode fails unless err has code and a message containing msg.
func wantCode(t *testing.T, what string, err error, code codes.Code, msg string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code || !contains(st.Message(), msg) {
		t.Errorf("%s: got %v %q, want %v containing %q", what, st.Code(), st.Message(), code, msg)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func healthClient(t *testing.T, addr string) healthpb.HealthClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return healthpb.NewHealthClient(conn)
}
