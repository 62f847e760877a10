package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/weir-mesh/weir/discovery/file"
	"github.com/weir-mesh/weir/policy"
	"github.com/weir-mesh/weir/xds"
)

// serveConfig is everything `weir serve` is configured with.
type serveConfig struct {
	XDSAddr        string
	OpsAddr        string
	Catalog        string
	Policies       string
	SidecarAddress string
	SidecarPort    uint32
	Debounce       time.Duration
	LogLevel       slog.Level
}

func newServeCommand() *cobra.Command {
	cfg := serveConfig{}
	var logLevel string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve xDS to Envoy sidecars and proxyless gRPC clients",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.LogLevel.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			if cfg.Catalog == "" {
				return errors.New("--catalog is required: weir's embedded discovery source is a catalog file (see examples/quickstart/catalog.yaml)")
			}
			logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
			srv, err := newServer(cfg, logger)
			if err != nil {
				return err
			}
			return srv.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.XDSAddr, "xds-addr", "127.0.0.1:18000", "address to serve xDS (ADS) on")
	f.StringVar(&cfg.OpsAddr, "ops-addr", "127.0.0.1:18080", "address to serve /healthz, /readyz and /metrics on")
	f.StringVar(&cfg.Catalog, "catalog", "", "catalog file listing services and instances (watched)")
	f.StringVar(&cfg.Policies, "policies", "", "directory of policy files, one per service (watched); none means no policies")
	f.StringVar(&cfg.SidecarAddress, "sidecar-address", "127.0.0.1", "address of the Envoy sidecar's outbound listener")
	f.Uint32Var(&cfg.SidecarPort, "sidecar-port", 15001, "port of the Envoy sidecar's outbound listener")
	f.DurationVar(&cfg.Debounce, "debounce", 50*time.Millisecond, "how long to gather changes before pushing (bounds the delay of the first change)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// server is a wired `weir serve`: listeners bound, components built.
type server struct {
	cfg       serveConfig
	logger    *slog.Logger
	xdsLis    net.Listener
	opsLis    net.Listener
	registry  *prometheus.Registry
	cache     *xds.Cache
	tracker   *xds.Tracker
	publisher *xds.Publisher
}

// newServer binds the listeners and builds the components.
func newServer(cfg serveConfig, logger *slog.Logger) (*server, error) {
	s := &server{cfg: cfg, logger: logger, registry: prometheus.NewRegistry(), cache: xds.NewCache()}
	s.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := xds.NewMetrics(s.registry, func() float64 { return s.publisher.SnapshotAge() })
	s.tracker = xds.NewTracker(logger, metrics)
	s.publisher = xds.NewPublisher(xds.PublisherConfig{
		Cache: s.cache, Metrics: metrics, Logger: logger, Debounce: cfg.Debounce,
		SidecarAddress: cfg.SidecarAddress, SidecarPort: cfg.SidecarPort,
	})
	var err error
	if s.xdsLis, err = net.Listen("tcp", cfg.XDSAddr); err != nil {
		return nil, fmt.Errorf("--xds-addr: %w", err)
	}
	if s.opsLis, err = net.Listen("tcp", cfg.OpsAddr); err != nil {
		s.xdsLis.Close()
		return nil, fmt.Errorf("--ops-addr: %w", err)
	}
	return s, nil
}

// Run serves until ctx is done, then shuts everything down.
func (s *server) Run(ctx context.Context) error {
	s.logger.Info("weir starting", "version", buildVersion(), "xds", s.xdsLis.Addr().String(),
		"ops", s.opsLis.Addr().String(), "discovery", "catalog file "+s.cfg.Catalog, "policies", s.cfg.Policies)
	g, ctx := errgroup.WithContext(ctx)
	gs := xds.NewGRPCServer(ctx, s.cache, s.tracker)
	g.Go(func() error { return s.publisher.Run(ctx) })
	g.Go(func() error { return (&file.Source{Path: s.cfg.Catalog, Logger: s.logger}).Run(ctx, s.publisher) })
	g.Go(func() error { return s.watchPolicies(ctx) })
	g.Go(func() error { return xds.Serve(ctx, gs, s.xdsLis) })
	g.Go(func() error { return serveOps(ctx, s.opsLis, s.registry, s.publisher) })
	err := g.Wait()
	s.logger.Info("weir stopped")
	return err
}

// watchPolicies feeds the policy directory to the publisher; without a
// directory there are no policies and every service spreads its traffic.
func (s *server) watchPolicies(ctx context.Context) error {
	if s.cfg.Policies == "" {
		s.publisher.SetPolicies(policy.Set{}, nil)
		return nil
	}
	w := &policy.Watcher{Dir: s.cfg.Policies, Logger: s.logger}
	return w.Run(ctx, s.publisher.SetPolicies)
}
