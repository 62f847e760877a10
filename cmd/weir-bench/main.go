// Command weir-bench measures how fast a change reaches a fleet of xDS
// clients and what each connected stream costs, for weir and for a
// baseline side by side. It runs `weir serve` and a plain go-control-plane
// SnapshotCache server with one snapshot per node (what most hand-rolled
// control planes do; `weir-bench baseline`) each as a process of its own on
// the same catalog and policy files, drives each with the same simulated
// proxies — real ADS streams over gRPC that subscribe like Envoy or like
// proxyless gRPC and ACK every response — and prints one table with both
// side by side. Memory and CPU are the server process's own, read from
// /proc and its /metrics; the generator runs in this process.
//
// It is a measuring tool, never imported by the product; it lives under cmd
// because it is a runnable binary of its own (`make bench` runs it).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "baseline" {
		if err := runBaseline(ctx, os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "weir-bench baseline:", err)
			os.Exit(1)
		}
		return
	}
	cfg := defaultConfig()
	flag.StringVar(&cfg.Weir, "weir", cfg.Weir, "the weir binary to measure")
	flag.IntVar(&cfg.Streams, "streams", cfg.Streams, "simulated proxies (one ADS stream each)")
	flag.IntVar(&cfg.Conns, "conns", cfg.Conns, "ADS streams multiplexed on one gRPC connection")
	flag.Float64Var(&cfg.Mix, "mix", cfg.Mix, "fraction of streams shaped like proxyless gRPC (the rest like Envoy)")
	flag.IntVar(&cfg.Services, "services", cfg.Services, "services in the generated catalog")
	flag.IntVar(&cfg.Endpoints, "endpoints", cfg.Endpoints, "endpoints per service (split over versions v1 and v2)")
	flag.IntVar(&cfg.Changes, "changes", cfg.Changes, "changes per scenario")
	flag.BoolVar(&cfg.Delta, "delta", cfg.Delta, "use incremental (delta) ADS instead of state of the world")
	flag.DurationVar(&cfg.Debounce, "debounce", cfg.Debounce, "weir's --debounce")
	flag.IntVar(&cfg.Burst, "burst", cfg.Burst, "changes in the burst scenario")
	flag.DurationVar(&cfg.BurstWindow, "burst-window", cfg.BurstWindow, "the burst's changes are spread over at least this long")
	flag.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "longest wait for the fleet to ACK one change")
	flag.StringVar(&cfg.ProfileDir, "profile-dir", "", "write CPU profiles of each server and of the generator, taken from the start of the weight changes, and a heap profile of each server to this directory")
	flag.DurationVar(&cfg.ProfileTime, "profile-time", cfg.ProfileTime, "length of each server's CPU profile")
	flag.StringVar(&cfg.Only, "only", "", "measure only this server (weir or baseline)")
	flag.Parse()
	res, err := run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "weir-bench:", err)
		os.Exit(1)
	}
	res.print(os.Stdout)
}

// config is what one run measures.
type config struct {
	Weir        string
	Streams     int
	Conns       int
	Mix         float64
	Services    int
	Endpoints   int
	Changes     int
	Delta       bool
	Debounce    time.Duration
	Burst       int
	BurstWindow time.Duration
	Timeout     time.Duration
	ProfileDir  string
	ProfileTime time.Duration
	Only        string
}

func defaultConfig() config {
	return config{Weir: "bin/weir", Streams: 1000, Conns: 100, Mix: 0.5, Services: 100, Endpoints: 10, Changes: 20,
		Debounce: 50 * time.Millisecond, Burst: 100, BurstWindow: 50 * time.Millisecond, Timeout: time.Minute,
		ProfileTime: 10 * time.Second}
}

func (c config) validate() error {
	switch {
	case c.Streams < 1 || c.Conns < 1 || c.Services < 1 || c.Changes < 1 || c.Burst < 1:
		return fmt.Errorf("--streams, --conns, --services, --changes and --burst must be at least 1")
	case c.Endpoints < 2:
		return fmt.Errorf("--endpoints must be at least 2 (one per version)")
	case c.Mix < 0 || c.Mix > 1:
		return fmt.Errorf("--mix must be between 0 and 1")
	}
	return checkWeir(c.Weir)
}
