package xds

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	sotw "github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// Limits for the xDS gRPC server. A full snapshot for thousands of services
// exceeds gRPC's default 4 MiB receive limit on clients; the server's own
// receive limit only has to hold requests, but the send limit and client
// settings are documented together in the README.
const (
	maxRecvMsgSize = 16 << 20
	maxSendMsgSize = 128 << 20
	// Long-lived ADS streams go quiet between pushes: ping so that dead
	// peers are noticed, and let clients ping us no more than every 10 s.
	keepaliveTime    = 30 * time.Second
	keepaliveTimeout = 10 * time.Second
	minClientPing    = 10 * time.Second
)

// NewGRPCServer returns a gRPC server with weir's xDS services registered:
// ADS (state of the world and delta) and the per-type CDS, EDS, LDS and RDS.
// ctx bounds the xDS streams: when it is done, every stream ends.
func NewGRPCServer(ctx context.Context, cache *Cache, tracker *Tracker, opts ...grpc.ServerOption) *grpc.Server {
	opts = append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxRecvMsgSize),
		grpc.MaxSendMsgSize(maxSendMsgSize),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: keepaliveTime, Timeout: keepaliveTimeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: minClientPing, PermitWithoutStream: true}),
		grpc.ForceServerCodecV2(newResponseCodec()),
	}, opts...)
	gs := grpc.NewServer(opts...)
	tracker.onDeltaOwed = cache.owe
	// Ordered ADS sends one stream's responses in the order the cache
	// produces them (clusters, endpoints, listeners, routes); without it
	// go-control-plane picks among ready types at random.
	xs := serverv3.NewServer(ctx, cache, tracker, sotw.WithOrderedADS())
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, xs)
	clusterservice.RegisterClusterDiscoveryServiceServer(gs, xs)
	endpointservice.RegisterEndpointDiscoveryServiceServer(gs, xs)
	listenerservice.RegisterListenerDiscoveryServiceServer(gs, xs)
	routeservice.RegisterRouteDiscoveryServiceServer(gs, xs)
	return gs
}

// DefaultGracePeriod is how long Serve lets in-flight responses be written
// once ctx is done, before it closes the connections still open. A proxy
// that has stopped reading never opens its flow-control window again, so
// the bytes queued for it would hold a graceful stop, and weir, forever.
const DefaultGracePeriod = 3 * time.Second

// ServeOptions configures Serve. Its zero value is ready for use.
type ServeOptions struct {
	// GracePeriod bounds the graceful stop; 0 is DefaultGracePeriod.
	GracePeriod time.Duration
	// Logger reports connections closed when the grace period ran out;
	// nil discards.
	Logger *slog.Logger
}

// Serve serves gs on lis until ctx is done, then stops it gracefully: the
// xDS streams end with ctx, so GracefulStop returns once in-flight
// responses are written, or after the grace period, when what is still
// open is closed.
func Serve(ctx context.Context, gs *grpc.Server, lis net.Listener, opts ServeOptions) error {
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		stopWithin(gs, opts)
		if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return err
		}
		return nil
	}
}

// stopWithin stops gs gracefully, and hard once the grace period has
// passed.
func stopWithin(gs *grpc.Server, opts ServeOptions) {
	grace := cmp.Or(opts.GracePeriod, DefaultGracePeriod)
	done := make(chan struct{})
	go func() {
		gs.GracefulStop()
		close(done)
	}()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		if opts.Logger != nil {
			opts.Logger.Warn("xDS responses not written within the grace period: closing the connections of proxies that stopped reading",
				"grace", grace)
		}
		gs.Stop() // GracefulStop returns once Stop has closed every connection
		<-done
	}
}
