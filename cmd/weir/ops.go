package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/envoy"
	"github.com/weir-mesh/weir/internal/tlsfiles"
	"github.com/weir-mesh/weir/policy"
	"github.com/weir-mesh/weir/policy/admin"
	"github.com/weir-mesh/weir/snapshot"
	"github.com/weir-mesh/weir/xds"
)

// readiness is the JSON body of /readyz.
type readiness struct {
	Ready       bool              `json:"ready"`
	Discovery   string            `json:"discovery,omitempty"`
	Stale       *staleness        `json:"stale,omitempty"`
	Version     string            `json:"version,omitempty"`
	PublishedAt *time.Time        `json:"publishedAt,omitempty"`
	Waiting     []string          `json:"waitingFor,omitempty"`
	Rejected    map[string]string `json:"rejected,omitempty"`
	Warnings    []string          `json:"warnings,omitempty"`
	BuildError  string            `json:"buildError,omitempty"`
	// AwaitingRoutes lists proxies whose ACK of new routes is awaited
	// before clusters that traffic moved off are removed.
	AwaitingRoutes []string `json:"awaitingRoutes,omitempty"`
	// AwaitingReconnect is, while weir, restarted mid-rollout, waits for
	// a proxy to reconnect before it counts a step applied, when it stops
	// waiting.
	AwaitingReconnect *time.Time `json:"awaitingReconnectUntil,omitempty"`
}

// staleness says since when the last known catalog has been served because
// the discovery source's upstream fails.
type staleness struct {
	Message    string    `json:"message"`
	Since      time.Time `json:"since"`
	AgeSeconds float64   `json:"ageSeconds"`
	Error      string    `json:"error,omitempty"`
}

// applySourceStatus adds the discovery source's own state: before its first
// sync weir waits for it, and while it is stale weir serves the last known
// catalog, which /readyz says with the age.
func (r *readiness) applySourceStatus(st discovery.Status, now time.Time) {
	if !st.Stale {
		return
	}
	age := now.Sub(st.StaleSince)
	// Before the first sync nothing was ever known, so nothing is kept.
	msg := fmt.Sprintf("serving stale: discovery failing for %s, last known catalog kept", age.Round(time.Second))
	if !st.Synced {
		msg = fmt.Sprintf("waiting for the first sync: discovery failing for %s", age.Round(time.Second))
	}
	r.Stale = &staleness{
		Message:    msg,
		Since:      st.StaleSince,
		AgeSeconds: age.Seconds(),
		Error:      st.Error,
	}
}

// readinessOf reports ready once a snapshot is served. A rejected input does
// not make weir unready — the last good config is still being served — but
// it is listed so that an operator sees it.
func readinessOf(st xds.Status) readiness {
	r := readiness{Ready: st.Ready, Version: st.Version, Waiting: st.Waiting, Rejected: st.Rejected,
		Warnings: st.Warnings, BuildError: st.BuildError, AwaitingRoutes: st.AwaitingRoutes}
	if !st.PublishedAt.IsZero() {
		r.PublishedAt = &st.PublishedAt
	}
	if !st.AwaitingReconnect.IsZero() {
		r.AwaitingReconnect = &st.AwaitingReconnect
	}
	return r
}

// opsHandler serves health, readiness and metrics, and with withPprof Go's
// profiler, which is off by default: a profile costs CPU and shows internals.
func opsHandler(reg *prometheus.Registry, ready func() readiness, withPprof bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		r := ready()
		w.Header().Set("Content-Type", "application/json")
		if !r.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(r)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	if withPprof {
		handlePprof(mux)
	}
	return mux
}

// handlePprof serves every endpoint net/http/pprof serves on
// http.DefaultServeMux, which weir does not use: `go tool pprof` asks
// /symbol (with POST) and `go tool trace` needs /trace.
func handlePprof(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index) // also every named profile: heap, goroutine, ...
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}

// opsDrain is how long open ops requests may go on once weir stops: a CPU
// profile runs for as long as its seconds=N asks, which must not hold up
// the stop.
const opsDrain = 5 * time.Second

// opsServer serves the operations endpoints.
type opsServer struct {
	handler http.Handler
	drain   time.Duration // see opsDrain
	logger  *slog.Logger
}

