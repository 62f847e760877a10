package main

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// outcome is one argument list for tally.add.
type outcome struct {
	version, instance string
	err               error
}

// times returns n copies of o.
func times(n int, o outcome) []outcome {
	out := make([]outcome, n)
	for i := range out {
		out[i] = o
	}
	return out
}

func concat(groups ...[]outcome) []outcome {
	var out []outcome
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

func TestTallyLine(t *testing.T) {
	now := time.Date(2025, 11, 25, 18, 4, 5, 0, time.UTC)
	deadline := errors.New("rpc error: code = DeadlineExceeded desc = context deadline exceeded")
	tests := []struct {
		name string
		add  []outcome
		want string
	}{
		{
			name: "nothing",
			want: "18:04:05  no responses  failed 0",
		},
		{
			name: "canary split",
			add: concat(
				// Added out of order: the line sorts versions and instances.
				times(25, outcome{"v2", "greeter-v2-a", nil}),
				times(226, outcome{"v1", "greeter-v1-a", nil}),
				times(24, outcome{"v2", "greeter-v2-b", nil}),
				times(225, outcome{"v1", "greeter-v1-b", nil}),
			),
			want: "18:04:05  v1 90.2% (451)  v2 9.8% (49)  failed 0  " +
				"[greeter-v1-a 226, greeter-v1-b 225, greeter-v2-a 25, greeter-v2-b 24]",
		},
		{
			name: "only failures",
			add:  times(3, outcome{err: deadline}),
			want: "18:04:05  no responses  failed 3",
		},
		{
			name: "failures are not in the shares",
			add: concat(
				times(2, outcome{"v1", "greeter-v1-a", nil}),
				times(1, outcome{"v2", "greeter-v2-a", nil}),
				times(5, outcome{err: deadline}),
			),
			want: "18:04:05  v1 66.7% (2)  v2 33.3% (1)  failed 5  [greeter-v1-a 2, greeter-v2-a 1]",
		},
		{
			name: "one version",
			add:  times(100, outcome{"v1", "greeter-v1-a", nil}),
			want: "18:04:05  v1 100.0% (100)  failed 0  [greeter-v1-a 100]",
		},
		{
			name: "empty version and instance",
			add:  []outcome{{"", "", nil}},
			want: "18:04:05  (none) 100.0% (1)  failed 0  [(none) 1]",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var tl tally
			for _, o := range tc.add {
				tl.add(o.version, o.instance, o.err)
			}
			if diff := cmp.Diff(tc.want, tl.line(now)); diff != "" {
				t.Errorf("line (-want +got):\n%s", diff)
			}
			if got, want := tl.empty(), len(tc.add) == 0; got != want {
				t.Errorf("empty() = %v, want %v", got, want)
			}
		})
	}
}

// TestTallyAddFirstOfKind checks that add asks for each distinct error to be
// logged once per tally, and never for a success.
func TestTallyAddFirstOfKind(t *testing.T) {
	unavailable := errors.New("rpc error: code = Unavailable desc = no children to pick from")
	deadline := errors.New("rpc error: code = DeadlineExceeded desc = context deadline exceeded")
	var tl tally
	var got []bool
	for _, o := range []outcome{
		{"v1", "greeter-v1-a", nil},
		{err: unavailable},
		{err: unavailable},
		{err: errors.New(unavailable.Error())}, // same message, different value
		{err: deadline},
		{"v1", "greeter-v1-a", nil},
		{err: deadline},
	} {
		got = append(got, tl.add(o.version, o.instance, o.err))
	}
	want := []bool{false, true, false, false, true, false, false}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("add results (-want +got):\n%s", diff)
	}

	// The next second starts from a fresh tally and logs again.
	tl = tally{}
	if !tl.add("", "", unavailable) {
		t.Error("add(unavailable) on a fresh tally = false, want true")
	}
}

func TestParseFlags(t *testing.T) {
	got, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatalf("parseFlags(nil): %v", err)
	}
	want := config{
		Target:   "xds:///greeter",
		XDSAddr:  "127.0.0.1:18000",
		NodeID:   "demo-client",
		Interval: 10 * time.Millisecond,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}

	got, err = parseFlags([]string{"--target", "xds:///other", "--xds-addr", "localhost:1", "--node-id", "n",
		"--interval", "1s", "--duration", "5s"}, io.Discard)
	if err != nil {
		t.Fatalf("parseFlags: %v", err)
	}
	want = config{Target: "xds:///other", XDSAddr: "localhost:1", NodeID: "n", Interval: time.Second, Duration: 5 * time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parsed (-want +got):\n%s", diff)
	}

	for _, args := range [][]string{
		{"--interval", "0"},
		{"--interval", "-1s"},
		{"--duration", "-1s"},
		{"--interval", "fast"},
		{"extra"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) succeeded, want an error", args)
		}
	}
}
