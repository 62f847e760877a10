// Package backend is the quickstart's demo service: a gRPC server that answers
// grpc.testing.TestService/UnaryCall with its instance id (ServerId) and its
// version (Hostname), so a client can count how weir splits traffic between
// versions and instances. It also serves the standard health service.
//
// The package is deliberately small and depends only on grpc-go, because
// end-to-end tests start it next to the control plane.
package backend

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

// DrainTimeout bounds how long Serve waits for in-flight RPCs after ctx is
// done. GracefulStop alone would wait forever for a client that holds a
// stream open (a health Watch, for one), so after this long the remaining
// connections are closed.
const DrainTimeout = 5 * time.Second

// Serve answers RPCs on lis as instance id of the given version until ctx is
// done, then stops gracefully and returns nil. It returns an error if lis
// fails or if id or version is empty. Serve closes lis.
func Serve(ctx context.Context, lis net.Listener, id, version string) error {
	if id == "" || version == "" {
		lis.Close()
		return fmt.Errorf("backend: id %q and version %q must both be non-empty", id, version)
	}
	srv := grpc.NewServer()
	testpb.RegisterTestServiceServer(srv, &testService{id: id, version: version})
	hs := health.NewServer()
	hs.SetServingStatus(testpb.TestService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs) // overall status ("") starts SERVING

	served := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-ctx.Done():
		case <-served: // lis failed: close what it accepted.
			srv.Stop()
			return
		}
		// Tell health watchers first, so they stop picking this instance.
		hs.Shutdown()
		stop(srv, DrainTimeout)
	}()

	err := srv.Serve(lis)
	close(served)
	<-stopped
	if err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("backend %s: serve on %s: %w", id, lis.Addr(), err)
	}
	return nil
}

// stop drains srv, forcing the remaining connections closed after timeout.
func stop(srv *grpc.Server, timeout time.Duration) {
	done := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(done)
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		srv.Stop() // also makes the pending GracefulStop return
		<-done
	}
}

// testService implements the one TestService method the quickstart uses;
// the others answer Unimplemented.
type testService struct {
	testpb.UnimplementedTestServiceServer
	id, version string
}

func (s *testService) UnaryCall(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{ServerId: s.id, Hostname: s.version}, nil
}
