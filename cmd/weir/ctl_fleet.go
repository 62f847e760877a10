package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/weir-mesh/weir/policy"
	adminv1 "github.com/weir-mesh/weir/policy/admin/v1"
)

func newCtlProxiesCommand(o *ctlOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "proxies",
		Short: "Show every connected proxy and whether it applied what weir sent",
		Long: "proxies lists connected Envoys and gRPC clients with, per xDS type, SYNCED (ACKed the\n" +
			"version sent), STALE (not ACKed yet), NACKED (rejected it) or NOT SENT, with a short version:\n" +
			"the one ACKed when SYNCED, the one awaiting an ACK when STALE, the one rejected when NACKED.\n" +
			"NACK errors are listed under the table.",
		Args: cobra.NoArgs,
		RunE: o.run(true, func(ctx context.Context, cmd *cobra.Command, c adminv1.AdminServiceClient, _ []string) error {
			resp, err := c.ListProxies(ctx, &adminv1.ListProxiesRequest{})
			if err != nil {
				return err
			}
			proxies := ctlSortProxies(resp.GetProxies())
			if o.output == "json" {
				return ctlWriteJSONList(cmd.OutOrStdout(), proxies)
			}
			return ctlWriteProxies(cmd.OutOrStdout(), proxies)
		}),
	}
}

// ctlSortProxies sorts proxies by node id and each one's types by name,
// on copies: the response is not ours to change.
func ctlSortProxies(ps []*adminv1.Proxy) []*adminv1.Proxy {
	out := make([]*adminv1.Proxy, len(ps))
	for i, p := range ps {
		out[i] = proto.Clone(p).(*adminv1.Proxy)
		slices.SortStableFunc(out[i].Types, func(a, b *adminv1.TypeStatus) int {
			return strings.Compare(ctlTypeName(a.GetType()), ctlTypeName(b.GetType()))
		})
	}
	slices.SortStableFunc(out, func(a, b *adminv1.Proxy) int {
		if c := strings.Compare(a.GetNodeId(), b.GetNodeId()); c != 0 {
			return c
		}
		return strings.Compare(a.GetCluster(), b.GetCluster())
	})
	return out
}

// ctlXDSColumns are the proxies columns, by the type name each stands for.
var ctlXDSColumns = []struct{ column, typ string }{
	{"CDS", "Cluster"}, {"LDS", "Listener"}, {"EDS", "ClusterLoadAssignment"}, {"RDS", "RouteConfiguration"},
}

// ctlTypeName accepts "Cluster" as well as a type URL ending in ".Cluster".
func ctlTypeName(t string) string {
	return t[strings.LastIndexAny(t, "./")+1:]
}

func ctlWriteProxies(w io.Writer, proxies []*adminv1.Proxy) error {
	tw := ctlTable(w)
	fmt.Fprintln(tw, "NAME\tCLUSTER\tKIND\tCDS\tLDS\tEDS\tRDS\tVERDICT")
	var nacks []string
	for _, p := range proxies {
		byType := map[string]*adminv1.TypeStatus{}
		for _, ts := range p.GetTypes() {
			byType[ctlTypeName(ts.GetType())] = ts
		}
		cells := []string{p.GetNodeId(), ctlDash(p.GetCluster()), ctlDash(p.GetKind())}
		for _, col := range ctlXDSColumns {
			ts := byType[col.typ]
			cells = append(cells, ctlTypeCell(ts))
			if ts.GetLastNackError() != "" {
				nacks = append(nacks, fmt.Sprintf("  %s %s version %s: %s", p.GetNodeId(), col.column,
					ctlShortVersion(ts.GetLastNackVersion()), ts.GetLastNackError()))
			}
		}
		cells = append(cells, ctlDash(p.GetVerdict()))
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(nacks) > 0 {
		fmt.Fprintln(w, "\nNACK errors:")
		fmt.Fprintln(w, strings.Join(nacks, "\n"))
	}
	return nil
}

// ctlTypeCell is a type's verdict with the version that explains it: the
// ACKed one when synced, the one awaiting an ACK when stale, the rejected
// one when NACKed.
func ctlTypeCell(ts *adminv1.TypeStatus) string {
	if ts == nil || ts.GetVersionSent() == "" {
		return "NOT SENT"
	}
	version := ts.GetVersionSent()
	switch ts.GetVerdict() {
	case "SYNCED":
		version = ts.GetVersionAcked()
	case "NACKED":
		if ts.GetLastNackVersion() != "" {
			version = ts.GetLastNackVersion()
		}
	}
	return fmt.Sprintf("%s (%s)", ctlDash(ts.GetVerdict()), ctlShortVersion(version))
}

// ctlShortVersion keeps enough of a content hash to tell versions apart.
func ctlShortVersion(v string) string {
	if len(v) > 8 {
		return v[:8]
	}
	return ctlDash(v)
}

func newCtlDiffCommand(o *ctlOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "diff DIR",
		Short: "Show what a candidate policy directory would change, without applying it",
		Long: "diff sends every *.yaml and *.yml file in DIR that weir would load (not hidden files nor\n" +
			"editor backups and swap files) to weir, which reports per service what\n" +
			"would change (weights, strategy, routes, clusters added or removed) and applies nothing.\n\n" +
			"Exit codes: 0 no changes, 3 changes, 1 errors in the candidate files (or any other error,\n" +
			"as for every ctl command).",
		Args: cobra.ExactArgs(1),
		RunE: o.run(true, func(ctx context.Context, cmd *cobra.Command, c adminv1.AdminServiceClient, args []string) error {
			files, err := ctlReadPolicyDir(args[0])
			if err != nil {
				return err
			}
			resp, err := c.Diff(ctx, &adminv1.DiffRequest{Files: files})
			if err != nil {
				return err
			}
			return o.writeDiff(cmd.OutOrStdout(), resp)
		}),
	}
}

