// Command weir is a service-mesh xDS control plane for zero-downtime deploys:
// it learns services and their versions, applies traffic policies, and pushes
// weighted routes to Envoy sidecars and proxyless gRPC clients.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal starts a graceful stop; releasing the handler then
	// lets a second one kill weir, should that stop take too long.
	context.AfterFunc(ctx, stop)
	err := newRootCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		if !ctlReported(err) { // ctl prints its own "weir ctl: " message
			fmt.Fprintln(os.Stderr, "weir:", err)
		}
		os.Exit(ctlExitCode(err))
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "weir",
		Short:         "weir is an xDS control plane for zero-downtime deploys",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCommand(), newValidateCommand(), newBootstrapCommand(), newVersionCommand(), newCtlCommand())
	return root
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print weir's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "weir", buildVersion())
		},
	}
}

// buildVersion returns the linked-in version, else the module version or
// VCS revision recorded by the Go toolchain.
func buildVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return "dev-" + s.Value[:12]
		}
	}
	return info.Main.Version
}
