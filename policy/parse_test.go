package policy

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/weir-mesh/weir/internal/yamlfile"
)

// The files of the brief for each progressive strategy, exactly.
const (
	canaryFile = `service: greeter
strategy: canary
stable: v1
canary:
  version: v2
  steps:
    - setWeight: 5
    - pause: 30s
    - setWeight: 25
    - pause: {}                 # indefinite: waits for promote
    - setWeight: 50
    - pause: 10m
  match:                        # requests that always go to the canary
    - header: {name: x-canary, exact: "true"}
  sticky: {header: x-user-id}   # a user keeps one version while weights move (cookie also allowed)
progressDeadline: 2m            # a step the fleet has not applied by then → paused, with the reason
onNack: pause                   # pause | abort
`
	blueGreenFile = `service: checkout
strategy: blueGreen
active: v1
preview: v2                     # reachable only through previewMatch until promoted
previewMatch:
  - header: {name: x-preview, exact: "true"}
autoPromoteAfter: 10m           # optional; otherwise manual
rollbackWindow: 30m             # after promote the old version stays warm; rollback is one push
`
	rollingFile = `service: ledger
strategy: rolling
from: v1
to: v2
stepWeight: 10
interval: 1m
`
)

func weight(w Weight) *Weight { return &w }

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
		{
			name: "canary",
			in:   canaryFile,
			want: Policy{Service: "greeter", Strategy: Canary, File: "p.yaml", Line: 1,
				Canary: &CanarySpec{Stable: "v1", Version: "v2",
					Steps: []Step{
						{SetWeight: weight(500)},
						{Pause: &Pause{Duration: 30 * time.Second}},
						{SetWeight: weight(2500)},
						{Pause: &Pause{Indefinite: true}},
						{SetWeight: weight(5000)},
						{Pause: &Pause{Duration: 10 * time.Minute}},
					},
					Match:  []Match{{Header: "x-canary", Exact: "true"}},
					Sticky: &Sticky{Header: "x-user-id"},
				},
				ProgressDeadline: 2 * time.Minute, OnNack: NackPause},
		},
		{
			name: "blueGreen",
			in:   blueGreenFile,
			want: Policy{Service: "checkout", Strategy: BlueGreen, File: "p.yaml", Line: 1,
				BlueGreen: &BlueGreenSpec{Active: "v1", Preview: "v2",
					PreviewMatch:     []Match{{Header: "x-preview", Exact: "true"}},
					AutoPromoteAfter: 10 * time.Minute, RollbackWindow: 30 * time.Minute},
				ProgressDeadline: DefaultProgressDeadline, OnNack: NackPause},
		},
		{
			name: "rolling",
			in:   rollingFile,
			want: Policy{Service: "ledger", Strategy: Rolling, File: "p.yaml", Line: 1,
				Rolling:          &RollingSpec{From: "v1", To: "v2", StepWeight: 1000, Interval: time.Minute},
				ProgressDeadline: DefaultProgressDeadline, OnNack: NackPause},
		},
		{
			name: "canary minimal, pause forms, cookies and every comparator",
			in: "service: a\nstrategy: canary\nstable: 1.0\ncanary:\n  version: 1.1\n  steps:\n" +
				"    - {pause: {duration: 1h30m}}\n    - setWeight: \"0.01\"\n    - setWeight: 100\n" +
				"  match:\n    - cookie: {name: Beta_Group, prefix: team-}\n    - header: {name: x-env.v_1, regex: \"qa|dev\"}\n" +
				"    - header: {name: x-empty, exact: \"\"}\n  sticky: {cookie: session}\nonNack: abort\n",
			want: Policy{Service: "a", Strategy: Canary, File: "p.yaml", Line: 1,
				Canary: &CanarySpec{Stable: "1.0", Version: "1.1",
					Steps:  []Step{{Pause: &Pause{Duration: 90 * time.Minute}}, {SetWeight: weight(1)}, {SetWeight: weight(Full)}},
					Match:  []Match{{Cookie: "Beta_Group", Prefix: "team-"}, {Header: "x-env.v_1", Regex: "qa|dev"}, {Header: "x-empty"}},
					Sticky: &Sticky{Cookie: "session"},
				},
				ProgressDeadline: DefaultProgressDeadline, OnNack: NackAbort},
		},
		{
			name: "blueGreen zero durations",
			in:   "service: a\nstrategy: blueGreen\nactive: v1\npreview: v2\npreviewMatch: [{cookie: {name: preview, exact: yes}}]\nautoPromoteAfter: 0\nrollbackWindow: 0s\nprogressDeadline: 1.5h\n",
			want: Policy{Service: "a", Strategy: BlueGreen, File: "p.yaml", Line: 1,
				BlueGreen:        &BlueGreenSpec{Active: "v1", Preview: "v2", PreviewMatch: []Match{{Cookie: "preview", Exact: "yes"}}},
				ProgressDeadline: 90 * time.Minute, OnNack: NackPause},
		},
		{
			name: "rolling decimal step",
			in:   "service: a\nstrategy: rolling\nfrom: v1\nto: v2\nstepWeight: 12.5\ninterval: \"90s\"\n",
			want: Policy{Service: "a", Strategy: Rolling, File: "p.yaml", Line: 1,
				Rolling:          &RollingSpec{From: "v1", To: "v2", StepWeight: 1250, Interval: 90 * time.Second},
				ProgressDeadline: DefaultProgressDeadline, OnNack: NackPause},
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
		{"duplicate field", "service: a\nservice: b\n", `p.yaml:2: key "service" is repeated (first on line 1)`},
		{"missing service", "strategy: fixed\nweights: {v1: 100}\n", "p.yaml:1: service: is required"},
		{"null service", "service:\nstrategy: fixed\nweights: {v1: 100}\n", "p.yaml:1: service: is required"},
		{"bad service", "service: Greeter\nstrategy: fixed\nweights: {v1: 100}\n",
			`p.yaml:1: service: service name "Greeter" is invalid: must be 1-63 lower-case letters, digits or '-', not starting or ending with '-' (^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$)`},
		{"missing strategy", "service: a\nweights: {v1: 100}\n", "p.yaml:1: strategy: is required"},
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
		{"unknown field", "service: a\nstrategy: fixed\nweight: {v1: 100}\n",
			`p.yaml:3: unknown field "weight" (valid: active, autoPromoteAfter, canary, from, interval, onNack, preview, previewMatch, progressDeadline, rollbackWindow, service, stable, stepWeight, strategy, to, weights)`},
		{"field of another strategy", "service: a\nstrategy: canary\nstepWeight: 10\n",
			`p.yaml:3: stepWeight: field "stepWeight" is for strategy rolling, not canary (canary takes: canary, onNack, progressDeadline, stable)`},
		{"field of three strategies on fixed", "service: a\nstrategy: fixed\nweights: {v1: 100}\nonNack: abort\n",
			`p.yaml:4: onNack: field "onNack" is for strategies canary, blueGreen and rolling, not fixed (fixed takes: weights)`},
		{"blueGreen field on rolling", "service: a\nstrategy: rolling\npreviewMatch: []\n",
			`p.yaml:3: previewMatch: field "previewMatch" is for strategy blueGreen, not rolling (rolling takes: from, interval, onNack, progressDeadline, stepWeight, to)`},
		{"bad strategy", "service: a\nstrategy: fixd\nweights: {v1: 100}\n",
			`p.yaml:2: strategy: unknown strategy "fixd" (strategies: fixed, canary, blueGreen, rolling)`},
		{"strategy case", "service: a\nstrategy: bluegreen\n",
			`p.yaml:2: strategy: unknown strategy "bluegreen": did you mean blueGreen? (strategies: fixed, canary, blueGreen, rolling)`},
		{"canary missing stable", "service: a\nstrategy: canary\n",
			`p.yaml:1: stable: is required`},
		{"canary missing block", "service: a\nstrategy: canary\nstable: v1\n",
			`p.yaml:1: canary: is required`},
		{"canary block a string", "service: a\nstrategy: canary\nstable: v1\ncanary: v2\n",
			`p.yaml:4: canary: must be a mapping like {version: v2, steps: [...]}, not a string`},
		{"canary unknown field", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  step: []\n",
			`p.yaml:6: canary: unknown field "step" (valid: match, steps, sticky, version)`},
		{"canary missing version", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  steps: [{setWeight: 5}]\n",
			`p.yaml:4: canary.version: is required`},
		{"canary bad version", "service: a\nstrategy: canary\nstable: v1\ncanary: {version: v/2, steps: [{setWeight: 5}]}\n",
			`p.yaml:4: canary.version: version "v/2" is invalid: must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit (^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$)`},
		{"bad stable", "service: a\nstrategy: canary\nstable: [v1]\n",
			`p.yaml:3: stable: must be a string, not a list`},
		{"canary same as stable", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v1\n  steps: [{setWeight: 5}]\n",
			`p.yaml:5: canary.version: is "v1", the same as stable; the canary must be another version`},
		{"missing steps", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n",
			`p.yaml:4: canary.steps: is required`},
		{"empty steps", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps: []\n",
			`p.yaml:6: canary.steps: must list at least one step, like [{setWeight: 10}, {pause: 5m}]`},
		{"steps a mapping", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps: {setWeight: 5}\n",
			`p.yaml:6: canary.steps: must be a list, not a mapping`},
		{"step a number", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps:\n    - 5\n",
			`p.yaml:7: canary.steps[0]: must be a mapping like {setWeight: 10} or {pause: 5m}, not an integer`},
		{"step empty", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps:\n    - {}\n",
			`p.yaml:7: canary.steps[0]: must have one of setWeight or pause`},
		{"step both", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps:\n    - setWeight: 5\n      pause: 1m\n",
			`p.yaml:8: canary.steps[0].pause: cannot be given with setWeight: give exactly one of setWeight or pause`},
		{"step unknown", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps:\n    - setweight: 5\n",
			`p.yaml:7: canary.steps[0]: unknown field "setweight" (valid: pause, setWeight)`},
		{"setWeight over 100", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps:\n    - setWeight: 100.01\n",
			`p.yaml:7: canary.steps[0].setWeight: weight "100.01" is more than 100`},
		{"setWeight negative", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps:\n    - setWeight: -5\n",
			`p.yaml:7: canary.steps[0].setWeight: weight -5 for the canary is negative`},
		{"setWeight three decimals", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps:\n    - setWeight: 0.001\n",
			`p.yaml:7: canary.steps[0].setWeight: weight "0.001" must have one or two decimals (0.01 % resolution)`},
		// A canary's weight only rises: 50, then 10 moved users back.
		{"setWeight lower", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps:\n    - setWeight: 50\n    - pause: 1m\n    - setWeight: 10\n",
			`p.yaml:9: canary.steps[2].setWeight: weight 10 for the canary is below 50, the weight of steps[0]: steps may only raise the canary's weight`},
		{"setWeight null", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps:\n    - setWeight:\n",
			`p.yaml:7: canary.steps[0].setWeight: weight for the canary must be a percentage like 90 or 12.5, not null`},
		{"pause without unit", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps:\n    - setWeight: 5\n    - pause: 30\n",
			`p.yaml:8: canary.steps[1].pause: duration "30" has no unit: write it with one, like 30s, 10m or 1h30m`},
		{"pause quoted without unit", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps:\n    - pause: \"1.5\"\n",
			`p.yaml:7: canary.steps[0].pause: duration "1.5" has no unit: write it with one, like 30s, 10m or 1h30m`},
		{"pause zero", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps:\n    - pause: 0s\n",
			`p.yaml:7: canary.steps[0].pause: duration "0s" must be more than 0`},
		{"pause negative", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps:\n    - pause: -1m\n",
			`p.yaml:7: canary.steps[0].pause: duration "-1m" is negative`},
		{"pause bad", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps:\n    - pause: 5 minutes\n",
			`p.yaml:7: canary.steps[0].pause: duration "5 minutes" is invalid: write a Go duration like 30s, 10m or 1h30m`},
		{"pause null", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps:\n    - pause:\n",
			`p.yaml:7: canary.steps[0].pause: must be a duration like 30s, or {} to wait until promoted, not null`},
		{"pause list", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps:\n    - pause: [30s]\n",
			`p.yaml:7: canary.steps[0].pause: must be a duration like 30s, or {} to wait until promoted, not a list`},
		{"pause unknown field", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps:\n    - pause: {for: 30s}\n",
			`p.yaml:7: canary.steps[0].pause: unknown field "for" (valid: duration)`},
		{"pause duration zero", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps:\n    - pause: {duration: 0}\n",
			`p.yaml:7: canary.steps[0].pause.duration: duration "0" must be more than 0`},
		{"match not a list", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps: [{setWeight: 5}]\n  match: {header: {name: x, exact: y}}\n",
			`p.yaml:7: canary.match: must be a list, not a mapping`},
		{"match item a string", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps: [{setWeight: 5}]\n  match: [x-canary]\n",
			`p.yaml:7: canary.match[0]: must be a mapping like {header: {name: x-canary, exact: "true"}}, not a string`},
		{"match item empty", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps: [{setWeight: 5}]\n  match:\n    - {}\n",
			`p.yaml:8: canary.match[0]: must have one of header or cookie`},
		{"match header and cookie", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps: [{setWeight: 5}]\n  match:\n    - header: {name: x, exact: y}\n      cookie: {name: x, exact: y}\n",
			`p.yaml:9: canary.match[0].cookie: cannot be given with header: give exactly one of header or cookie`},
		{"match unknown kind", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps: [{setWeight: 5}]\n  match:\n    - query: {name: x, exact: y}\n",
			`p.yaml:8: canary.match[0]: unknown field "query" (valid: cookie, header)`},
		{"match header a string", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps: [{setWeight: 5}]\n  match:\n    - header: x-canary\n",
			`p.yaml:8: canary.match[0].header: must be a mapping like {name: x-canary, exact: "true"}, not a string`},
		{"match missing name", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps: [{setWeight: 5}]\n  match:\n    - header: {exact: y}\n",
			`p.yaml:8: canary.match[0].header.name: is required`},
		{"match no comparator", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps: [{setWeight: 5}]\n  match:\n    - header: {name: x}\n",
			`p.yaml:8: canary.match[0].header: must have one of exact, prefix or regex`},
		{"match two comparators", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps: [{setWeight: 5}]\n  match:\n    - header:\n        name: x\n        exact: y\n        regex: y.*\n",
			`p.yaml:11: canary.match[0].header.regex: cannot be given with exact: give exactly one of exact, prefix or regex`},
		{"match unknown comparator", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps: [{setWeight: 5}]\n  match:\n    - header: {name: x, suffix: y}\n",
			`p.yaml:8: canary.match[0].header: unknown field "suffix" (valid: exact, name, prefix, regex)`},
		{"match exact boolean", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps: [{setWeight: 5}]\n  match:\n    - header: {name: x-canary, exact: true}\n",
			`p.yaml:8: canary.match[0].header.exact: must be a string, not a boolean`},
		{"match empty prefix", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps: [{setWeight: 5}]\n  match:\n    - cookie: {name: c, prefix: \"\"}\n",
			`p.yaml:8: canary.match[0].cookie.prefix: must not be empty: an empty prefix matches every request with the cookie`},
		{"match bad regex", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps: [{setWeight: 5}]\n  match:\n    - header: {name: x, exact: y}\n    - header: {name: x, regex: \"(a\"}\n",
			"p.yaml:9: canary.match[1].header.regex: regex \"(a\" is not valid RE2 syntax (Go regexp and Envoy's safe_regex): error parsing regexp: missing closing ): `(a`"},
		{"match lookahead regex", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps: [{setWeight: 5}]\n  match:\n    - header: {name: x, regex: \"a(?=b)\"}\n",
			"p.yaml:8: canary.match[0].header.regex: regex \"a(?=b)\" is not valid RE2 syntax (Go regexp and Envoy's safe_regex): error parsing regexp: invalid or unsupported Perl syntax: `(?=`"},
		{"match empty regex", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps: [{setWeight: 5}]\n  match:\n    - header: {name: x, regex: \"\"}\n",
			`p.yaml:8: canary.match[0].header.regex: must not be empty`},
		{"header upper case", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps: [{setWeight: 5}]\n  match:\n    - header: {name: X-Canary, exact: \"true\"}\n",
			`p.yaml:8: canary.match[0].header.name: header name "X-Canary" must be lower case (x-canary): gRPC metadata keys are lower-case letters, digits, '-', '_' and '.'`},
		{"header pseudo", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps: [{setWeight: 5}]\n  match:\n    - header: {name: \":authority\", exact: a}\n",
			`p.yaml:8: canary.match[0].header.name: header name ":authority" is a pseudo-header: gRPC metadata keys cannot start with ':'`},
		{"header grpc", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps: [{setWeight: 5}]\n  match:\n    - header: {name: grpc-timeout, exact: 1S}\n",
			`p.yaml:8: canary.match[0].header.name: header name "grpc-timeout" is reserved: gRPC keeps metadata keys starting with grpc- for itself`},
		{"header space", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps: [{setWeight: 5}]\n  match:\n    - header: {name: \"x canary\", exact: a}\n",
			`p.yaml:8: canary.match[0].header.name: header name "x canary" is invalid: gRPC metadata keys are lower-case letters, digits, '-', '_' and '.'`},
		{"header empty name", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps: [{setWeight: 5}]\n  match:\n    - header: {name: \"\", exact: a}\n",
			`p.yaml:8: canary.match[0].header.name: header name "" is invalid: gRPC metadata keys are lower-case letters, digits, '-', '_' and '.'`},
		{"cookie bad name", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps: [{setWeight: 5}]\n  match:\n    - cookie: {name: \"a=b\", exact: a}\n",
			"p.yaml:8: canary.match[0].cookie.name: cookie name \"a=b\" is invalid: must be letters, digits or !#$%&'*+-.^_`|~ (an RFC 6265 token)"},
		{"sticky empty", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps: [{setWeight: 5}]\n  sticky: {}\n",
			`p.yaml:7: canary.sticky: must have one of header or cookie`},
		{"sticky both", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps: [{setWeight: 5}]\n  sticky: {header: x-user, cookie: user}\n",
			`p.yaml:7: canary.sticky.cookie: cannot be given with header: give exactly one of header or cookie`},
		{"sticky a string", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps: [{setWeight: 5}]\n  sticky: x-user-id\n",
			`p.yaml:7: canary.sticky: must be a mapping like {header: x-user-id}, not a string`},
		{"sticky bad header", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps: [{setWeight: 5}]\n  sticky:\n    header: grpc-user\n",
			`p.yaml:8: canary.sticky.header: header name "grpc-user" is reserved: gRPC keeps metadata keys starting with grpc- for itself`},
		{"sticky unknown", "service: a\nstrategy: canary\nstable: v1\ncanary:\n  version: v2\n  steps: [{setWeight: 5}]\n  sticky: {query: user}\n",
			`p.yaml:7: canary.sticky: unknown field "query" (valid: cookie, header)`},
		{"progressDeadline zero", "service: a\nstrategy: canary\nstable: v1\ncanary: {version: v2, steps: [{setWeight: 5}]}\nprogressDeadline: 0\n",
			`p.yaml:5: progressDeadline: duration "0" must be more than 0`},
		{"progressDeadline without unit", "service: a\nstrategy: rolling\nfrom: v1\nto: v2\nstepWeight: 10\ninterval: 1m\nprogressDeadline: 120\n",
			`p.yaml:7: progressDeadline: duration "120" has no unit: write it with one, like 30s, 10m or 1h30m`},
		{"progressDeadline a list", "service: a\nstrategy: rolling\nfrom: v1\nto: v2\nstepWeight: 10\ninterval: 1m\nprogressDeadline: [1m]\n",
			`p.yaml:7: progressDeadline: must be a duration like 30s, 10m or 1h30m, not a list`},
		{"onNack bad", "service: a\nstrategy: canary\nstable: v1\ncanary: {version: v2, steps: [{setWeight: 5}]}\nonNack: rollback\n",
			`p.yaml:5: onNack: must be pause or abort, not "rollback"`},
		{"onNack null", "service: a\nstrategy: canary\nstable: v1\ncanary: {version: v2, steps: [{setWeight: 5}]}\nonNack:\n",
			`p.yaml:5: onNack: must be pause or abort, not null`},
		{"onNack boolean", "service: a\nstrategy: canary\nstable: v1\ncanary: {version: v2, steps: [{setWeight: 5}]}\nonNack: true\n",
			`p.yaml:5: onNack: must be pause or abort, not a boolean`},
		{"blueGreen missing active", "service: a\nstrategy: blueGreen\npreview: v2\n",
			`p.yaml:1: active: is required`},
		{"blueGreen missing preview", "service: a\nstrategy: blueGreen\nactive: v1\n",
			`p.yaml:1: preview: is required`},
		{"blueGreen same versions", "service: a\nstrategy: blueGreen\nactive: v1\npreview: v1\n",
			`p.yaml:4: preview: is "v1", the same as active; the preview must be another version`},
		{"blueGreen missing previewMatch", "service: a\nstrategy: blueGreen\nactive: v1\npreview: v2\n",
			`p.yaml:1: previewMatch: must list at least one condition, like [{header: {name: x-preview, exact: "true"}}]: without one the preview is unreachable until promoted`},
		{"blueGreen empty previewMatch", "service: a\nstrategy: blueGreen\nactive: v1\npreview: v2\npreviewMatch: []\n",
			`p.yaml:5: previewMatch: must list at least one condition, like [{header: {name: x-preview, exact: "true"}}]: without one the preview is unreachable until promoted`},
		{"blueGreen null previewMatch", "service: a\nstrategy: blueGreen\nactive: v1\npreview: v2\npreviewMatch:\n",
			`p.yaml:5: previewMatch: must list at least one condition, like [{header: {name: x-preview, exact: "true"}}]: without one the preview is unreachable until promoted`},
		{"blueGreen previewMatch bad item", "service: a\nstrategy: blueGreen\nactive: v1\npreview: v2\npreviewMatch:\n  - header: {name: x-preview, prefix: a, exact: b}\n",
			`p.yaml:6: previewMatch[0].header.prefix: cannot be given with exact: give exactly one of exact, prefix or regex`},
		{"blueGreen negative autoPromoteAfter", "service: a\nstrategy: blueGreen\nactive: v1\npreview: v2\npreviewMatch: [{header: {name: x, exact: y}}]\nautoPromoteAfter: -10m\n",
			`p.yaml:6: autoPromoteAfter: duration "-10m" is negative`},
		{"blueGreen rollbackWindow without unit", "service: a\nstrategy: blueGreen\nactive: v1\npreview: v2\npreviewMatch: [{header: {name: x, exact: y}}]\nrollbackWindow: 30\n",
			`p.yaml:6: rollbackWindow: duration "30" has no unit: write it with one, like 30s, 10m or 1h30m`},
		{"blueGreen rollbackWindow overflow", "service: a\nstrategy: blueGreen\nactive: v1\npreview: v2\npreviewMatch: [{header: {name: x, exact: y}}]\nrollbackWindow: 9999999999h\n",
			`p.yaml:6: rollbackWindow: duration "9999999999h" is invalid: write a Go duration like 30s, 10m or 1h30m`},
		{"rolling missing from", "service: a\nstrategy: rolling\nto: v2\n",
			`p.yaml:1: from: is required`},
		{"rolling same versions", "service: a\nstrategy: rolling\nfrom: v1\nto: v1\n",
			`p.yaml:4: to: is "v1", the same as from; a rolling update needs another version`},
		{"rolling bad to", "service: a\nstrategy: rolling\nfrom: v1\nto: \"v 2\"\n",
			`p.yaml:4: to: version "v 2" is invalid: must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit (^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$)`},
		{"rolling missing stepWeight", "service: a\nstrategy: rolling\nfrom: v1\nto: v2\ninterval: 1m\n",
			`p.yaml:1: stepWeight: is required`},
		{"rolling zero stepWeight", "service: a\nstrategy: rolling\nfrom: v1\nto: v2\nstepWeight: 0\ninterval: 1m\n",
			`p.yaml:5: stepWeight: must be more than 0, or the rollout never moves`},
		{"rolling stepWeight over 100", "service: a\nstrategy: rolling\nfrom: v1\nto: v2\nstepWeight: 150\ninterval: 1m\n",
			`p.yaml:5: stepWeight: weight "150" is not a percentage between 0 and 100`},
		{"rolling stepWeight a mapping", "service: a\nstrategy: rolling\nfrom: v1\nto: v2\nstepWeight: {v2: 10}\ninterval: 1m\n",
			`p.yaml:5: stepWeight: weight for each step must be a percentage like 90 or 12.5, not a mapping`},
		{"rolling missing interval", "service: a\nstrategy: rolling\nfrom: v1\nto: v2\nstepWeight: 10\n",
			`p.yaml:1: interval: is required`},
		{"rolling interval zero", "service: a\nstrategy: rolling\nfrom: v1\nto: v2\nstepWeight: 10\ninterval: 0s\n",
			`p.yaml:6: interval: duration "0s" must be more than 0`},
		{"rolling interval without unit", "service: a\nstrategy: rolling\nfrom: v1\nto: v2\nstepWeight: 10\ninterval: 60\n",
			`p.yaml:6: interval: duration "60" has no unit: write it with one, like 30s, 10m or 1h30m`},
		{"rolling interval bad", "service: a\nstrategy: rolling\nfrom: v1\nto: v2\nstepWeight: 10\ninterval: 1 minute\n",
			`p.yaml:6: interval: duration "1 minute" is invalid: write a Go duration like 30s, 10m or 1h30m`},
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