// ctlReadPolicyDir reads the policy files of dir, by file name: the ones
// policy.LoadDir reads, so that an editor's lock or backup, which weir
// skips, neither fails the diff nor shows in it.
func ctlReadPolicyDir(dir string) (map[string]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	files := map[string]string{}
	for _, e := range entries {
		if !policy.IsPolicyFile(e.Name()) {
			continue
		}
		b, ok, err := policy.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		files[e.Name()] = string(b)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no *.yaml or *.yml policy files", dir)
	}
	return files, nil
}

// writeDiff prints the diff and returns the exit status it stands for.
func (o *ctlOptions) writeDiff(w io.Writer, resp *adminv1.DiffResponse) error {
	changed := slices.DeleteFunc(slices.Clone(resp.GetServices()), func(d *adminv1.ServiceDiff) bool { return !ctlDiffChanges(d) })
	slices.SortStableFunc(changed, func(a, b *adminv1.ServiceDiff) int { return strings.Compare(a.GetService(), b.GetService()) })
	errs := slices.Sorted(slices.Values(resp.GetErrors()))
	if o.output == "json" {
		if err := ctlWriteJSON(w, resp); err != nil {
			return err
		}
	} else {
		ctlWriteDiffText(w, changed, errs)
	}
	switch {
	case len(errs) > 0:
		return &ctlError{code: ctlExitError, err: fmt.Errorf("the candidate policies have %d error(s)", len(errs))}
	case len(changed) > 0:
		return &ctlError{code: ctlExitChanges}
	}
	return nil
}

func ctlDiffChanges(d *adminv1.ServiceDiff) bool {
	return !maps.Equal(d.GetWeightsBefore(), d.GetWeightsAfter()) || d.GetStrategyBefore() != d.GetStrategyAfter() ||
		len(d.GetRoutesChanged()) > 0 || len(d.GetClustersAdded()) > 0 || len(d.GetClustersRemoved()) > 0
}

func ctlWriteDiffText(w io.Writer, changed []*adminv1.ServiceDiff, errs []string) {
	for _, d := range changed {
		fmt.Fprintln(w, d.GetService())
		if d.GetStrategyBefore() != d.GetStrategyAfter() {
			fmt.Fprintf(w, "  strategy: %s → %s\n", ctlDash(d.GetStrategyBefore()), ctlDash(d.GetStrategyAfter()))
		}
		if !maps.Equal(d.GetWeightsBefore(), d.GetWeightsAfter()) {
			fmt.Fprintf(w, "  weights:  %s → %s\n", ctlWeights(d.GetWeightsBefore()), ctlWeights(d.GetWeightsAfter()))
		}
		for _, l := range []struct {
			label string
			items []string
		}{
			{"routes changed", d.GetRoutesChanged()},
			{"clusters added", d.GetClustersAdded()},
			{"clusters removed", d.GetClustersRemoved()},
		} {
			if len(l.items) > 0 {
				fmt.Fprintf(w, "  %s: %s\n", l.label, strings.Join(slices.Sorted(slices.Values(l.items)), ", "))
			}
		}
	}
	switch n := len(changed); {
	case n == 0 && len(errs) == 0:
		fmt.Fprintln(w, "No changes.")
	case n == 1:
		fmt.Fprintln(w, "\n1 service would change.")
	case n > 1:
		fmt.Fprintf(w, "\n%d services would change.\n", n)
	}
	if len(errs) > 0 {
		if len(changed) > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w, "Errors:")
		for _, e := range errs {
			fmt.Fprintln(w, "  "+e)
		}
	}
}
