package policy

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/weir-mesh/weir/internal/yamlfile"
)

// The rollout strategies' parts of a policy file: canary, blueGreen and
// rolling specs, request conditions and stickiness.

// parseCanary reads stable: and the canary: block.
func parseCanary(m yamlfile.Map) (*CanarySpec, error) {
	stable, _, err := parseVersion(m, "stable")
	if err != nil {
		return nil, err
	}
	v, err := m.Require("canary")
	if err != nil {
		return nil, err
	}
	cm, err := fields(v, "{version: v2, steps: [...]}", "version", "steps", "match", "sticky")
	if err != nil {
		return nil, err
	}
	c := &CanarySpec{Stable: stable}
	var vv yamlfile.Value
	if c.Version, vv, err = parseVersion(cm, "version"); err != nil {
		return nil, err
	}
	if c.Version == stable {
		return nil, vv.Errorf("is %q, the same as stable; the canary must be another version", stable)
	}
	sv, err := cm.Require("steps")
	if err != nil {
		return nil, err
	}
	if c.Steps, err = parseSteps(sv); err != nil {
		return nil, err
	}
	if mv, ok := cm.Get("match"); ok {
		if c.Match, err = parseMatches(mv); err != nil {
			return nil, err
		}
	}
	if sv, ok := cm.Get("sticky"); ok {
		if c.Sticky, err = parseSticky(sv); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func parseSteps(v yamlfile.Value) ([]Step, error) {
	items, err := v.List()
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, v.Errorf("must list at least one step, like [{setWeight: 10}, {pause: 5m}]")
	}
	steps := make([]Step, len(items))
	highest, at := Weight(0), -1 // the highest setWeight so far, and its step
	for i, item := range items {
		if steps[i], err = parseStep(item); err != nil {
			return nil, err
		}
		if w := steps[i].SetWeight; w != nil && *w < highest {
			return nil, loweringStep(item, *w, highest, at)
		} else if w != nil {
			highest, at = *w, i
		}
	}
	return steps, nil
}

// loweringStep refuses step, whose setWeight w is below highest, that of
// steps[at]: a canary's weight only rises (as stickiness promises, users
// move only from stable to canary), and an edited canary never lowers it.
func loweringStep(step yamlfile.Value, w, highest Weight, at int) error {
	m, _ := fields(step, "", "setWeight", "pause")
	kv, _ := m.Get("setWeight")
	return kv.Errorf("weight %s for the canary is below %s, the weight of steps[%d]: steps may only raise the canary's weight", w, highest, at)
}

// parseStep reads {setWeight: PERCENT} or {pause: DURATION | {} | {duration: DURATION}}.
func parseStep(v yamlfile.Value) (Step, error) {
	m, err := fields(v, "{setWeight: 10} or {pause: 5m}", "setWeight", "pause")
	if err != nil {
		return Step{}, err
	}
	key, kv, err := exactlyOne(m, "setWeight", "pause")
	if err != nil {
		return Step{}, err
	}
	if key == "setWeight" {
		w, err := parseWeight(kv, "the canary")
		return Step{SetWeight: &w}, err
	}
	switch kv.Kind() {
	case "a string", "an integer", "a number":
	case "a mapping":
		pm, err := kv.Fields("duration")
		if err != nil {
			return Step{}, err
		}
		dv, ok := pm.Get("duration")
		if !ok {
			return Step{Pause: &Pause{Indefinite: true}}, nil
		}
		kv = dv
	default:
		return Step{}, kv.Errorf("must be a duration like 30s, or {} to wait until promoted, not %s", kv.Kind())
	}
	d, err := parseDuration(kv, true)
	if err != nil {
		return Step{}, err
	}
	return Step{Pause: &Pause{Duration: d}}, nil
}

// parseBlueGreen reads active:, preview: and their options.
func parseBlueGreen(m yamlfile.Map) (*BlueGreenSpec, error) {
	active, _, err := parseVersion(m, "active")
	if err != nil {
		return nil, err
	}
	preview, pv, err := parseVersion(m, "preview")
	if err != nil {
		return nil, err
	}
	if preview == active {
		return nil, pv.Errorf("is %q, the same as active; the preview must be another version", active)
	}
	bg := &BlueGreenSpec{Active: active, Preview: preview}
	mv, ok := m.Get("previewMatch")
	if ok {
		if bg.PreviewMatch, err = parseMatches(mv); err != nil {
			return nil, err
		}
	}
	if len(bg.PreviewMatch) == 0 {
		e := &yamlfile.Error{File: m.File, Line: m.Line, Field: "previewMatch"}
		if ok {
			e.Line = mv.Line
		}
		e.Msg = `must list at least one condition, like [{header: {name: x-preview, exact: "true"}}]: without one the preview is unreachable until promoted`
		return nil, e
	}
	if bg.AutoPromoteAfter, err = optionalDuration(m, "autoPromoteAfter"); err != nil {
		return nil, err
	}
	if bg.RollbackWindow, err = optionalDuration(m, "rollbackWindow"); err != nil {
		return nil, err
	}
	return bg, nil
}

// parseRolling reads from:, to:, stepWeight: and interval:.
func parseRolling(m yamlfile.Map) (*RollingSpec, error) {
	from, _, err := parseVersion(m, "from")
	if err != nil {
		return nil, err
	}
	to, tv, err := parseVersion(m, "to")
	if err != nil {
		return nil, err
	}
	if to == from {
		return nil, tv.Errorf("is %q, the same as from; a rolling update needs another version", from)
	}
	r := &RollingSpec{From: from, To: to}
	wv, err := m.Require("stepWeight")
	if err != nil {
		return nil, err
	}
	if r.StepWeight, err = parseWeight(wv, "each step"); err != nil {
		return nil, err
	}
	if r.StepWeight == 0 {
		return nil, wv.Errorf("must be more than 0, or the rollout never moves")
	}
	iv, err := m.Require("interval")
	if err != nil {
		return nil, err
	}
	if r.Interval, err = parseDuration(iv, true); err != nil {
		return nil, err
	}
	return r, nil
}

// parseMatches reads a list of request conditions.
func parseMatches(v yamlfile.Value) ([]Match, error) {
	items, err := v.List()
	if err != nil {
		return nil, err
	}
	var out []Match
	for _, item := range items {
		m, err := parseMatch(item)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// parseMatch reads {header: {name: N, exact|prefix|regex: V}} or the same
// with cookie.
func parseMatch(v yamlfile.Value) (Match, error) {
	m, err := fields(v, `{header: {name: x-canary, exact: "true"}}`, "header", "cookie")
	if err != nil {
		return Match{}, err
	}
	kind, cv, err := exactlyOne(m, "header", "cookie")
	if err != nil {
		return Match{}, err
	}
	cm, err := fields(cv, `{name: x-canary, exact: "true"}`, "name", "exact", "prefix", "regex")
	if err != nil {
		return Match{}, err
	}
	nv, err := cm.Require("name")
	if err != nil {
		return Match{}, err
	}
	name, err := parseName(nv, kind)
	if err != nil {
		return Match{}, err
	}
	op, ov, err := exactlyOne(cm, "exact", "prefix", "regex")
	if err != nil {
		return Match{}, err
	}
	value, err := ov.Text()
	if err != nil {
		return Match{}, err
	}
	var match Match
	switch op {
	case "exact":
		match.Exact = value
	case "prefix":
		if value == "" {
			return Match{}, ov.Errorf("must not be empty: an empty prefix matches every request with the %s", kind)
		}
		match.Prefix = value
	case "regex":
		if err := checkRegex(value); err != nil {
			return Match{}, ov.Errorf("%v", err)
		}
		match.Regex = value
	}
	if kind == "header" {
		match.Header = name
	} else {
		match.Cookie = name
	}
	return match, nil
}

// checkRegex reports whether Envoy's safe_regex would take re: Go's regexp and
// Envoy's Google RE2 share one syntax.
func checkRegex(re string) error {
	if re == "" {
		return fmt.Errorf("must not be empty")
	}
	if _, err := regexp.Compile(re); err != nil {
		return fmt.Errorf("regex %q is not valid RE2 syntax (Go regexp and Envoy's safe_regex): %v", re, err)
	}
	return nil
}

// parseSticky reads {header: NAME} or {cookie: NAME}.
func parseSticky(v yamlfile.Value) (*Sticky, error) {
	m, err := fields(v, "{header: x-user-id}", "header", "cookie")
	if err != nil {
		return nil, err
	}
	kind, nv, err := exactlyOne(m, "header", "cookie")
	if err != nil {
		return nil, err
	}
	name, err := parseName(nv, kind)
	if err != nil {
		return nil, err
	}
	if kind == "header" {
		return &Sticky{Header: name}, nil
	}
	return &Sticky{Cookie: name}, nil
}

var (
	headerNameRE = regexp.MustCompile(`^[a-z0-9_.-]+$`)
	// cookieNameRE is an RFC 6265 token.
	cookieNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

// parseName reads the name of a header or a cookie, as kind says. Header
// names follow gRPC's rules for metadata keys, so that a condition works for
// proxyless gRPC clients as well as for Envoy.
func parseName(v yamlfile.Value, kind string) (string, error) {
	name, err := v.Text()
	if err != nil {
		return "", err
	}
	const rule = "gRPC metadata keys are lower-case letters, digits, '-', '_' and '.'"
	switch {
	case kind == "cookie":
		if !cookieNameRE.MatchString(name) {
			return "", v.Errorf("cookie name %q is invalid: must be letters, digits or !#$%%&'*+-.^_`|~ (an RFC 6265 token)", name)
		}
	case strings.HasPrefix(name, ":"):
		return "", v.Errorf("header name %q is a pseudo-header: gRPC metadata keys cannot start with ':'", name)
	case strings.HasPrefix(strings.ToLower(name), "grpc-"):
		return "", v.Errorf("header name %q is reserved: gRPC keeps metadata keys starting with grpc- for itself", name)
	case !headerNameRE.MatchString(name) && headerNameRE.MatchString(strings.ToLower(name)):
		return "", v.Errorf("header name %q must be lower case (%s): %s", name, strings.ToLower(name), rule)
	case !headerNameRE.MatchString(name):
		return "", v.Errorf("header name %q is invalid: %s", name, rule)
	}
	return name, nil
}
