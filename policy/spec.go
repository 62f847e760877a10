package policy

import "time"

// NackAction is what a rollout does when a proxy rejects its config.
type NackAction string

// The onNack values.
const (
	NackPause NackAction = "pause" // the default
	NackAbort NackAction = "abort"
)

// CanarySpec moves traffic from Stable to Version in steps.
type CanarySpec struct {
	Stable  string
	Version string
	Steps   []Step
	// Match lists requests that always go to the canary, whatever the
	// weights; every condition of one Match must hold.
	Match []Match
	// Sticky keeps a user on one version while weights move; nil means
	// every request is split independently.
	Sticky *Sticky
}

// Step is one canary step: exactly one of SetWeight and Pause is set.
type Step struct {
	SetWeight *Weight // the canary's share from this step on
	Pause     *Pause
}

// Pause holds a rollout: for Duration counted from the moment the previous
// step was applied by the fleet, or, when Indefinite, until promoted or
// resumed.
type Pause struct {
	Duration   time.Duration
	Indefinite bool
}

// BlueGreenSpec serves Active while Preview is reachable only through
// PreviewMatch, then switches all traffic at once.
type BlueGreenSpec struct {
	Active       string
	Preview      string
	PreviewMatch []Match
	// AutoPromoteAfter promotes this long after the preview was applied;
	// 0 means manual promotion.
	AutoPromoteAfter time.Duration
	// RollbackWindow keeps the old active version warm after promotion so
	// that a rollback is one push; 0 means no rollback.
	RollbackWindow time.Duration
}

// RollingSpec moves traffic from From to To by StepWeight every Interval.
type RollingSpec struct {
	From, To   string
	StepWeight Weight
	Interval   time.Duration
}

// Match is one request condition: a header (gRPC metadata key, lower case)
// or a cookie (HTTP only; proxyless gRPC clients send no cookies), compared
// exactly, by prefix, or by an RE2 regular expression — exactly one of
// Exact, Prefix and Regex is set.
type Match struct {
	Header string
	Cookie string
	Exact  string
	Prefix string
	Regex  string
}

// Sticky names the header or cookie (exactly one) whose value keeps a user
// on one version.
type Sticky struct {
	Header string
	Cookie string
}

// Routing is what a service's traffic should do at one moment: the split
// between versions, requests that always go to one version (evaluated in
// order, before the split), and stickiness of the split.
type Routing struct {
	Weights Weights
	Matches []MatchRoute
	Sticky  *Sticky
}

// MatchRoute sends requests that satisfy every condition to Version.
type MatchRoute struct {
	Conditions []Match
	Version    string
}
