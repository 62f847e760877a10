// Command demo-backend runs the quickstart's greeter instances in one
// process: each answers grpc.testing.TestService/UnaryCall with its id and
// version and serves the standard health service, until SIGINT or SIGTERM.
//
//	demo-backend --instances greeter-v1-a=v1@127.0.0.1:9101,greeter-v2-a=v2@127.0.0.1:9201
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/weir-mesh/weir/examples/quickstart/backend"
)

func main() {
	instances := flag.String("instances", defaultInstances,
		"comma-separated id=version@host:port of the backends to run")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *instances); err != nil {
		slog.Error("demo-backend failed", "err", err)
		os.Exit(1)
	}
}

// run serves every instance until ctx is done or one of them fails.
func run(ctx context.Context, spec string) error {
	instances, err := parseInstances(spec)
	if err != nil {
		return err
	}
	// Listen on every address before serving any, so a port in use fails
	// the whole start-up instead of leaving half the versions running.
	listeners := make([]net.Listener, 0, len(instances))
	for _, in := range instances {
		lis, err := net.Listen("tcp", in.Addr)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return fmt.Errorf("instance %s: %w", in.ID, err)
		}
		listeners = append(listeners, lis)
	}

	g, ctx := errgroup.WithContext(ctx)
	for i, in := range instances {
		lis := listeners[i]
		slog.Info("serving", "id", in.ID, "version", in.Version, "addr", lis.Addr().String())
		g.Go(func() error {
			err := backend.Serve(ctx, lis, in.ID, in.Version)
			slog.Info("stopped", "id", in.ID, "version", in.Version, "err", err)
			return err
		})
	}
	return g.Wait()
}
