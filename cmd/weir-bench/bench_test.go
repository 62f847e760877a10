package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestSmoke runs the whole harness with a tiny fleet, so that it never rots:
// both servers must bring every proxy to 100 % ACK for every change.
func TestSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := config{Streams: 20, Conns: 7, Mix: 0.5, Services: 5, Endpoints: 2, Changes: 2, Timeout: 10 * time.Second}
	res, err := run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.servers) != 2 {
		t.Fatalf("measured %d servers, want weir and baseline", len(res.servers))
	}
	for _, s := range res.servers {
		if len(s.errs) > 0 {
			t.Errorf("%s: %v", s.name, s.errs)
		}
		if len(s.weights) != cfg.Changes || len(s.endpoints) != cfg.Changes {
			t.Errorf("%s: %d weight and %d endpoint changes reached 100 %% ACK, want %d each",
				s.name, len(s.weights), len(s.endpoints), cfg.Changes)
		}
	}
	var out bytes.Buffer
	res.print(&out)
	for _, want := range []string{"weir", "baseline/weir", "100% ACKed", "cores"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

// TestMixSpreadsGRPC checks that --mix makes exactly that fraction of the
// proxies gRPC-shaped.
func TestMixSpreadsGRPC(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w := newWorld(2, 2)
	snap, err := w.build()
	if err != nil {
		t.Fatal(err)
	}
	tg, err := startWeir(snap)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.stop()
	f, err := connect(ctx, config{Streams: 8, Conns: 3, Mix: 0.25, Services: 2, Timeout: 5 * time.Second}, tg.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	grpc := 0
	for _, p := range f.proxies {
		if p.grpc {
			grpc++
		}
	}
	if grpc != 2 {
		t.Errorf("%d of 8 proxies are gRPC-shaped at --mix 0.25, want 2", grpc)
	}
}
