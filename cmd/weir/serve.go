package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/discovery/consul"
	"github.com/weir-mesh/weir/discovery/file"
	"github.com/weir-mesh/weir/envoy"
	"github.com/weir-mesh/weir/policy"
	"github.com/weir-mesh/weir/xds"
)

// serveConfig is everything `weir serve` is configured with.
type serveConfig struct {
	XDSAddr string
	OpsAddr string
	// Pprof serves Go's profiler under /debug/pprof/ on OpsAddr.
	Pprof          bool
	Catalog        string
	Policies       string
	SidecarAddress string
	SidecarPort    uint32
	Debounce       time.Duration
	AckTimeout     time.Duration
	StateDir       string
	Threshold      float64
	LogLevel       slog.Level
	Consul         consulConfig
	// AdminAddr serves the admin API; "" serves none.
	AdminAddr string
	Admin     adminConfig
	XDSTLS    tlsFiles
	// clock is the rollout engine's time source; nil is time.Now. Tests
	// move one of their own, so that a timed step ends when they say.
	clock func() time.Time
}

// adminConfig is how the admin API authenticates callers.
type adminConfig struct {
	TokenFile string
	TLS       tlsFiles
}

// consulConfig selects and configures Consul discovery.
type consulConfig struct {
	consul.ClientConfig
	VersionMetaKey   string
	VersionTagPrefix string
	ExcludeWarning   bool
	WaitTime         time.Duration
	// retryMax caps the backoff between failed queries; 0 is the
	// source's default. Tests that stop Consul shorten it.
	retryMax time.Duration
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
			if err := cfg.checkSource(); err != nil {
				return err
			}
			if err := cfg.checkRanges(); err != nil {
				return err
			}
			if err := checkPolicyDir(cfg.Policies); err != nil {
				return err
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
	f.BoolVar(&cfg.Pprof, "pprof", false, "also serve Go's profiler under /debug/pprof/ on --ops-addr, which must then be loopback (CPU and heap profiles under load)")
	f.StringVar(&cfg.Catalog, "catalog", "", "catalog file listing services and instances (watched)")
	f.StringVar(&cfg.Policies, "policies", "", "directory of policy files, one per service (watched); none means no policies")
	f.StringVar(&cfg.SidecarAddress, "sidecar-address", "127.0.0.1", "address of the Envoy sidecar's outbound listener")
	f.Uint32Var(&cfg.SidecarPort, "sidecar-port", 15001, "port of the Envoy sidecar's outbound listener, 1-65535")
	f.DurationVar(&cfg.Debounce, "debounce", 50*time.Millisecond, "the least time between builds: a change this long after the last build is pushed at once; a sooner one waits until this long after it, and, if it goes on a burst (changes less than a quarter of this apart), until the burst stops (at most 4×), then all are pushed together")
	f.DurationVar(&cfg.AckTimeout, "ack-timeout", 10*time.Second, "how long to wait for proxies to apply new routes before removing the clusters traffic moved off, "+
		"and, restarted mid-rollout, for a proxy to reconnect before counting a step applied")
	f.StringVar(&cfg.StateDir, "state-dir", "", "directory for durable rollout state and the event journal (none: kept in memory, lost on restart)")
	f.Float64Var(&cfg.Threshold, "applied-threshold", 1, "fraction of connected proxies that must hold a step before it counts as applied: more than 0, at most 1")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	addConsulFlags(f, &cfg.Consul)
	addSecurityFlags(f, &cfg)
	return cmd
}

func addSecurityFlags(f *pflag.FlagSet, cfg *serveConfig) {
	f.StringVar(&cfg.AdminAddr, "admin-addr", "127.0.0.1:18001", "address to serve the gRPC admin API on (\"\" to serve none)")
	f.StringVar(&cfg.Admin.TokenFile, "admin-token-file", "", "file of admin API bearer tokens, one per line as NAME:TOKEN (NAME is the caller's identity in the journal)")
	f.StringVar(&cfg.Admin.TLS.Cert, "admin-tls-cert", "", "certificate to serve the admin API over TLS")
	f.StringVar(&cfg.Admin.TLS.Key, "admin-tls-key", "", "private key of --admin-tls-cert")
	f.StringVar(&cfg.Admin.TLS.ClientCA, "admin-client-ca", "", "CA that admin API client certificates must be signed by (mTLS; the identity is the certificate's CN)")
	f.StringVar(&cfg.XDSTLS.Cert, "xds-tls-cert", "", "certificate to serve xDS over TLS")
	f.StringVar(&cfg.XDSTLS.Key, "xds-tls-key", "", "private key of --xds-tls-cert")
	f.StringVar(&cfg.XDSTLS.ClientCA, "xds-client-ca", "", "CA that proxies' client certificates must be signed by (xDS over mTLS)")
}

func addConsulFlags(f *pflag.FlagSet, c *consulConfig) {
	f.StringVar(&c.Address, "consul-addr", "", "discover services from the Consul agent at HOST:PORT instead of --catalog")
	f.StringVar(&c.Token, "consul-token", "", "Consul ACL token (default $CONSUL_HTTP_TOKEN)")
	f.StringVar(&c.Datacenter, "consul-datacenter", "", "Consul datacenter to watch (default: the agent's)")
	f.StringVar(&c.CAFile, "consul-ca-file", "", "CA certificate for Consul's HTTPS API (default $CONSUL_CACERT)")
	f.StringVar(&c.CertFile, "consul-cert-file", "", "client certificate for Consul (default $CONSUL_CLIENT_CERT)")
	f.StringVar(&c.KeyFile, "consul-key-file", "", "client key for Consul (default $CONSUL_CLIENT_KEY)")
	f.StringVar(&c.VersionMetaKey, "version-meta-key", "version", "service meta key holding an instance's version")
	f.StringVar(&c.VersionTagPrefix, "version-tag-prefix", "version=", "tag prefix holding an instance's version when the meta key is absent")
	f.BoolVar(&c.ExcludeWarning, "exclude-warning", false, "remove instances whose Consul checks warn (default: warning still serves)")
	f.DurationVar(&c.WaitTime, "consul-wait", 5*time.Minute, "longest wait of a Consul blocking query")
}

// checkSource makes sure exactly one discovery source is configured.
func (c serveConfig) checkSource() error {
	switch {
	case c.Catalog != "" && c.Consul.Address != "":
		return errors.New("--catalog and --consul-addr are both set: weir uses exactly one discovery source")
	case c.Catalog == "" && c.Consul.Address == "":
		return errors.New("no discovery source: give --catalog FILE (see examples/quickstart/catalog.yaml) or --consul-addr HOST:PORT")
	}
	return nil
}

// checkRanges refuses flag values that would start a weir that can never
// serve, or one that silently runs with another value than asked: a
// sidecar port beyond 65535 fails every snapshot build, Envoy rejects a
// listener whose address is a hostname, the publisher would take an
// applied threshold outside (0, 1] as 1, and a duration of 0 or less as
// its default.
func (c serveConfig) checkRanges() error {
	if err := checkPortFlag("--sidecar-port", c.SidecarPort); err != nil {
		return err
	}
	if a, err := netip.ParseAddr(c.SidecarAddress); err != nil || a.Zone() != "" {
		return fmt.Errorf("--sidecar-address %q: must be an IP literal without a zone, such as 127.0.0.1 or ::1: Envoy binds the listener to it", c.SidecarAddress)
	}
	if !(c.Threshold > 0 && c.Threshold <= 1) { // NaN too
		return fmt.Errorf("--applied-threshold %v: must be a fraction of the connected proxies, more than 0 and at most 1 (1, the default, is all of them)",
			c.Threshold)
	}
	for _, d := range []struct {
		flag  string
		value time.Duration
	}{{"--debounce", c.Debounce}, {"--ack-timeout", c.AckTimeout}, {"--consul-wait", c.Consul.WaitTime}} {
		if d.value <= 0 {
			return fmt.Errorf("%s %v: must be more than 0", d.flag, d.value)
		}
	}
	return nil
}

// checkPolicyDir refuses a --policies that is not a directory. weir does
// not start without the policies it was pointed at, unlike without its
// catalog file: with no policies, every service would spread its traffic
// over all its versions, a canary's included.
func checkPolicyDir(dir string) error {
	if dir == "" {
		return nil
	}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("--policies %s: no such directory: create it, or leave --policies out to run without policies", dir)
	case err != nil:
		return fmt.Errorf("--policies: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("--policies %s: not a directory: give the directory that holds the policy files", dir)
	}
	return nil
}

// checkPortFlag refuses a port flag's value outside 1-65535, naming the
// flag.
func checkPortFlag(flag string, port uint32) error {
	if port < 1 || port > 65535 {
		return fmt.Errorf("%s %d: must be a port, 1-65535", flag, port)
	}
	return nil
}

// engineTick is how often rollout timers are evaluated.
const engineTick = 100 * time.Millisecond

// server is a wired `weir serve`: listeners bound, components built.
type server struct {
	cfg        serveConfig
	logger     *slog.Logger
	xdsLis     net.Listener
	opsLis     net.Listener
	adminLis   net.Listener // nil without --admin-addr
	xdsOpts    []grpc.ServerOption
	adminOpts  []grpc.ServerOption
	registry   *prometheus.Registry
	cache      *xds.Cache
	tracker    *xds.Tracker
	metrics    *xds.Metrics
	publisher  *xds.Publisher
	engine     *policy.Engine
	store      *policy.Store
	source     discovery.Source
	sourceDesc string
}

// newServer binds the listeners and builds the components.
func newServer(cfg serveConfig, logger *slog.Logger) (*server, error) {
	s := &server{cfg: cfg, logger: logger, registry: prometheus.NewRegistry(), cache: xds.NewCache()}
	if err := cfg.checkExposure(); err != nil {
		return nil, err
	}
	var err error
	if s.xdsOpts, err = xdsServerOptions(cfg.XDSTLS, logger); err != nil {
		return nil, err
	}
	if s.adminOpts, err = adminServerOptions(cfg.Admin, cfg.AdminAddr != "", logger); err != nil {
		return nil, err
	}
	s.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.metrics = xds.NewMetrics(s.registry, func() float64 { return s.publisher.SnapshotAge() })
	s.tracker = xds.NewTracker(logger, s.metrics)
	if cfg.StateDir != "" {
		if s.store, err = policy.OpenStore(cfg.StateDir); err != nil {
			return nil, fmt.Errorf("--state-dir: %w", err)
		}
	}
	if s.source, s.sourceDesc, err = newSource(cfg, logger, s.registry); err != nil {
		return nil, err
	}
	status, _ := s.source.(discovery.ServiceStatusReporter) // nil for a catalog file: it has no upstream to fail
	engine, err := policy.NewEngine(policy.EngineConfig{Store: s.store, Logger: logger, Clock: cfg.clock,
		Discovery: status, OnChange: func() { s.publisher.Wake() }})
	if err != nil {
		return nil, err
	}
	s.engine = engine
	s.registry.MustRegister(xds.NewRolloutCollector(engine), prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "weir_xds_resources_marshalled_total",
		Help: "Resources marshalled by the xDS cache: once each, however many proxies receive them."},
		func() float64 { return float64(s.cache.Marshalled()) }))
	s.tracker.OnNack(func(node, typeURL, msg string) { engine.Nack(node, msg) })
	s.publisher = xds.NewPublisher(xds.PublisherConfig{
		Engine: engine, AppliedThreshold: cfg.Threshold,
		Cache: s.cache, Metrics: s.metrics, Logger: logger, Debounce: cfg.Debounce, Tracker: s.tracker, AckTimeout: cfg.AckTimeout,
		SidecarAddress: cfg.SidecarAddress, SidecarPort: cfg.SidecarPort,
	})
	if s.xdsLis, err = net.Listen("tcp", cfg.XDSAddr); err != nil {
		return nil, fmt.Errorf("--xds-addr: %w", err)
	}
	if s.opsLis, err = net.Listen("tcp", cfg.OpsAddr); err != nil {
		s.xdsLis.Close()
		return nil, fmt.Errorf("--ops-addr: %w", err)
	}
	if cfg.AdminAddr != "" {
		if s.adminLis, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
			s.xdsLis.Close()
			s.opsLis.Close()
			return nil, fmt.Errorf("--admin-addr: %w", err)
		}
	}
	return s, nil
}

