package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/weir-mesh/weir/internal/yamlfile"
)

// DefaultProgressDeadline is how long a rollout waits for the fleet to apply
// a step before it pauses, when the policy does not say.
const DefaultProgressDeadline = 10 * time.Minute

// commonFields are valid in every policy file.
var commonFields = []string{"service", "strategy"}

// progressive are the strategies that move traffic over time.
var progressive = []Strategy{Canary, BlueGreen, Rolling}

// fieldStrategies maps every other top-level field to the strategies that
// take it. A field that belongs to no strategy is unknown (a typo, most
// likely); a field of another strategy is reported as belonging to that one.
var fieldStrategies = map[string][]Strategy{
	"weights":          {Fixed},
	"stable":           {Canary},
	"canary":           {Canary},
	"active":           {BlueGreen},
	"preview":          {BlueGreen},
	"previewMatch":     {BlueGreen},
	"autoPromoteAfter": {BlueGreen},
	"rollbackWindow":   {BlueGreen},
	"from":             {Rolling},
	"to":               {Rolling},
	"stepWeight":       {Rolling},
	"interval":         {Rolling},
	"progressDeadline": progressive,
	"onNack":           progressive,
}

// ParseFile parses and validates one policy file. filename is only used in
// errors, which are *yamlfile.Error values naming the file, line and field of
// the first problem.
func ParseFile(filename string, data []byte) (Policy, error) {
	root, err := yamlfile.Parse(filename, data)
	if err != nil {
		return Policy{}, err
	}
	m, err := root.Fields(knownFields()...)
	if err != nil {
		return Policy{}, err
	}
	p := Policy{File: filename}
	if p.Service, p.Line, err = parseService(m); err != nil {
		return Policy{}, err
	}
	if p.Strategy, err = parseStrategyField(m); err != nil {
		return Policy{}, err
	}
	if err := checkStrategyFields(m, p.Strategy); err != nil {
		return Policy{}, err
	}
	switch p.Strategy {
	case Fixed:
		wv, err := m.Require("weights")
		if err != nil {
			return Policy{}, err
		}
		p.Weights, err = parseWeights(wv)
		if err != nil {
			return Policy{}, err
		}
		return p, nil
	case Canary:
		p.Canary, err = parseCanary(m)
	case BlueGreen:
		p.BlueGreen, err = parseBlueGreen(m)
	case Rolling:
		p.Rolling, err = parseRolling(m)
	}
	if err != nil {
		return Policy{}, err
	}
	if p.ProgressDeadline, p.OnNack, err = parseProgress(m); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// knownFields returns every field of any strategy, so that a typo is reported
// as such before the strategy is looked at.
func knownFields() []string {
	fields := slices.Clone(commonFields)
	for f := range fieldStrategies {
		fields = append(fields, f)
	}
	return fields
}

// fieldsOf returns the fields that st adds to the common ones, sorted.
func fieldsOf(st Strategy) []string {
	var fields []string
	for f, sts := range fieldStrategies {
		if slices.Contains(sts, st) {
			fields = append(fields, f)
		}
	}
	slices.Sort(fields)
	return fields
}

// checkStrategyFields reports a field that some strategy takes, but not st.
func checkStrategyFields(m yamlfile.Map, st Strategy) error {
	for _, k := range m.Keys() {
		sts := fieldStrategies[k]
		if slices.Contains(commonFields, k) || slices.Contains(sts, st) {
			continue
		}
		v, _ := m.Get(k)
		which := "strategy " + string(sts[0])
		if len(sts) > 1 {
			which = "strategies " + list(sts[:len(sts)-1]) + " and " + string(sts[len(sts)-1])
		}
		return v.Errorf("field %q is for %s, not %s (%s takes: %s)", k, which, st, st, strings.Join(fieldsOf(st), ", "))
	}
	return nil
}

func parseService(m yamlfile.Map) (string, int, error) {
	v, err := m.Require("service")
	if err != nil {
		return "", 0, err
	}
	name, err := v.Text()
	if err != nil {
		return "", 0, err
	}
	if err := yamlfile.CheckServiceName(name); err != nil {
		return "", 0, v.Errorf("%v", err)
	}
	return name, v.Line, nil
}

func parseStrategyField(m yamlfile.Map) (Strategy, error) {
	v, err := m.Require("strategy")
	if err != nil {
		return "", err
	}
	s, err := v.Text()
	if err != nil {
		return "", err
	}
	st, err := parseStrategy(s)
	if err != nil {
		return "", v.Errorf("%v", err)
	}
	return st, nil
}

// parseProgress reads progressDeadline: and onNack:, which every progressive
// strategy takes, and fills in their defaults.
func parseProgress(m yamlfile.Map) (time.Duration, NackAction, error) {
	deadline, action := DefaultProgressDeadline, NackPause
	if v, ok := m.Get("progressDeadline"); ok {
		var err error
		if deadline, err = parseDuration(v, true); err != nil {
			return 0, "", err
		}
	}
	if v, ok := m.Get("onNack"); ok {
		switch s := v.Node.Value; {
		case v.Kind() != "a string":
			return 0, "", v.Errorf("must be pause or abort, not %s", v.Kind())
		case s == string(NackPause), s == string(NackAbort):
			action = NackAction(s)
		default:
			return 0, "", v.Errorf("must be pause or abort, not %q", s)
		}
	}
	return deadline, action, nil
}

// parseVersion reads the required version in field key of m.
func parseVersion(m yamlfile.Map, key string) (string, yamlfile.Value, error) {
	v, err := m.Require(key)
	if err != nil {
		return "", v, err
	}
	s, err := v.Text()
	if err != nil {
		return "", v, err
	}
	if err := yamlfile.CheckVersion(s); err != nil {
		return "", v, v.Errorf("%v", err)
	}
	return s, v, nil
}

// fields is Value.Fields with an example of the mapping wanted in the error
// for a value that is not a mapping.
func fields(v yamlfile.Value, example string, valid ...string) (yamlfile.Map, error) {
	if v.Kind() != "a mapping" {
		return yamlfile.Map{}, v.Errorf("must be a mapping like %s, not %s", example, v.Kind())
	}
	return v.Fields(valid...)
}

// exactlyOne returns the one of keys that m has, and its value.
func exactlyOne(m yamlfile.Map, keys ...string) (string, yamlfile.Value, error) {
	var found []string
	for _, k := range keys {
		if _, ok := m.Get(k); ok {
			found = append(found, k)
		}
	}
	alternatives := strings.Join(keys[:len(keys)-1], ", ") + " or " + keys[len(keys)-1]
	switch len(found) {
	case 0:
		return "", yamlfile.Value{}, m.Errorf("must have one of %s", alternatives)
	case 1:
		v, _ := m.Get(found[0])
		return found[0], v, nil
	}
	v, _ := m.Get(found[1])
	return "", v, v.Errorf("cannot be given with %s: give exactly one of %s", found[0], alternatives)
}

// parseDuration reads a Go duration such as 30s, 10m or 1h30m. A bare number
// other than 0 is an error rather than a guess at its unit.
func parseDuration(v yamlfile.Value, positive bool) (time.Duration, error) {
	switch v.Kind() {
	case "a string", "an integer", "a number":
	default:
		return 0, v.Errorf("must be a duration like 30s, 10m or 1h30m, not %s", v.Kind())
	}
	s := strings.TrimSpace(v.Node.Value)
	if s != "0" && strings.ContainsAny(s, "0123456789") && strings.Trim(s, "0123456789.+-") == "" {
		return 0, v.Errorf("duration %q has no unit: write it with one, like 30s, 10m or 1h30m", s)
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, v.Errorf("duration %q is invalid: write a Go duration like 30s, 10m or 1h30m", s)
	case d < 0:
		return 0, v.Errorf("duration %q is negative", s)
	case d == 0 && positive:
		return 0, v.Errorf("duration %q must be more than 0", s)
	}
	return d, nil
}

// optionalDuration reads a duration of 0 or more in field key of m; absent
// is 0.
func optionalDuration(m yamlfile.Map, key string) (time.Duration, error) {
	v, ok := m.Get(key)
	if !ok {
		return 0, nil
	}
	return parseDuration(v, false)
}

// parseWeights reads a mapping of version to percentage. The percentages are
// read as the text the operator wrote, not as YAML floats, so that 0.01 is
// exact and 12.345 is an error rather than silently rounded.
func parseWeights(v yamlfile.Value) (Weights, error) {
	m, err := v.Map()
	if err != nil {
		return nil, err
	}
	keys := m.Keys()
	if len(keys) == 0 {
		return nil, v.Errorf("must list at least one version, like {v1: 100}")
	}
	ws := make(Weights, len(keys))
	var sum uint64
	for _, version := range keys {
		wv, _ := m.Get(version)
		if err := yamlfile.CheckVersion(version); err != nil {
			return nil, wv.Errorf("%v", err)
		}
		w, err := parseWeight(wv, version)
		if err != nil {
			return nil, err
		}
		ws[version] = w
		sum += uint64(w)
	}
	if sum != uint64(Full) {
		return nil, v.Errorf("weights sum to %s, must be 100", percent(sum))
	}
	return ws, nil
}

// parseWeight reads one percentage; whose says whose share it is, for errors.
func parseWeight(v yamlfile.Value, whose string) (Weight, error) {
	switch v.Kind() {
	case "an integer", "a number", "a string":
	default:
		return 0, v.Errorf("weight for %s must be a percentage like 90 or 12.5, not %s", whose, v.Kind())
	}
	text := strings.TrimSpace(v.Node.Value)
	if strings.HasPrefix(text, "-") {
		return 0, v.Errorf("weight %s for %s is negative", text, whose)
	}
	w, err := ParseWeight(text)
	if err != nil {
		return 0, v.Errorf("%v", err)
	}
	return w, nil
}

// percent formats hundredths of a percent like Weight.String, for sums that
// may exceed a Weight.
func percent(hundredths uint64) string {
	s := fmt.Sprintf("%d.%02d", hundredths/100, hundredths%100)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
