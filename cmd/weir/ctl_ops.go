package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	adminv1 "github.com/weir-mesh/weir/policy/admin/v1"
)

func newCtlSetWeightsCommand(o *ctlOptions) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "set-weights SERVICE VERSION=PERCENT... --reason TEXT",
		Short: "Override a service's split until its next step, promote, abort or policy change",
		Long: "set-weights overrides the traffic split of SERVICE, e.g.\n\n" +
			"  weir ctl set-weights greeter v1=90 v2=10 --reason \"v2 latency\"\n\n" +
			"PERCENT is 0 to 100 with at most two decimals and the percentages must sum to 100;\n" +
			"this is checked before anything is sent (exit code 5 when it is not).",
		Args: cobra.MinimumNArgs(2),
		RunE: o.run(true, func(ctx context.Context, cmd *cobra.Command, c adminv1.AdminServiceClient, args []string) error {
			weights, err := ctlParseWeights(args[1:])
			if err != nil {
				return err
			}
			if err := ctlCheckReason(reason); err != nil {
				return err
			}
			r, err := c.SetWeights(ctx, &adminv1.SetWeightsRequest{Service: args[0], Weights: weights, Reason: reason})
			if err != nil {
				return err
			}
			return o.writeRollout(cmd.OutOrStdout(), r)
		}),
	}
	ctlReasonFlag(cmd, &reason)
	return cmd
}

func ctlReasonFlag(cmd *cobra.Command, reason *string) {
	cmd.Flags().StringVar(reason, "reason", "", "why, journaled with your identity (required)")
	_ = cmd.MarkFlagRequired("reason")
}

func ctlCheckReason(reason string) error {
	if strings.TrimSpace(reason) == "" {
		return errors.New("--reason must say why; it is journaled with your identity")
	}
	return nil
}

// ctlPercentRE is a percentage with at most two decimals.
var ctlPercentRE = regexp.MustCompile(`^[0-9]{1,3}(\.[0-9]{1,2})?$`)

// ctlParseWeights checks VERSION=PERCENT arguments before anything is sent,
// so that a typo never reaches the server: each version once, each percent
// 0–100 with at most two decimals, all summing to 100.
func ctlParseWeights(args []string) (map[string]string, error) {
	const want = "want VERSION=PERCENT with PERCENT from 0 to 100 and at most two decimals, e.g. v1=90 v2=10"
	weights := make(map[string]string, len(args))
	var sum int
	for _, arg := range args {
		version, pct, ok := strings.Cut(arg, "=")
		if !ok || version == "" {
			return nil, ctlInvalid("weight %q: %s", arg, want)
		}
		if !ctlPercentRE.MatchString(pct) {
			return nil, ctlInvalid("weight %q: %q is not a percent; %s", arg, pct, want)
		}
		hundredths := ctlHundredths(pct)
		if hundredths > 10000 {
			return nil, ctlInvalid("weight %q: %s%% is over 100", arg, pct)
		}
		if _, dup := weights[version]; dup {
			return nil, ctlInvalid("weight %q: version %s is given twice", arg, version)
		}
		weights[version] = pct
		sum += hundredths
	}
	if sum != 10000 {
		return nil, ctlInvalid("weights sum to %s%%, must be 100%%", ctlPercent(uint32(sum)))
	}
	return weights, nil
}

// ctlHundredths converts a percent matching ctlPercentRE to hundredths.
func ctlHundredths(pct string) int {
	whole, frac, _ := strings.Cut(pct, ".")
	w, _ := strconv.Atoi(whole)
	f, _ := strconv.Atoi((frac + "00")[:2])
	return w*100 + f
}

// ctlOp is one of the rollout operations of the admin client.
type ctlOp func(context.Context, *adminv1.OperationRequest, ...grpc.CallOption) (*adminv1.Rollout, error)

