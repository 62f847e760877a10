package xds

import (
	"context"
	"errors"
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

// Serve serves gs on lis until ctx is done, then stops it gracefully: the
// xDS streams end with ctx, so GracefulStop returns once in-flight
// responses are written.
func Serve(ctx context.Context, gs *grpc.Server, lis net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		gs.GracefulStop()
		if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return err
		}
		return nil
	}
}
