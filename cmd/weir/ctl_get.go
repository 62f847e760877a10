package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	adminv1 "github.com/weir-mesh/weir/policy/admin/v1"
)

func newCtlGetCommand(o *ctlOptions) *cobra.Command {
	var watch bool
	cmd := &cobra.Command{
		Use:   "get [SERVICE]",
		Short: "Show rollouts: all as a table, one in detail, or live with --watch",
		Long: "get lists every rollout, or shows one service in detail: weights, healthy endpoints per\n" +
			"version, the override in force and the last events. With --watch it streams changes and\n" +
			"redraws a bar of weights per service (one block per update when stdout is not a terminal).",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if watch {
				return o.run(false, o.watch)(cmd, args)
			}
			return o.run(true, o.get)(cmd, args)
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "stream changes until interrupted")
	return cmd
}

func (o *ctlOptions) get(ctx context.Context, cmd *cobra.Command, c adminv1.AdminServiceClient, args []string) error {
	out := cmd.OutOrStdout()
	if len(args) == 1 {
		r, err := c.GetRollout(ctx, &adminv1.GetRolloutRequest{Service: args[0]})
		if err != nil {
			return err
		}
		if o.output == "json" {
			return ctlWriteJSON(out, r)
		}
		return ctlWriteRolloutDetail(out, r)
	}
	resp, err := c.ListRollouts(ctx, &adminv1.ListRolloutsRequest{})
	if err != nil {
		return err
	}
	rs := ctlSortRollouts(resp.GetRollouts())
	if o.output == "json" {
		return ctlWriteJSONList(out, rs)
	}
	return ctlWriteRollouts(out, rs)
}

func ctlSortRollouts(rs []*adminv1.Rollout) []*adminv1.Rollout {
	rs = slices.Clone(rs)
	slices.SortStableFunc(rs, func(a, b *adminv1.Rollout) int { return strings.Compare(a.GetService(), b.GetService()) })
	return rs
}

// ctlWriteRollouts prints the one-line-per-service table of get.
func ctlWriteRollouts(w io.Writer, rs []*adminv1.Rollout) error {
	tw := ctlTable(w)
	fmt.Fprintln(tw, "SERVICE\tSTRATEGY\tPHASE\tSTEP\tWEIGHTS\tAPPLIED\tOVERRIDE\tREASON")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.GetService(), r.GetStrategy(), ctlDash(r.GetPhase()),
			ctlStep(r), ctlWeights(r.GetWeights()), ctlApplied(r), ctlOverrideShort(r), ctlDash(r.GetReason()))
	}
	return tw.Flush()
}

func ctlStep(r *adminv1.Rollout) string {
	if !ctlHasSteps(r) {
		return "-"
	}
	return fmt.Sprint(r.GetStep())
}

// ctlHasSteps reports whether a rollout moves r's weights in steps: not
// so for a fixed policy, nor for weights frozen when a policy file was
// deleted mid-rollout (the admin API's strategy "frozen").
func ctlHasSteps(r *adminv1.Rollout) bool {
	return r.GetStrategy() != "fixed" && r.GetStrategy() != "frozen"
}

func ctlApplied(r *adminv1.Rollout) string {
	if r.GetApplied() {
		return "yes " + ctlFraction(r.GetAppliedFraction())
	}
	return "no " + ctlFraction(r.GetAppliedFraction())
}

func ctlOverrideShort(r *adminv1.Rollout) string {
	ov := r.GetOverride()
	if ov == nil {
		return "-"
	}
	return ctlWeights(ov.GetWeights()) + " by " + ctlDash(ov.GetBy())
}

