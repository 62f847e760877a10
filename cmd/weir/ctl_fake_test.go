package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/weir-mesh/weir/policy/admin/v1"
)

// ctlFakeToken is the only bearer token the fake admin server accepts.
const ctlFakeToken = "s3cret-token"

// ctlFake is an admin server returning fixed data, for the CLI's tests. It
// records what it was asked so tests can check what the CLI sent.
type ctlFake struct {
	adminv1.UnimplementedAdminServiceServer

	mu         sync.Mutex
	auth       []string // authorization metadata of every call
	setWeights *adminv1.SetWeightsRequest
	operation  *adminv1.OperationRequest
	diffFiles  map[string]string
}

// startCtlFake serves a ctlFake on loopback and returns its address.
func startCtlFake(t *testing.T) (*ctlFake, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fake := &ctlFake{}
	srv := grpc.NewServer(grpc.UnaryInterceptor(fake.unaryAuth), grpc.StreamInterceptor(fake.streamAuth))
	adminv1.RegisterAdminServiceServer(srv, fake)
	go srv.Serve(lis) //nolint:errcheck // ends with Stop
	t.Cleanup(srv.Stop)
	return fake, lis.Addr().String()
}

func (f *ctlFake) check(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	got := strings.Join(md.Get("authorization"), ",")
	f.mu.Lock()
	f.auth = append(f.auth, got)
	f.mu.Unlock()
	if got != "Bearer "+ctlFakeToken {
		return status.Error(codes.Unauthenticated, "missing or invalid bearer token")
	}
	return nil
}

