// Package policy parses and validates operator policy files and (later) runs
// the rollout state machine.
//
// A policy file describes how one service's traffic is split between its
// versions:
//
//	service: greeter
//	strategy: fixed
//	weights: {v1: 90, v2: 10}     # percent; up to two decimals
//
// A directory holds one file per service; LoadDir reads it as a Set, and a
// Watcher reloads it whenever it changes.
package policy

import "fmt"

// Strategy is how a policy moves traffic between versions.
type Strategy string

// The strategies a policy file may name. Only Fixed is implemented; the others
// are recognised so that a file written for a later weir gets a clear error.
const (
	Fixed     Strategy = "fixed"     // a constant split, given by weights
	Canary    Strategy = "canary"    // step traffic from stable to canary
	BlueGreen Strategy = "blueGreen" // switch all traffic from active to preview
	Rolling   Strategy = "rolling"   // step traffic from one version to another
)

var (
	strategies = []Strategy{Fixed, Canary, BlueGreen, Rolling}
	supported  = []Strategy{Fixed}
)

// parseStrategy returns the Strategy named s if weir supports it.
func parseStrategy(s string) (Strategy, error) {
	for _, st := range supported {
		if string(st) == s {
			return st, nil
		}
	}
	for _, st := range strategies {
		if string(st) == s {
			return "", fmt.Errorf("strategy %q is not supported yet (supported: %s)", s, list(supported))
		}
	}
	return "", fmt.Errorf("unknown strategy %q (supported: %s)", s, list(supported))
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
	File     string  // the file it was read from
	Line     int     // the line of its service: key
}

// Where returns FILE:LINE of the policy's service: key, for messages.
func (p Policy) Where() string { return fmt.Sprintf("%s:%d", p.File, p.Line) }
