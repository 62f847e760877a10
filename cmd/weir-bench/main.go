// Command weir-bench is a load generator and a baseline for measuring how
// fast a change reaches a fleet of xDS clients and what each connected
// stream costs. It starts, in one process, weir's xDS server and a plain
// go-control-plane SnapshotCache server with one snapshot per node (what
// most hand-rolled control planes do), serves both the same resources built
// by snapshot.Build, drives each with the same simulated proxies — real ADS
// streams over gRPC that subscribe like Envoy or like proxyless gRPC and ACK
// every response — and prints one table with both side by side.
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
	"runtime/pprof"
	"time"
)

func main() {
	cfg := defaultConfig()
	flag.IntVar(&cfg.Streams, "streams", cfg.Streams, "simulated proxies (one ADS stream each)")
	flag.IntVar(&cfg.Conns, "conns", cfg.Conns, "ADS streams multiplexed on one gRPC connection")
	flag.Float64Var(&cfg.Mix, "mix", cfg.Mix, "fraction of streams shaped like proxyless gRPC (the rest like Envoy)")
	flag.IntVar(&cfg.Services, "services", cfg.Services, "services in the generated catalog")
	flag.IntVar(&cfg.Endpoints, "endpoints", cfg.Endpoints, "endpoints per service (split over versions v1 and v2)")
	flag.IntVar(&cfg.Changes, "changes", cfg.Changes, "changes per scenario")
	flag.BoolVar(&cfg.Delta, "delta", false, "use incremental (delta) xDS — not implemented yet")
	flag.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "longest wait for the fleet to ACK one change")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run (servers and generator) to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "weir-bench:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "weir-bench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if cfg.Delta {
		fmt.Fprintln(os.Stderr, "weir-bench: --delta is not implemented yet; only state-of-the-world ADS is measured")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := run(ctx, cfg)
	if err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "weir-bench:", err)
		os.Exit(1)
	}
	res.print(os.Stdout)
}

// config is what one run measures.
type config struct {
	Streams   int
	Conns     int
	Mix       float64
	Services  int
	Endpoints int
	Changes   int
	Delta     bool
	Timeout   time.Duration
}

func defaultConfig() config {
	return config{Streams: 1000, Conns: 100, Mix: 0.5, Services: 100, Endpoints: 10, Changes: 20, Timeout: time.Minute}
}

func (c config) validate() error {
	switch {
	case c.Streams < 1 || c.Conns < 1 || c.Services < 1 || c.Changes < 1:
		return fmt.Errorf("--streams, --conns, --services and --changes must be at least 1")
	case c.Endpoints < 2:
		return fmt.Errorf("--endpoints must be at least 2 (one per version)")
	case c.Mix < 0 || c.Mix > 1:
		return fmt.Errorf("--mix must be between 0 and 1")
	}
	return nil
}