// ctlWriteRolloutDetail prints get SERVICE: the rollout, its versions with
// weights and healthy endpoints, and its last events.
func ctlWriteRolloutDetail(w io.Writer, r *adminv1.Rollout) error {
	tw := ctlTable(w)
	step := ctlStep(r)
	if r.GetStepSince() != nil {
		step += fmt.Sprintf(" (since %s, %s)", ctlTime(r.GetStepSince()), r.GetTimeInStep().AsDuration())
	}
	versions := "-"
	if r.GetOldVersion() != "" || r.GetNewVersion() != "" {
		versions = ctlDash(r.GetOldVersion()) + " → " + ctlDash(r.GetNewVersion())
	}
	override := "-"
	if ov := r.GetOverride(); ov != nil {
		override = fmt.Sprintf("%s by %s at %s: %s", ctlWeights(ov.GetWeights()), ctlDash(ov.GetBy()),
			ctlTime(ov.GetAt()), ctlDash(ov.GetReason()))
	}
	for _, kv := range [][2]string{
		{"Service", r.GetService()}, {"Strategy", r.GetStrategy()}, {"Phase", ctlDash(r.GetPhase())},
		{"Step", step}, {"Versions", versions}, {"Weights", ctlBar(r.GetWeights())},
		{"Applied", ctlApplied(r) + " of proxies"}, {"Override", override}, {"Reason", ctlDash(r.GetReason())},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if err := ctlWriteVersions(w, r); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nEvents:")
	if len(r.GetEvents()) == 0 {
		fmt.Fprintln(w, "  none")
		return nil
	}
	return ctlWriteEvents(w, ctlSortEvents(r.GetEvents()))
}

// ctlWriteVersions prints every version that has a weight or endpoints.
func ctlWriteVersions(w io.Writer, r *adminv1.Rollout) error {
	seen := map[string]bool{}
	for v := range r.GetWeights() {
		seen[v] = true
	}
	for v := range r.GetHealthyEndpoints() {
		seen[v] = true
	}
	tw := ctlTable(w)
	fmt.Fprintln(tw, "VERSION\tWEIGHT\tHEALTHY ENDPOINTS")
	for _, v := range ctlSortedKeys(seen) {
		fmt.Fprintf(tw, "%s\t%s%%\t%d\n", v, ctlPercent(r.GetWeights()[v]), r.GetHealthyEndpoints()[v])
	}
	return tw.Flush()
}

// ctlWatchEventsKept is how many recent events a terminal redraw shows.
const ctlWatchEventsKept = 10

// watch streams WatchRollouts. On a terminal every update redraws the
// screen; otherwise each update is a block of its own, after a blank line,
// so that logs and pipes keep the whole history.
func (o *ctlOptions) watch(ctx context.Context, cmd *cobra.Command, c adminv1.AdminServiceClient, args []string) error {
	stream, err := c.WatchRollouts(ctx, &adminv1.WatchRolloutsRequest{})
	if err != nil {
		return err
	}
	v := &ctlWatchView{out: cmd.OutOrStdout(), json: o.output == "json", terminal: ctlIsTerminal(cmd.OutOrStdout())}
	if len(args) == 1 {
		v.service = args[0]
	}
	for {
		u, err := stream.Recv()
		if err == io.EOF || ctx.Err() != nil {
			return nil // the server ended the stream, or the operator did
		}
		if err != nil {
			return err
		}
		if err := v.draw(u); err != nil {
			return err
		}
	}
}

// ctlWatchView renders the updates of get --watch.
type ctlWatchView struct {
	out      io.Writer
	json     bool
	terminal bool
	service  string // "" for all
	blocks   int
	events   []*adminv1.Event // recent, for terminal redraws
}

func (v *ctlWatchView) draw(u *adminv1.RolloutUpdate) error {
	u = v.filter(u)
	switch {
	case v.terminal && !v.json:
		fmt.Fprint(v.out, "\x1b[2J\x1b[H")
	case v.blocks > 0:
		fmt.Fprintln(v.out)
	}
	v.blocks++
	if v.json {
		return ctlWriteJSON(v.out, u)
	}
	events := u.GetEvents()
	if v.terminal {
		v.events = append(v.events, events...)
		v.events = v.events[max(0, len(v.events)-ctlWatchEventsKept):]
		events = v.events
	}
	tw := ctlTable(v.out)
	for _, r := range ctlSortRollouts(u.GetRollouts()) {
		fmt.Fprintln(tw, ctlWatchLine(r))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// Events get their own columns, not the rollouts'.
	tw = ctlTable(v.out)
	for _, e := range ctlSortEvents(events) {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", ctlTime(e.GetAt()), e.GetService(), e.GetKind(), e.GetMessage())
	}
	return tw.Flush()
}

// filter returns the update sorted, with only the watched service when one
// is named.
func (v *ctlWatchView) filter(u *adminv1.RolloutUpdate) *adminv1.RolloutUpdate {
	f := &adminv1.RolloutUpdate{}
	for _, r := range u.GetRollouts() {
		if v.service == "" || r.GetService() == v.service {
			f.Rollouts = append(f.Rollouts, r)
		}
	}
	for _, e := range u.GetEvents() {
		if v.service == "" || e.GetService() == v.service {
			f.Events = append(f.Events, e)
		}
	}
	f.Rollouts, f.Events = ctlSortRollouts(f.Rollouts), ctlSortEvents(f.Events)
	return f
}

// ctlIsTerminal reports whether w is a terminal, where a redraw beats
// scrolling.
func ctlIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// ctlWatchLine is one service in the live view:
// greeter  canary  progressing  step 2  [v1 ████████████████░░░░ v2] 80/20  applied 100%
func ctlWatchLine(r *adminv1.Rollout) string {
	step := "-"
	if ctlHasSteps(r) {
		step = fmt.Sprintf("step %d", r.GetStep())
	}
	line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\tapplied %s", r.GetService(), r.GetStrategy(), ctlDash(r.GetPhase()),
		step, ctlBar(r.GetWeights()), ctlFraction(r.GetAppliedFraction()))
	if ov := r.GetOverride(); ov != nil {
		line += "\toverride by " + ctlDash(ov.GetBy())
	}
	if r.GetReason() != "" {
		line += "\t" + r.GetReason()
	}
	return line
}
