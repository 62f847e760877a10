// Package admin serves weir's gRPC admin API (weir.admin.v1, generated in
// policy/admin/v1) over the rollout engine: operators read rollouts, change
// weights, drive rollouts, see what every proxy applied and preview policy
// changes.
//
// The owner model: the policy file is the base. An API override of the
// weights is recorded with who made it and why, and lasts until the next
// step, a promote, an abort or a change of that service's policy file;
// GetRollout shows it while it is in force.
//
// The package knows xDS only through Fleet and Planner, small interfaces
// that cmd/weir implements over package xds and snapshot.
package admin

import (
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/weir-mesh/weir/policy"
	adminv1 "github.com/weir-mesh/weir/policy/admin/v1"
)

// Fleet is what the admin API needs from the xDS server: the connected
// proxies, and what each should hold now.
type Fleet interface {
	// Proxies returns every connected proxy, sorted by node id.
	Proxies() []Proxy
	// VersionFor returns the version a proxy of kind (KindEnvoy, KindGRPC)
	// subscribed to names of typeURL (or to all, when wildcard) should
	// hold now.
	VersionFor(typeURL, kind string, names []string, wildcard bool) string
	// AppliedFraction is the fraction of the connected proxies that
	// subscribed to something which hold, for every type, what they
	// should hold, as the publisher last saw them: what it gates on, and
	// free for an admin call even at fleet scale. It is 1 with none
	// connected, but 0 while a weir restarted mid-rollout waits for its
	// fleet to reconnect.
	AppliedFraction() float64
}

// Proxy kinds.
const (
	KindEnvoy = "envoy"
	KindGRPC  = "grpc"
)

// Proxy is one connected xDS stream.
type Proxy struct {
	NodeID      string
	Cluster     string
	Address     string
	Kind        string // KindEnvoy or KindGRPC
	ConnectedAt time.Time
	Types       map[string]TypeState // by type URL
}

// TypeState is what a proxy was sent of one resource type and what it did
// with it.
type TypeState struct {
	Names    []string // subscribed names; Wildcard means all
	Wildcard bool
	Sent     string // version of the last response
	Acked    string // version last reported as applied
	Nack     *Nack  // the last rejection, kept after later ACKs
}

// Nack is a rejected response.
type Nack struct {
	Version string
	Error   string
}

// Planner tells which clusters and routes a snapshot built from the current
// discovery model would hold for a routing, for Diff.
type Planner interface {
	Plan(routing map[string]policy.Routing) (map[string]ServicePlan, error)
}

// ServicePlan is one service's part of a snapshot.
type ServicePlan struct {
	Clusters []string          // cluster names, sorted
	Routes   map[string]string // route name → a deterministic rendering of it
}

// Config configures a Server.
type Config struct {
	Engine *policy.Engine
	// Fleet reports proxies; nil means none are connected.
	Fleet Fleet
	// Planner computes clusters and routes for Diff; nil reports weights
	// and strategies only.
	Planner Planner
	Logger  *slog.Logger
	// Clock is the time source (default time.Now).
	Clock func() time.Time
	// WatchInterval is how often WatchRollouts looks for changes
	// (default 200 ms).
	WatchInterval time.Duration
}

// Server implements adminv1.AdminServiceServer.
type Server struct {
	adminv1.UnimplementedAdminServiceServer
	cfg Config
}

var _ adminv1.AdminServiceServer = (*Server)(nil)

// NewServer returns a Server over cfg.Engine.
func NewServer(cfg Config) *Server {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.WatchInterval <= 0 {
		cfg.WatchInterval = 200 * time.Millisecond
	}
	return &Server{cfg: cfg}
}

// Register adds the admin service, gRPC health and server reflection to gs.
func (s *Server) Register(gs *grpc.Server) {
	adminv1.RegisterAdminServiceServer(gs, s)
	hs := health.NewServer()
	hs.SetServingStatus(adminv1.AdminService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)
}
