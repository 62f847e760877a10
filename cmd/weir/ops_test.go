package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestOpsPprofOnlyWhenAsked checks that every endpoint of Go's profiler is
// served under /debug/pprof/ with --pprof, and none without it.
func TestOpsPprofOnlyWhenAsked(t *testing.T) {
	endpoints := []struct{ method, path string }{
		{"GET", "/debug/pprof/"},
		{"GET", "/debug/pprof/heap?gc=1"},
		{"GET", "/debug/pprof/cmdline"},
		{"GET", "/debug/pprof/symbol"},
		{"POST", "/debug/pprof/symbol"}, // go tool pprof looks symbols up so
		{"GET", "/debug/pprof/trace?seconds=0.05"},
	}
	for _, withPprof := range []bool{false, true} {
		srv := httptest.NewServer(opsHandler(prometheus.NewRegistry(), func() readiness { return readiness{} }, withPprof))
		for _, e := range endpoints {
			req, err := http.NewRequestWithContext(t.Context(), e.method, srv.URL+e.path, strings.NewReader("0x1"))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.StatusCode == http.StatusOK; got != withPprof {
				t.Errorf("--pprof=%v: %s %s answered %d", withPprof, e.method, e.path, resp.StatusCode)
			}
		}
		srv.Close()
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

// TestOpsStopCutsOffLongRequests checks that a stop during an ops request
// that outlasts the drain (a CPU profile of 20 s, say) cuts it off, logs
// it and returns nil: it used to return "context deadline exceeded", which
// made weir exit 1.
func TestOpsStopCutsOffLongRequests(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	long := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done() // the connection closed
	})
	var logs bytes.Buffer
	ops := opsServer{handler: long, drain: 100 * time.Millisecond, logger: slog.New(slog.NewTextHandler(&logs, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ops.serve(ctx, lis) }()
	go func() {
		if resp, err := http.Get("http://" + lis.Addr().String() + "/debug/pprof/profile?seconds=20"); err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case <-started:
	case <-time.After(waitTimeout):
		t.Fatal("the request did not reach the handler")
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve after a stop that cut a request off: %v, want nil", err)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("serve still running %v after ctx ended", waitTimeout)
	}
	if !strings.Contains(logs.String(), "were cut off") {
		t.Errorf("log lacks the cut-off requests:\n%s", logs.String())
	}
}
