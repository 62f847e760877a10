// Package policy parses and validates operator policy files and runs the
// rollout state machine.
//
// A policy file says how one service's traffic is split between its
// versions, with one of four strategies:
//
//   - fixed: a constant split, such as weights: {v1: 90, v2: 10}.
//   - canary: steps traffic from a stable version to a canary through a list
//     of setWeight and pause steps; some requests may go to the canary
//     whatever the weights (match), and a user may be kept on one version
//     while they move (sticky).
//   - blueGreen: serves the active version while the preview is reachable
//     only through previewMatch, then switches all traffic at once, keeping
//     the old version warm for a rollback window.
//   - rolling: moves traffic from one version to another by stepWeight every
//     interval.
//
// The three progressive strategies also take progressDeadline and onNack,
// which say what happens when the fleet does not apply or rejects a step.
// examples/policies holds one annotated file per strategy, the reference for
// every field.
//
// A directory holds one file per service; LoadDir reads it as a Set, and a
// Watcher reloads it whenever it changes.
package policy

import (
	"fmt"
	"strings"
	"time"
)

// Strategy is how a policy moves traffic between versions.
type Strategy string

// The strategies a policy file may name.
const (
	Fixed     Strategy = "fixed"     // a constant split, given by weights
	Canary    Strategy = "canary"    // step traffic from stable to canary
	BlueGreen Strategy = "blueGreen" // switch all traffic from active to preview
	Rolling   Strategy = "rolling"   // step traffic from one version to another
)

var strategies = []Strategy{Fixed, Canary, BlueGreen, Rolling}

// parseStrategy returns the Strategy named s. Names are case-sensitive, as
// every field name is; a name in the wrong case gets a hint.
func parseStrategy(s string) (Strategy, error) {
	for _, st := range strategies {
		if string(st) == s {
			return st, nil
		}
	}
	for _, st := range strategies {
		if strings.EqualFold(string(st), s) {
			return "", fmt.Errorf("unknown strategy %q: did you mean %s? (strategies: %s)", s, st, list(strategies))
		}
	}
	return "", fmt.Errorf("unknown strategy %q (strategies: %s)", s, list(strategies))
}

func list(ss []Strategy) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += ", "
		}
		out += string(s)
	}
	return out
}

// Policy is one service's policy, as read from one file.
type Policy struct {
	Service  string
	Strategy Strategy
	Weights  Weights // the split, for Fixed; sums to Full

	Canary    *CanarySpec    // for Canary
	BlueGreen *BlueGreenSpec // for BlueGreen
	Rolling   *RollingSpec   // for Rolling
	// ProgressDeadline pauses a rollout whose step the fleet has not
	// applied within it (default 10m); OnNack says what a NACK does
	// (default pause). Both apply to canary, blueGreen and rolling.
	ProgressDeadline time.Duration
	OnNack           NackAction

	File string // the file it was read from
	Line int    // the line of its service: key
}

// Where returns FILE:LINE of the policy's service: key, for messages.
func (p Policy) Where() string { return fmt.Sprintf("%s:%d", p.File, p.Line) }