func newCtlOperationCommands(o *ctlOptions) []*cobra.Command {
	ops := []struct {
		name, short string
		op          func(adminv1.AdminServiceClient) ctlOp
	}{
		{"promote", "Finish a rollout now: all traffic to the new version",
			func(c adminv1.AdminServiceClient) ctlOp { return c.Promote }},
		{"pause", "Hold a rollout at its current step",
			func(c adminv1.AdminServiceClient) ctlOp { return c.Pause }},
		{"resume", "Continue a paused rollout",
			func(c adminv1.AdminServiceClient) ctlOp { return c.Resume }},
		{"abort", "Stop a rollout and send all traffic back to the old version",
			func(c adminv1.AdminServiceClient) ctlOp { return c.Abort }},
		{"rollback", "Return a promoted blue-green rollout to the old version within its window",
			func(c adminv1.AdminServiceClient) ctlOp { return c.Rollback }},
		{"retry", "Start an aborted or rolled back rollout over from its first step",
			func(c adminv1.AdminServiceClient) ctlOp { return c.Retry }},
	}
	cmds := make([]*cobra.Command, 0, len(ops))
	for _, op := range ops {
		var reason, expect string
		cmd := &cobra.Command{
			Use:   op.name + " SERVICE --reason TEXT [--expect-version VERSION]",
			Short: op.short,
			Args:  cobra.ExactArgs(1),
			RunE: o.run(true, func(ctx context.Context, cmd *cobra.Command, c adminv1.AdminServiceClient, args []string) error {
				if err := ctlCheckReason(reason); err != nil {
					return err
				}
				r, err := op.op(c)(ctx, &adminv1.OperationRequest{Service: args[0], Reason: reason, ExpectVersion: expect})
				if err != nil {
					return err
				}
				return o.writeRollout(cmd.OutOrStdout(), r)
			}),
		}
		ctlReasonFlag(cmd, &reason)
		cmd.Flags().StringVar(&expect, "expect-version", "",
			"refuse (exit code 4) unless the rollout moves traffic to this version, as when you looked: a policy change may have started another")
		cmds = append(cmds, cmd)
	}
	return cmds
}

// writeRollout prints the rollout a mutating command left behind.
func (o *ctlOptions) writeRollout(w io.Writer, r *adminv1.Rollout) error {
	if o.output == "json" {
		return ctlWriteJSON(w, r)
	}
	return ctlWriteRollouts(w, []*adminv1.Rollout{r})
}

func newCtlEventsCommand(o *ctlOptions) *cobra.Command {
	var limit int32
	cmd := &cobra.Command{
		Use:   "events [SERVICE]",
		Short: "Show the journal: who changed what, and what the rollouts did",
		Args:  cobra.MaximumNArgs(1),
		RunE: o.run(true, func(ctx context.Context, cmd *cobra.Command, c adminv1.AdminServiceClient, args []string) error {
			if limit < 0 {
				return fmt.Errorf("--limit %d: want 0 (the server's default of 50) or more", limit)
			}
			req := &adminv1.ListEventsRequest{Limit: limit}
			if len(args) == 1 {
				req.Service = args[0]
			}
			resp, err := c.ListEvents(ctx, req)
			if err != nil {
				return err
			}
			events := ctlSortEvents(resp.GetEvents())
			if o.output == "json" {
				return ctlWriteJSONList(cmd.OutOrStdout(), events)
			}
			return ctlWriteEvents(cmd.OutOrStdout(), events)
		}),
	}
	cmd.Flags().Int32Var(&limit, "limit", 0, "most recent events to show (0: the server's default, 50)")
	return cmd
}

// ctlSortEvents orders events oldest first; events of the same instant keep
// the journal's order, which is the order they happened in.
func ctlSortEvents(events []*adminv1.Event) []*adminv1.Event {
	events = slices.Clone(events)
	slices.SortStableFunc(events, func(a, b *adminv1.Event) int {
		return a.GetAt().AsTime().Compare(b.GetAt().AsTime())
	})
	return events
}

func ctlWriteEvents(w io.Writer, events []*adminv1.Event) error {
	tw := ctlTable(w)
	fmt.Fprintln(tw, "TIME\tSERVICE\tKIND\tBY\tMESSAGE")
	for _, e := range events {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ctlTime(e.GetAt()), e.GetService(), e.GetKind(),
			ctlDash(e.GetBy()), e.GetMessage())
	}
	return tw.Flush()
}
