package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/weir-mesh/weir/discovery"
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
	return r
}

func opsHandler(reg *prometheus.Registry, ready func() readiness) http.Handler {
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
	return mux
}

// serveOps serves the operations endpoints on lis until ctx is done.
func serveOps(ctx context.Context, lis net.Listener, reg *prometheus.Registry, ready func() readiness) error {
	srv := &http.Server{Handler: opsHandler(reg, ready), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdownCtx); err != nil {
			return err
		}
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}