// Run serves until ctx is done, then shuts everything down.
func (s *server) Run(ctx context.Context) error {
	s.logger.Info("weir starting", "version", buildVersion(), "xds", s.xdsLis.Addr().String(),
		"ops", s.opsLis.Addr().String(), "admin", s.adminAddr(), "discovery", s.sourceDesc, "policies", s.cfg.Policies,
		"generated_encoders", envoy.GeneratedEncoders())
	g, ctx := errgroup.WithContext(ctx)
	gs := xds.NewGRPCServer(ctx, s.cache, s.tracker, s.xdsOpts...)
	g.Go(func() error { return s.publisher.Run(ctx) })
	g.Go(func() error { return s.engine.Run(ctx, engineTick) })
	g.Go(func() error { return s.source.Run(ctx, s.publisher) })
	g.Go(func() error { return s.watchPolicies(ctx) })
	g.Go(func() error { return xds.Serve(ctx, gs, s.xdsLis, xds.ServeOptions{Logger: s.logger}) })
	ops := opsServer{handler: opsHandler(s.registry, s.readiness, s.cfg.Pprof), drain: opsDrain, logger: s.logger}
	g.Go(func() error { return ops.serve(ctx, s.opsLis) })
	if s.adminLis != nil {
		g.Go(func() error { return serveAdmin(ctx, s.adminLis, s.adminServer(), s.adminOpts) })
	}
	err := g.Wait()
	if s.store != nil {
		if cerr := s.store.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	s.logger.Info("weir stopped")
	return err
}

// newSource returns the one configured discovery source and a description
// of it for the start-up log.
func newSource(cfg serveConfig, logger *slog.Logger, reg prometheus.Registerer) (discovery.Source, string, error) {
	if cfg.Consul.Address == "" {
		return &file.Source{Path: cfg.Catalog, Logger: logger}, "catalog file " + cfg.Catalog, nil
	}
	client, err := consul.NewClient(cfg.Consul.ClientConfig)
	if err != nil {
		return nil, "", err
	}
	src := consul.New(consul.Config{
		Client: client, VersionMetaKey: cfg.Consul.VersionMetaKey, VersionTagPrefix: cfg.Consul.VersionTagPrefix,
		ExcludeWarning: cfg.Consul.ExcludeWarning, WaitTime: cfg.Consul.WaitTime, RetryMax: cfg.Consul.retryMax, Logger: logger, Registerer: reg,
	})
	return src, "consul " + cfg.Consul.Address, nil
}

// readiness is what /readyz reports.
func (s *server) readiness() readiness {
	r := readinessOf(s.publisher.Status())
	r.Discovery = s.sourceDesc
	if rep, ok := s.source.(discovery.StatusReporter); ok {
		r.applySourceStatus(rep.Status(), time.Now())
	}
	return r
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
