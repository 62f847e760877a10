package policy

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/weir-mesh/weir/internal/yamlfile"
)

func TestParseFile(t *testing.T) {
	tests := []struct {
		name, in string
		want     Policy
	}{
		{
			name: "flow weights",
			in:   "service: greeter\nstrategy: fixed\nweights: {v1: 90, v2: 10}\n",
			want: Policy{Service: "greeter", Strategy: Fixed, Weights: Weights{"v1": 9000, "v2": 1000}, File: "p.yaml", Line: 1},
		},
		{
			name: "finest resolution",
			in:   "service: greeter\nstrategy: fixed\nweights: {v1: 99.99, v2: 0.01}\n",
			want: Policy{Service: "greeter", Strategy: Fixed, Weights: Weights{"v1": 9999, "v2": 1}, File: "p.yaml", Line: 1},
		},
		{
			name: "block weights, quoted and decimal, comments",
			in:   "# Greeter's split.\nstrategy: fixed\nservice: greeter\nweights:\n  v1: \"87.5\"\n  v2: 12.5\n  1.0: 0\n",
			want: Policy{Service: "greeter", Strategy: Fixed, Weights: Weights{"v1": 8750, "v2": 1250, "1.0": 0}, File: "p.yaml", Line: 3},
		},
		{
			name: "one version",
			in:   "service: a\nstrategy: fixed\nweights: {v1: 100}\n",
			want: Policy{Service: "a", Strategy: Fixed, Weights: Weights{"v1": Full}, File: "p.yaml", Line: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFile("p.yaml", []byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseFile (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseFileErrors(t *testing.T) {
	const versionRule = `must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit (^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$)`
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "p.yaml: file is empty, want a YAML mapping"},
		// The yaml library reports the line before a flow mapping that is not
		// closed (go-yaml/yaml#205); the message is passed on as it is.
		{"syntax error", "service: a\nstrategy: fixed\nweights: {v1: 100\n", "p.yaml:2: invalid YAML: did not find expected ',' or '}'"},
		{"syntax error in block", "service: a\nstrategy fixed\nweights: {v1: 100}\n", "p.yaml:2: invalid YAML: could not find expected ':'"},
		{"list", "- service: a\n", "p.yaml:1: the document must be a mapping, not a list"},
		{"unknown field", "service: a\nstrategy: fixed\nweight: {v1: 100}\n", `p.yaml:3: unknown field "weight" (valid: service, strategy, weights)`},
		{"future field", "service: a\nstrategy: canary\nstepWeight: 10\n", `p.yaml:3: unknown field "stepWeight" (valid: service, strategy, weights)`},
		{"duplicate field", "service: a\nservice: b\n", `p.yaml:2: key "service" is repeated (first on line 1)`},
		{"missing service", "strategy: fixed\nweights: {v1: 100}\n", "p.yaml:1: service: is required"},
		{"null service", "service:\nstrategy: fixed\nweights: {v1: 100}\n", "p.yaml:1: service: is required"},
		{"bad service", "service: Greeter\nstrategy: fixed\nweights: {v1: 100}\n",
			`p.yaml:1: service: service name "Greeter" is invalid: must be 1-63 lower-case letters, digits or '-', not starting or ending with '-' (^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$)`},
		{"missing strategy", "service: a\nweights: {v1: 100}\n", "p.yaml:1: strategy: is required"},
		{"bad strategy", "service: a\nstrategy: fixd\nweights: {v1: 100}\n", `p.yaml:2: strategy: unknown strategy "fixd" (supported: fixed)`},
		{"strategy case", "service: a\nstrategy: bluegreen\n", `p.yaml:2: strategy: unknown strategy "bluegreen" (supported: fixed)`},
		{"canary", "service: a\nstrategy: canary\n", `p.yaml:2: strategy: strategy "canary" is not supported yet (supported: fixed)`},
		{"blueGreen", "service: a\nstrategy: blueGreen\n", `p.yaml:2: strategy: strategy "blueGreen" is not supported yet (supported: fixed)`},
		{"rolling", "service: a\nstrategy: rolling\n", `p.yaml:2: strategy: strategy "rolling" is not supported yet (supported: fixed)`},
		{"missing weights", "service: a\nstrategy: fixed\n", "p.yaml:1: weights: is required"},
		{"weights a list", "service: a\nstrategy: fixed\nweights: [90, 10]\n", "p.yaml:3: weights: must be a mapping, not a list"},
		{"weights a number", "service: a\nstrategy: fixed\nweights: 100\n", "p.yaml:3: weights: must be a mapping, not an integer"},
		{"no versions", "service: a\nstrategy: fixed\nweights: {}\n", "p.yaml:3: weights: must list at least one version, like {v1: 100}"},
		{"sum below", "service: a\nstrategy: fixed\nweights:\n  v1: 89.5\n  v2: 10\n", "p.yaml:3: weights: weights sum to 99.5, must be 100"},
		{"sum above", "service: a\nstrategy: fixed\nweights: {v1: 100, v2: 0.01}\n", "p.yaml:3: weights: weights sum to 100.01, must be 100"},
		{"negative", "service: a\nstrategy: fixed\nweights:\n  v2: -5\n  v1: 105\n", "p.yaml:4: weights.v2: weight -5 for v2 is negative"},
		{"three decimals", "service: a\nstrategy: fixed\nweights: {v1: 87.655, v2: 12.345}\n",
			`p.yaml:3: weights.v1: weight "87.655" must have one or two decimals (0.01 % resolution)`},
		{"over 100", "service: a\nstrategy: fixed\nweights: {v1: 101}\n", `p.yaml:3: weights.v1: weight "101" is not a percentage between 0 and 100`},
		{"exponent", "service: a\nstrategy: fixed\nweights: {v1: 1e2}\n", `p.yaml:3: weights.v1: weight "1e2" is not a percentage between 0 and 100`},
		{"percent sign", "service: a\nstrategy: fixed\nweights: {v1: 100%}\n", `p.yaml:3: weights.v1: weight "100%" is not a percentage between 0 and 100`},
		{"weight a list", "service: a\nstrategy: fixed\nweights: {v1: [100]}\n", "p.yaml:3: weights.v1: weight for v1 must be a percentage like 90 or 12.5, not a list"},
		{"weight null", "service: a\nstrategy: fixed\nweights:\n  v1:\n", "p.yaml:4: weights.v1: weight for v1 must be a percentage like 90 or 12.5, not null"},
		{"bad version", "service: a\nstrategy: fixed\nweights:\n  v1: 50\n  v 2: 50\n", `p.yaml:5: weights.v 2: version "v 2" is invalid: ` + versionRule},
		{"duplicate version", "service: a\nstrategy: fixed\nweights:\n  v1: 50\n  v1: 50\n", `p.yaml:5: weights: key "v1" is repeated (first on line 4)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseFile("p.yaml", []byte(tt.in))
			if err == nil {
				t.Fatalf("ParseFile succeeded, want %q", tt.want)
			}
			var ye *yamlfile.Error
			if !errors.As(err, &ye) {
				t.Errorf("error %T is not a *yamlfile.Error", err)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}
