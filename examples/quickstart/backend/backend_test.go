package backend_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/weir-mesh/weir/examples/quickstart/backend"
)

const testTimeout = 10 * time.Second

// start runs a backend on a loopback port and returns a client connection to
// it, the function that stops it and the channel Serve's result arrives on.
func start(t *testing.T, id, version string) (*grpc.ClientConn, context.CancelFunc, <-chan error) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- backend.Serve(ctx, lis, id, version) }()
	t.Cleanup(cancel)

	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc, cancel, errc
}

func TestServeAnswersUnaryCall(t *testing.T) {
	cc, _, _ := start(t, "greeter-v2-a", "v2")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	got, err := testpb.NewTestServiceClient(cc).UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatalf("UnaryCall: %v", err)
	}
	want := &testpb.SimpleResponse{ServerId: "greeter-v2-a", Hostname: "v2"}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("UnaryCall response (-want +got):\n%s", diff)
	}
}

func TestServeReportsHealthy(t *testing.T) {
	cc, _, _ := start(t, "greeter-v1-a", "v1")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	hc := healthpb.NewHealthClient(cc)
	for _, service := range []string{"", testpb.TestService_ServiceDesc.ServiceName} {
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: service}, grpc.WaitForReady(true))
		if err != nil {
			t.Fatalf("Check(%q): %v", service, err)
		}
		if got := resp.GetStatus(); got != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("Check(%q) = %v, want SERVING", service, got)
		}
	}
}

func TestServeStopsWhenContextDone(t *testing.T) {
	cc, stop, errc := start(t, "greeter-v1-b", "v1")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	client := testpb.NewTestServiceClient(cc)
	if _, err := client.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("UnaryCall before stop: %v", err)
	}
	stop()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Serve returned %v after its context was cancelled, want nil", err)
		}
	case <-ctx.Done():
		t.Fatal("Serve did not return after its context was cancelled")
	}
	// Without WaitForReady the call fails fast once the server is gone.
	_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
	if got := status.Code(err); got != codes.Unavailable {
		t.Errorf("UnaryCall after stop: code %v (%v), want Unavailable", got, err)
	}
}

func TestServeRejectsEmptyIdentity(t *testing.T) {
	for _, tc := range []struct{ id, version string }{{"", "v1"}, {"greeter-v1-a", ""}} {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if err := backend.Serve(context.Background(), lis, tc.id, tc.version); err == nil {
			t.Errorf("Serve(id %q, version %q) = nil, want an error", tc.id, tc.version)
		}
	}
}
