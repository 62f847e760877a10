package main

import (
	"net/http"
	"net/http/httptest"
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
