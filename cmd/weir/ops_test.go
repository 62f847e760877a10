package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestOpsPprofOnlyWhenAsked checks that the profiler is served under
// /debug/pprof/ with --pprof and not without it.
func TestOpsPprofOnlyWhenAsked(t *testing.T) {
	for _, withPprof := range []bool{false, true} {
		srv := httptest.NewServer(opsHandler(prometheus.NewRegistry(), func() readiness { return readiness{} }, withPprof))
		resp, err := http.Get(srv.URL + "/debug/pprof/heap?gc=1")
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.StatusCode == http.StatusOK; got != withPprof {
			t.Errorf("--pprof=%v: /debug/pprof/heap answered %d", withPprof, resp.StatusCode)
		}
	}
}

// TestPprofOnlyOnLoopback checks that --pprof is refused on an ops address
// beyond loopback, naming the flag.
func TestPprofOnlyOnLoopback(t *testing.T) {
	cfg := serveConfig{XDSAddr: "127.0.0.1:18000", OpsAddr: "0.0.0.0:18080", Pprof: true}
	if err := cfg.checkExposure(); err == nil || !strings.Contains(err.Error(), "--pprof") {
		t.Errorf("--pprof on 0.0.0.0: %v, want a refusal naming --pprof", err)
	}
	cfg.OpsAddr = "127.0.0.1:18080"
	if err := cfg.checkExposure(); err != nil {
		t.Errorf("--pprof on loopback: %v", err)
	}
	cfg.OpsAddr, cfg.Pprof = "0.0.0.0:18080", false
	if err := cfg.checkExposure(); err != nil {
		t.Errorf("no --pprof on 0.0.0.0: %v", err)
	}
}