// serve serves on lis until ctx is done, then lets open requests finish
// for up to drain and cuts off the rest: that is part of stopping, not an
// error to exit with.
func (o opsServer) serve(ctx context.Context, lis net.Listener) error {
	srv := &http.Server{Handler: o.handler, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), o.drain)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if errors.Is(err, context.DeadlineExceeded) {
		o.logger.Warn("ops requests still open when weir stopped were cut off, such as a profile being taken", "drain", o.drain)
		err = srv.Close()
	}
	if err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// tlsFiles configure a TLS listener; ClientCA makes it mutual TLS. Replaced
// files are picked up while weir runs (see package tlsfiles).
type tlsFiles = tlsfiles.Files

// loopback reports whether addr (HOST:PORT) listens on loopback only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkExposure refuses to listen beyond loopback without credentials.
func (c serveConfig) checkExposure() error {
	if c.AdminAddr != "" && !loopback(c.AdminAddr) && c.Admin.TokenFile == "" && c.Admin.TLS.ClientCA == "" {
		return fmt.Errorf("--admin-addr %s listens beyond loopback without credentials, so anyone who can reach it could move traffic: "+
			"give --admin-token-file FILE (lines NAME:TOKEN) or mTLS (--admin-tls-cert, --admin-tls-key, --admin-client-ca), "+
			"or listen on 127.0.0.1", c.AdminAddr)
	}
	if c.AdminAddr != "" && !loopback(c.AdminAddr) && c.Admin.TLS.Cert == "" {
		return fmt.Errorf("--admin-addr %s listens beyond loopback without TLS, so bearer tokens would travel in clear: "+
			"give --admin-tls-cert and --admin-tls-key (and --admin-client-ca for mTLS), or listen on 127.0.0.1", c.AdminAddr)
	}
	if c.Pprof && !loopback(c.OpsAddr) {
		return fmt.Errorf("--pprof with --ops-addr %s would let anyone who can reach it take CPU profiles (costly) and see weir's internals: "+
			"serve the profiler on a loopback --ops-addr, or leave --pprof off", c.OpsAddr)
	}
	if !loopback(c.XDSAddr) && c.XDSTLS.Cert == "" {
		return fmt.Errorf("--xds-addr %s listens beyond loopback without TLS, so anyone who can reach it could read the service map and "+
			"proxies' config would travel in clear: give --xds-tls-cert and --xds-tls-key (and --xds-client-ca to require proxy "+
			"certificates), or listen on 127.0.0.1", c.XDSAddr)
	}
	return nil
}

// xdsServerOptions serves xDS over TLS when configured.
func xdsServerOptions(f tlsFiles, logger *slog.Logger) ([]grpc.ServerOption, error) {
	cfg, err := tlsfiles.Config(f, "--xds", logger)
	if err != nil || cfg == nil {
		return nil, err
	}
	return []grpc.ServerOption{grpc.Creds(credentials.NewTLS(cfg))}, nil
}

// adminServerOptions returns the admin listener's credentials and the
// interceptors that refuse calls without them, and logs how callers are
// let in when listening, that is when the admin API is on. Tokens are never
// logged.
func adminServerOptions(c adminConfig, listening bool, logger *slog.Logger) ([]grpc.ServerOption, error) {
	auth := admin.Auth{ClientCerts: c.TLS.ClientCA != ""}
	if c.TokenFile != "" {
		var err error
		if auth.Tokens, err = admin.LoadTokens(c.TokenFile); err != nil {
			return nil, fmt.Errorf("--admin-token-file: %w", err)
		}
	}
	cfg, err := tlsfiles.Config(c.TLS, "--admin", logger)
	if err != nil {
		return nil, err
	}
	opts := auth.ServerOptions()
	if cfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg)))
	}
	switch {
	case !listening: // --admin-addr "": no call to refuse or let in
	case len(auth.Tokens) == 0 && !auth.ClientCerts:
		logger.Warn("the admin API has no credentials configured and refuses every call; give --admin-token-file or --admin-tls-cert, --admin-tls-key and --admin-client-ca")
	case len(auth.Tokens) > 0 && cfg == nil:
		logger.Info("admin API on loopback without TLS: tokens stay on this machine", "tokens", len(auth.Tokens))
	}
	return opts, nil
}

