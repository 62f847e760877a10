// Command demo-client is the quickstart's proxyless gRPC client: it resolves
// its target (xds:///greeter by default) through weir, with the xDS bootstrap
// built in code, calls grpc.testing.TestService/UnaryCall every --interval
// and prints once per second how the responses split across versions and
// instances, so a rollout's traffic shift is visible as it happens:
//
//	18:04:05  v1 90.2% (451)  v2 9.8% (49)  failed 0  [greeter-v1-a 226, greeter-v1-b 225, greeter-v2-a 25, greeter-v2-b 24]
//
// Failed RPCs are counted in the line and logged (once per distinct error
// per second) to stderr, so a misconfigured target or control plane shows.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/weir-mesh/weir/examples/quickstart/xdsclient"
)

// callTimeout bounds each RPC, so a call stuck waiting for the xDS
// resolution or a dead backend is counted as failed within the second or two.
const callTimeout = 2 * time.Second

// config is the command line.
type config struct {
	Target, XDSAddr, NodeID string
	Interval                time.Duration
	Duration                time.Duration // 0: until SIGINT or SIGTERM
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo-client:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		slog.Error("demo-client failed", "err", err)
		os.Exit(1)
	}
}

// parseFlags parses args into a config; usage and parse errors go to out.
func parseFlags(args []string, out io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("demo-client", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&cfg.Target, "target", "xds:///greeter", "xds: target to call")
	fs.StringVar(&cfg.XDSAddr, "xds-addr", "127.0.0.1:18000", "host:port of weir's xDS (ADS) server")
	fs.StringVar(&cfg.NodeID, "node-id", "demo-client", "xDS node id this client reports to weir")
	fs.DurationVar(&cfg.Interval, "interval", 10*time.Millisecond, "time between RPCs")
	fs.DurationVar(&cfg.Duration, "duration", 0, "how long to run; 0 runs until SIGINT or SIGTERM")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.Interval <= 0 {
		return config{}, fmt.Errorf("--interval %s: must be positive, e.g. 10ms", cfg.Interval)
	}
	if cfg.Duration < 0 {
		return config{}, fmt.Errorf("--duration %s: must be 0 (until interrupted) or positive", cfg.Duration)
	}
	return cfg, nil
}

// result is the outcome of one RPC.
type result struct {
	version, instance string
	err               error
}

// run calls cfg.Target until ctx is done or cfg.Duration has passed, writing
// one tally line per second to out.
func run(ctx context.Context, cfg config, out io.Writer) error {
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	cc, err := xdsclient.Dial(cfg.Target, cfg.XDSAddr, cfg.NodeID)
	if err != nil {
		return err
	}
	defer cc.Close()
	slog.Info("calling", "target", cfg.Target, "xds_addr", cfg.XDSAddr, "node_id", cfg.NodeID, "interval", cfg.Interval)

	results := make(chan result)
	go call(ctx, testpb.NewTestServiceClient(cc), cfg.Interval, results)

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var t tally
	for {
		select {
		case r, ok := <-results:
			if !ok { // ctx is done and call has returned
				if !t.empty() {
					fmt.Fprintln(out, t.line(time.Now()))
				}
				return nil
			}
			if t.add(r.version, r.instance, r.err) {
				slog.Warn("RPC failed", "target", cfg.Target, "err", r.err)
			}
		case now := <-tick.C:
			fmt.Fprintln(out, t.line(now))
			t = tally{}
		}
	}
}

// call makes one UnaryCall per interval and sends each outcome to results,
// closing it once ctx is done. Calls are sequential, so a control plane
// that never answers slows the loop to one call per callTimeout instead of
// piling up RPCs; the ticker drops the ticks a slow call misses.
func call(ctx context.Context, client testpb.TestServiceClient, interval time.Duration, results chan<- result) {
	defer close(results)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		resp, err := client.UnaryCall(cctx, &testpb.SimpleRequest{})
		cancel()
		if ctx.Err() != nil {
			return // interrupted, not failed
		}
		select {
		case results <- result{version: resp.GetHostname(), instance: resp.GetServerId(), err: err}:
		case <-ctx.Done():
			return
		}
	}
}
