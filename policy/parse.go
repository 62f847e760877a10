package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/weir-mesh/weir/internal/yamlfile"
)

// commonFields are valid in every policy file.
var commonFields = []string{"service", "strategy"}

// strategyFields lists the fields each supported strategy adds. A field that
// belongs to no strategy is unknown (a typo, most likely); a field of another
// strategy is reported as not applying to this one. Later strategies add their
// fields here (canary: stable, canary, stepWeight, interval, ...).
var strategyFields = map[Strategy][]string{
	Fixed: {"weights"},
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
		if p.Weights, err = parseWeights(wv); err != nil {
			return Policy{}, err
		}
	}
	return p, nil
}

// knownFields returns every field of any strategy, so that a typo is reported
// as such before the strategy is looked at.
func knownFields() []string {
	fields := append([]string(nil), commonFields...)
	for _, fs := range strategyFields {
		fields = append(fields, fs...)
	}
	return fields
}

// checkStrategyFields reports a field that some strategy takes, but not st.
func checkStrategyFields(m yamlfile.Map, st Strategy) error {
	for _, k := range m.Keys() {
		if !slices.Contains(commonFields, k) && !slices.Contains(strategyFields[st], k) {
			v, _ := m.Get(k)
			return v.Errorf("does not apply to strategy %s (it takes: %s)", st, strings.Join(strategyFields[st], ", "))
		}
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

func parseWeight(v yamlfile.Value, version string) (Weight, error) {
	switch v.Kind() {
	case "an integer", "a number", "a string":
	default:
		return 0, v.Errorf("weight for %s must be a percentage like 90 or 12.5, not %s", version, v.Kind())
	}
	text := strings.TrimSpace(v.Node.Value)
	if strings.HasPrefix(text, "-") {
		return 0, v.Errorf("weight %s for %s is negative", text, version)
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