func (f *ctlFake) unaryAuth(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := f.check(ctx); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (f *ctlFake) streamAuth(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := f.check(ss.Context()); err != nil {
		return err
	}
	return h(srv, ss)
}

func ctlTS(hhmmss string) *timestamppb.Timestamp {
	t, err := time.Parse(time.RFC3339, "2026-03-14T"+hhmmss+"Z")
	if err != nil {
		panic(err)
	}
	return timestamppb.New(t)
}

func ctlFakeEvents() []*adminv1.Event {
	// Newest first, as a journal might answer: the CLI sorts.
	return []*adminv1.Event{
		{At: ctlTS("10:02:00"), Service: "greeter", Kind: "step", By: "weir", Message: "step 2: v2 at 20%"},
		{At: ctlTS("10:01:00"), Service: "checkout", Kind: "policy", By: "weir", Message: "policy loaded: fixed v1"},
		{At: ctlTS("10:00:00"), Service: "greeter", Kind: "start", By: "weir", Message: "canary v1 → v2 started"},
	}
}

func ctlFakeGreeter() *adminv1.Rollout {
	return &adminv1.Rollout{
		Service: "greeter", Strategy: "canary", Phase: "progressing", Step: 2,
		OldVersion: "v1", NewVersion: "v2",
		Weights: map[string]uint32{"v2": 2000, "v1": 8000},
		Applied: true, AppliedFraction: 1,
		HealthyEndpoints: map[string]uint32{"v1": 3, "v2": 1},
		StepSince:        ctlTS("10:02:00"),
		TimeInStep:       durationpb.New(90 * time.Second),
		Events:           []*adminv1.Event{ctlFakeEvents()[0], ctlFakeEvents()[2]},
	}
}

func ctlFakeCheckout() *adminv1.Rollout {
	return &adminv1.Rollout{
		Service: "checkout", Strategy: "fixed",
		Weights: map[string]uint32{"v1": 10000},
		Applied: true, AppliedFraction: 1,
		HealthyEndpoints: map[string]uint32{"v1": 2},
	}
}

func (f *ctlFake) ListRollouts(context.Context, *adminv1.ListRolloutsRequest) (*adminv1.ListRolloutsResponse, error) {
	return &adminv1.ListRolloutsResponse{Rollouts: []*adminv1.Rollout{ctlFakeGreeter(), ctlFakeCheckout()}}, nil
}

func (f *ctlFake) GetRollout(_ context.Context, req *adminv1.GetRolloutRequest) (*adminv1.Rollout, error) {
	switch req.GetService() {
	case "greeter":
		return ctlFakeGreeter(), nil
	case "checkout":
		return ctlFakeCheckout(), nil
	}
	return nil, status.Errorf(codes.NotFound, "service %q has no rollout; known: checkout, greeter", req.GetService())
}

func (f *ctlFake) SetWeights(_ context.Context, req *adminv1.SetWeightsRequest) (*adminv1.Rollout, error) {
	f.mu.Lock()
	f.setWeights = req
	f.mu.Unlock()
	if req.GetService() != "greeter" {
		return nil, status.Errorf(codes.NotFound, "service %q has no rollout", req.GetService())
	}
	if _, ok := req.GetWeights()["v3"]; ok {
		return nil, status.Error(codes.InvalidArgument, "weights.v3: version v3 has no healthy endpoints")
	}
	r := ctlFakeGreeter()
	r.Weights = map[string]uint32{"v1": 9000, "v2": 1000}
	r.Override = &adminv1.Override{Weights: r.Weights, By: "alice", Reason: req.GetReason(), At: ctlTS("10:03:00")}
	return r, nil
}

func (f *ctlFake) Promote(_ context.Context, req *adminv1.OperationRequest) (*adminv1.Rollout, error) {
	f.mu.Lock()
	f.operation = req
	f.mu.Unlock()
	if req.GetService() == "checkout" {
		return nil, status.Error(codes.FailedPrecondition, "checkout: nothing in progress to promote")
	}
	r := ctlFakeGreeter()
	r.Phase, r.Weights = "promoted", map[string]uint32{"v2": 10000}
	return r, nil
}

// Pause fails as weir does when it cannot save its rollout state.
func (f *ctlFake) Pause(_ context.Context, req *adminv1.OperationRequest) (*adminv1.Rollout, error) {
	return nil, status.Errorf(codes.Aborted, "%s: rollout state could not be saved: disk full", req.GetService())
}

func (f *ctlFake) Abort(_ context.Context, req *adminv1.OperationRequest) (*adminv1.Rollout, error) {
	f.mu.Lock()
	f.operation = req
	f.mu.Unlock()
	r := ctlFakeGreeter()
	r.Phase, r.Reason, r.Weights = "aborted", req.GetReason(), map[string]uint32{"v1": 10000}
	return r, nil
}

func (f *ctlFake) WatchRollouts(_ *adminv1.WatchRolloutsRequest, stream grpc.ServerStreamingServer[adminv1.RolloutUpdate]) error {
	first := &adminv1.RolloutUpdate{Rollouts: []*adminv1.Rollout{ctlFakeGreeter(), ctlFakeCheckout()}}
	g := ctlFakeGreeter()
	g.Step, g.Weights, g.Applied, g.AppliedFraction = 3, map[string]uint32{"v1": 5000, "v2": 5000}, false, 0.5
	second := &adminv1.RolloutUpdate{
		Rollouts: []*adminv1.Rollout{g, ctlFakeCheckout()},
		Events:   []*adminv1.Event{{At: ctlTS("10:05:00"), Service: "greeter", Kind: "step", By: "weir", Message: "step 3: v2 at 50%"}},
	}
	for _, u := range []*adminv1.RolloutUpdate{first, second} {
		if err := stream.Send(u); err != nil {
			return err
		}
	}
	return nil
}

func (f *ctlFake) ListProxies(context.Context, *adminv1.ListProxiesRequest) (*adminv1.ListProxiesResponse, error) {
	const v1, v2 = "3f9a2c1d7e6b5a40", "8c1e44b0a9d2f713"
	synced := func(typ string) *adminv1.TypeStatus {
		return &adminv1.TypeStatus{Type: typ, VersionSent: v2, VersionAcked: v2, Verdict: "SYNCED"}
	}
	return &adminv1.ListProxiesResponse{Proxies: []*adminv1.Proxy{
		{
			NodeId: "sidecar-greeter-1", Cluster: "greeter", Address: "10.0.0.7:51234", Kind: "envoy",
			ConnectedSince: ctlTS("09:00:00"), Verdict: "STALE",
			Types: []*adminv1.TypeStatus{
				synced("RouteConfiguration"), synced("Listener"), synced("Cluster"),
				{Type: "ClusterLoadAssignment", VersionSent: v2, VersionAcked: v1, Verdict: "STALE"},
			},
		},
		{
			NodeId: "frontend-grpc-0", Cluster: "frontend", Address: "10.0.0.9:40000", Kind: "grpc",
			ConnectedSince: ctlTS("09:30:00"), Verdict: "NACKED",
			Types: []*adminv1.TypeStatus{
				{Type: "type.googleapis.com/envoy.config.cluster.v3.Cluster", VersionSent: v2, VersionAcked: v1,
					LastNackVersion: v2, LastNackError: "cluster greeter|v2: unsupported lb_policy", Verdict: "NACKED"},
				synced("Listener"), synced("RouteConfiguration"),
			},
		},
	}}, nil
}

func (f *ctlFake) Diff(_ context.Context, req *adminv1.DiffRequest) (*adminv1.DiffResponse, error) {
	f.mu.Lock()
	f.diffFiles = req.GetFiles()
	f.mu.Unlock()
	unchanged := &adminv1.ServiceDiff{Service: "checkout", StrategyBefore: "fixed", StrategyAfter: "fixed",
		WeightsBefore: map[string]uint32{"v1": 10000}, WeightsAfter: map[string]uint32{"v1": 10000}}
	if _, ok := req.GetFiles()["bad.yaml"]; ok {
		return &adminv1.DiffResponse{Errors: []string{"bad.yaml:3: weights: weights sum to 110, must be 100"}}, nil
	}
	if _, ok := req.GetFiles()["greeter.yaml"]; !ok {
		return &adminv1.DiffResponse{Services: []*adminv1.ServiceDiff{unchanged}}, nil
	}
	return &adminv1.DiffResponse{Services: []*adminv1.ServiceDiff{
		{
			Service: "greeter", StrategyBefore: "canary", StrategyAfter: "fixed",
			WeightsBefore: map[string]uint32{"v1": 8000, "v2": 2000}, WeightsAfter: map[string]uint32{"v1": 9000, "v2": 1000},
			RoutesChanged: []string{"greeter"}, ClustersAdded: []string{"greeter|v3"},
		},
		unchanged,
	}}, nil
}

func (f *ctlFake) ListEvents(_ context.Context, req *adminv1.ListEventsRequest) (*adminv1.ListEventsResponse, error) {
	events := slices.DeleteFunc(ctlFakeEvents(), func(e *adminv1.Event) bool {
		return req.GetService() != "" && e.GetService() != req.GetService()
	})
	if n := int(req.GetLimit()); n > 0 && n < len(events) {
		events = events[:n] // the newest n
	}
	return &adminv1.ListEventsResponse{Events: events}, nil
}

// startCtlFakeMTLS is startCtlFake behind TLS that requires a client
// certificate signed by the CA of files (see writeCerts), as weir serve's
// admin API with --admin-client-ca does.
func startCtlFakeMTLS(t *testing.T, files tlsFiles) string {
	t.Helper()
	serverCert, err := tls.LoadX509KeyPair(files.Cert, files.Key)
	must(t, err)
	caPEM, err := os.ReadFile(files.ClientCA)
	must(t, err)
	clientCAs := x509.NewCertPool()
	clientCAs.AppendCertsFromPEM(caPEM)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{serverCert},
		ClientCAs: clientCAs, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12})))
	adminv1.RegisterAdminServiceServer(srv, &ctlFake{})
	go srv.Serve(lis) //nolint:errcheck // ends with Stop
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}
