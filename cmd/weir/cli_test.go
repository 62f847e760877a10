package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weir-mesh/weir/envoy"
)

var update = flag.Bool("update", false, "rewrite examples/envoy-bootstrap.yaml")

// runWeir runs the weir command in-process with args and returns its
// stdout, stderr and error.
func runWeir(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := newRootCommand()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err = cmd.Execute()
	return out.String(), errOut.String(), err
}

func TestValidate(t *testing.T) {
	good := t.TempDir()
	writeFile(t, filepath.Join(good, "greeter.yaml"), greeterPolicy("90", "10"))
	bad := t.TempDir()
	writeFile(t, filepath.Join(bad, "greeter.yaml"), "service: greeter\nstrategy: fixed\nweights: {v1: 90, v2: 20}\n")
	writeFile(t, filepath.Join(bad, "checkout.yaml"), "service: checkout\nstrategy: fixed\nwieghts: {v1: 100}\n")
	badCatalog := filepath.Join(t.TempDir(), "catalog.yaml")
	writeFile(t, badCatalog, "services:\n  - name: greeter\n    instances:\n      - {id: a, address: localhost, port: 9101}\n")

	tests := []struct {
		name     string
		args     []string
		wantErr  bool
		wantText []string // each must appear in stdout+stderr
	}{
		{"quickstart", []string{"validate", "../../examples/quickstart/policies", "--catalog", "../../examples/quickstart/catalog.yaml"}, false,
			[]string{"1 policies valid"}},
		{"good dir", []string{"validate", good}, false, []string{"1 policies valid"}},
		{"bad dir names every file, line and field", []string{"validate", bad}, true, []string{
			filepath.Join(bad, "greeter.yaml") + ":3: weights: weights sum to 110, must be 100",
			filepath.Join(bad, "checkout.yaml") + ":3: ",
			`unknown field "wieghts"`,
		}},
		{"bad catalog", []string{"validate", "--catalog", badCatalog}, true, []string{
			badCatalog + ":4: services[0].instances[0].address: ",
		}},
		{"nothing to validate", []string{"validate"}, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, err := runWeir(t, tt.args...)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error: %v\nstdout: %s\nstderr: %s", err, tt.wantErr, stdout, stderr)
			}
			for _, want := range tt.wantText {
				if !strings.Contains(stdout+stderr, want) {
					t.Errorf("output lacks %q:\nstdout: %s\nstderr: %s", want, stdout, stderr)
				}
			}
		})
	}
}

// TestBootstrapSample checks that `weir bootstrap` prints a bootstrap that
// parses into the Bootstrap proto and validates, and that the sample kept in
// examples/ is what the command prints today.
func TestBootstrapSample(t *testing.T) {
	stdout, stderr, err := runWeir(t, "bootstrap", "--node-id", "sidecar-1", "--xds-addr", "127.0.0.1:18000")
	if err != nil {
		t.Fatalf("weir bootstrap: %v\n%s", err, stderr)
	}
	b, err := envoy.ParseBootstrapYAML([]byte(stdout))
	if err != nil {
		t.Fatalf("output does not parse as a Bootstrap: %v\n%s", err, stdout)
	}
	if err := b.ValidateAll(); err != nil {
		t.Fatalf("bootstrap does not validate: %v", err)
	}
	if b.GetNode().GetId() != "sidecar-1" {
		t.Errorf("node id = %q, want sidecar-1", b.GetNode().GetId())
	}
	const sample = "../../examples/envoy-bootstrap.yaml"
	if *update {
		if err := os.WriteFile(sample, []byte(stdout), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != stdout {
		t.Errorf("%s is out of date; run go test ./cmd/weir -run TestBootstrapSample -update", sample)
	}
}

func TestBootstrapRejectsBadAddress(t *testing.T) {
	if _, _, err := runWeir(t, "bootstrap", "--node-id", "n", "--xds-addr", "127.0.0.1"); err == nil || !strings.Contains(err.Error(), "--xds-addr") {
		t.Fatalf("err = %v, want one naming --xds-addr", err)
	}
	if _, _, err := runWeir(t, "bootstrap", "--node-id", "n", "--admin-port", "70000"); err == nil || !strings.Contains(err.Error(), "--admin-port 70000: must be a port") {
		t.Fatalf("err = %v, want one naming --admin-port", err)
	}
}

// TestServeRejectsOutOfRangeFlags checks that serve refuses, before it
// starts, a flag value it could not serve with or would replace, naming the
// flag and what would be valid.
func TestServeRejectsOutOfRangeFlags(t *testing.T) {
	for _, tt := range []struct {
		flag, value, want string
	}{
		{"--sidecar-port", "70000", "--sidecar-port 70000: must be a port, 1-65535"},
		{"--sidecar-port", "0", "--sidecar-port 0: must be a port, 1-65535"},
		{"--applied-threshold", "0", "--applied-threshold 0: must be a fraction of the connected proxies, more than 0 and at most 1"},
		{"--applied-threshold", "2", "--applied-threshold 2: must be"},
		{"--applied-threshold", "-0.5", "--applied-threshold -0.5: must be"},
		{"--applied-threshold", "NaN", "--applied-threshold NaN: must be"},
		{"--sidecar-address", "sidecar.local", `--sidecar-address "sidecar.local": must be an IP literal`},
		{"--sidecar-address", "fe80::1%eth0", `--sidecar-address "fe80::1%eth0": must be an IP literal without a zone`},
		{"--debounce", "0", "--debounce 0s: must be more than 0"},
		{"--debounce", "-1s", "--debounce -1s: must be more than 0"},
		{"--ack-timeout", "0s", "--ack-timeout 0s: must be more than 0"},
		{"--consul-wait", "-5m", "--consul-wait -5m0s: must be more than 0"},
		{"--policies", "../../examples/no-such-dir", "--policies ../../examples/no-such-dir: no such directory"},
		{"--policies", "../../examples/quickstart/catalog.yaml", "--policies ../../examples/quickstart/catalog.yaml: not a directory"},
	} {
		// Were the value let through, the unusable --xds-addr would stop
		// serve before it listens.
		_, _, err := runWeir(t, "serve", "--catalog", "../../examples/quickstart/catalog.yaml", "--xds-addr", "no-port",
			tt.flag, tt.value)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("serve %s %s: %v, want an error containing %q", tt.flag, tt.value, err, tt.want)
		}
		if code := ctlExitCode(err); code != 1 {
			t.Errorf("serve %s %s: exit code %d, want 1", tt.flag, tt.value, code)
		}
	}
	for _, threshold := range []float64{1, 0.5, 0.001} {
		cfg := serveConfig{SidecarAddress: "::1", SidecarPort: 65535, Threshold: threshold,
			Debounce: time.Millisecond, AckTimeout: time.Millisecond, Consul: consulConfig{WaitTime: time.Second}}
		if err := cfg.checkRanges(); err != nil {
			t.Errorf("--sidecar-port 65535 --applied-threshold %v: %v", threshold, err)
		}
	}
}

// TestServeBinaryQuickstart builds the real binary, serves the quickstart as
// `make run` does, waits for /readyz, and checks that SIGTERM stops it
// cleanly.
func TestServeBinaryQuickstart(t *testing.T) {
	p := startWeirProcess(t, buildWeir(t))
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(); err != nil {
		t.Fatalf("weir after SIGTERM: %v\n%s", err, p.log())
	}
	if !strings.Contains(p.log(), "weir stopped") {
		t.Errorf("no shutdown line in the log:\n%s", p.log())
	}
}