// adminAddr is the admin listener's address for the start-up log.
func (s *server) adminAddr() string {
	if s.adminLis == nil {
		return "off"
	}
	return s.adminLis.Addr().String()
}

// adminServer wires the admin API to the engine, the tracker and the cache.
func (s *server) adminServer() *admin.Server {
	return admin.NewServer(admin.Config{Engine: s.engine, Logger: s.logger,
		Fleet:   fleet{tracker: s.tracker, cache: s.cache, publisher: s.publisher},
		Planner: planner{publisher: s.publisher, cfg: s.cfg}})
}

// serveAdmin serves the admin API on lis until ctx is done. It stops hard:
// admin calls are short, and watch streams would hold a graceful stop.
func serveAdmin(ctx context.Context, lis net.Listener, srv *admin.Server, opts []grpc.ServerOption) error {
	gs := grpc.NewServer(opts...)
	srv.Register(gs)
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		gs.Stop()
		if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return err
		}
		return nil
	}
}

// fleet is admin.Fleet over the xDS tracker and cache.
type fleet struct {
	tracker   *xds.Tracker
	cache     *xds.Cache
	publisher *xds.Publisher
}

func (f fleet) Proxies() []admin.Proxy {
	ps := f.tracker.Proxies()
	out := make([]admin.Proxy, 0, len(ps))
	for _, p := range ps {
		ap := admin.Proxy{NodeID: p.NodeID, Cluster: p.Cluster, Address: p.Address, Kind: p.Class.String(),
			ConnectedAt: p.ConnectedAt, Types: make(map[string]admin.TypeState, len(p.Types))}
		for typeURL, st := range p.Types {
			ts := admin.TypeState{Names: st.Names, Wildcard: st.Wildcard, Sent: st.Sent, Acked: st.Acked}
			if st.LastNack != nil {
				ts.Nack = &admin.Nack{Version: st.LastNack.Version, Error: st.LastNack.Error}
			}
			ap.Types[typeURL] = ts
		}
		out = append(out, ap)
	}
	return out
}

func (f fleet) AppliedFraction() float64 { return f.publisher.AppliedFraction() }

func (f fleet) VersionFor(typeURL, kind string, names []string, wildcard bool) string {
	class := xds.GRPC
	if kind == admin.KindEnvoy {
		class = xds.Envoy
	}
	return f.cache.VersionFor(typeURL, class, names, wildcard)
}

// planner is admin.Planner: snapshot.Build on the latest discovery model.
type planner struct {
	publisher *xds.Publisher
	cfg       serveConfig
}

func (p planner) Plan(routing map[string]policy.Routing) (map[string]admin.ServicePlan, error) {
	m, ok := p.publisher.Model()
	if !ok {
		return nil, errors.New("discovery has not synced yet")
	}
	snap, err := snapshot.Build(snapshot.Input{Model: m, Routing: policy.TableOf(routing),
		SidecarAddress: p.cfg.SidecarAddress, SidecarPort: p.cfg.SidecarPort})
	if err != nil {
		return nil, err
	}
	out := map[string]admin.ServicePlan{}
	plan := func(svc string) admin.ServicePlan {
		sp, ok := out[svc]
		if !ok {
			sp = admin.ServicePlan{Routes: map[string]string{}}
		}
		return sp
	}
	for c := range snap.Clusters.Values() {
		svc := c.GetName()[:max(0, strings.LastIndex(c.GetName(), "/"))]
		sp := plan(svc)
		sp.Clusters = append(sp.Clusters, c.GetName())
		out[svc] = sp
	}
	for vh := range snap.Outbound.Hosts().Values() { // each service's own route configuration holds its virtual host again
		sp := plan(vh.GetName())
		if err := planRoutes(sp.Routes, vh); err != nil {
			return nil, err
		}
		out[vh.GetName()] = sp
	}
	return out, nil
}

// planRoutes renders every route of vh into routes, by route name.
func planRoutes(routes map[string]string, vh *routev3.VirtualHost) error {
	for i, r := range vh.GetRoutes() {
		name := r.GetName()
		if name == "" {
			name = fmt.Sprintf("route-%d", i)
		}
		b, err := envoy.AppendDeterministic(nil, r)
		if err != nil {
			return err
		}
		routes[name] = string(b)
	}
	return nil
}
