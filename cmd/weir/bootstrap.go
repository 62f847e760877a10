package main

import (
	"fmt"
	"net"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/weir-mesh/weir/envoy"
)

func newBootstrapCommand() *cobra.Command {
	var opts envoy.BootstrapOptions
	var xdsAddr string
	cmd := &cobra.Command{
		Use:   "bootstrap",
		Short: "Print an Envoy sidecar bootstrap (YAML) that connects to weir over ADS",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			host, port, err := splitHostPort(xdsAddr)
			if err != nil {
				return fmt.Errorf("--xds-addr: %w", err)
			}
			if err := checkPortFlag("--admin-port", opts.AdminPort); err != nil { // Envoy would refuse the bootstrap
				return err
			}
			opts.XDSHost, opts.XDSPort = host, port
			out, err := envoy.BootstrapYAML(envoy.Bootstrap(opts))
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.NodeID, "node-id", "", "the sidecar's node id (required)")
	f.StringVar(&opts.Cluster, "cluster", "weir-sidecars", "the sidecar's node cluster")
	f.StringVar(&xdsAddr, "xds-addr", "127.0.0.1:18000", "weir's xDS address, HOST:PORT")
	f.Uint32Var(&opts.AdminPort, "admin-port", 9901, "port of Envoy's admin interface (bound to 127.0.0.1)")
	cmd.MarkFlagRequired("node-id")
	return cmd
}

func splitHostPort(addr string) (string, uint32, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return "", 0, fmt.Errorf("port %q must be 1-65535", portStr)
	}
	return host, uint32(port), nil
}
