package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weir-mesh/weir/internal/testca"
	"github.com/weir-mesh/weir/policy"
	adminv1 "github.com/weir-mesh/weir/policy/admin/v1"
)

// ctlEnv clears the environment weir ctl reads, so the tests see only
// their own flags.
func ctlEnv(t *testing.T) {
	for _, k := range []string{"WEIR_ADDR", "WEIR_TOKEN_FILE", "WEIR_TLS_CA", "WEIR_TLS_CERT", "WEIR_TLS_KEY"} {
		t.Setenv(k, "")
	}
}

// ctlTokenFile writes a token file in the "name:token" format.
func ctlTokenFile(t *testing.T, token string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "token")
	writeFile(t, path, "# operators\n\nalice:"+token+"\nbob:other\n")
	return path
}

// runCtl runs `weir ctl --addr addr --token-file ... args` against the fake.
func runCtl(t *testing.T, addr string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctlEnv(t)
	base := []string{"ctl", "--addr", addr, "--token-file", ctlTokenFile(t, ctlFakeToken), "--timeout", "5s"}
	return runWeir(t, append(base, args...)...)
}

// ctlGolden compares got with testdata/ctl/NAME.golden, or rewrites it
// with -update.
func ctlGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "ctl", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, path, got)
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v; run go test ./cmd/weir -run Ctl -update", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s\nrun go test ./cmd/weir -run Ctl -update if the change is intended", path, diff)
	}
}

func TestCtlGolden(t *testing.T) {
	_, addr := startCtlFake(t)
	policies := t.TempDir()
	writeFile(t, filepath.Join(policies, "greeter.yaml"), greeterPolicy("90", "10"))
	writeFile(t, filepath.Join(policies, "README.md"), "not a policy")

	tests := []struct {
		golden   string
		args     []string
		wantCode int
	}{
		{"get", []string{"get"}, 0},
		{"get_json", []string{"get", "-o", "json"}, 0},
		{"get_greeter", []string{"get", "greeter"}, 0},
		{"get_greeter_json", []string{"get", "greeter", "-o", "json"}, 0},
		{"get_checkout", []string{"get", "checkout"}, 0},
		{"proxies", []string{"proxies"}, 0},
		{"proxies_json", []string{"proxies", "-o", "json"}, 0},
		{"diff", []string{"diff", policies}, ctlExitChanges},
		{"diff_json", []string{"diff", policies, "-o", "json"}, ctlExitChanges},
		{"events", []string{"events"}, 0},
		{"events_json", []string{"events", "-o", "json"}, 0},
		{"events_greeter", []string{"events", "greeter", "--limit", "1"}, 0},
		{"set_weights", []string{"set-weights", "greeter", "v1=90", "v2=10", "--reason", "v2 p99 too high"}, 0},
		{"abort_json", []string{"abort", "greeter", "--reason", "errors", "-o", "json"}, 0},
		{"watch", []string{"get", "--watch"}, 0},
		{"watch_json", []string{"get", "--watch", "-o", "json"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			stdout, stderr, err := runCtl(t, addr, tt.args...)
			if got := ctlExitCode(err); got != tt.wantCode {
				t.Fatalf("exit code %d (err %v), want %d\nstderr: %s", got, err, tt.wantCode, stderr)
			}
			if stderr != "" {
				t.Errorf("stderr: %s", stderr)
			}
			ctlGolden(t, tt.golden, stdout)
		})
	}
}

func TestCtlExitCodes(t *testing.T) {
	_, addr := startCtlFake(t)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	unreachable := closed.Addr().String()
	closed.Close()
	badDiff := t.TempDir()
	writeFile(t, filepath.Join(badDiff, "bad.yaml"), "service: greeter\n")
	sameDiff := t.TempDir()
	writeFile(t, filepath.Join(sameDiff, "checkout.yml"), "service: checkout\n")

	tests := []struct {
		name       string
		addr       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"not found", addr, []string{"get", "nosuch"}, ctlExitNotFound, `weir ctl: service "nosuch" has no rollout`},
		{"precondition", addr, []string{"promote", "checkout", "--reason", "ship it"}, ctlExitPrecondition,
			"weir ctl: checkout: nothing in progress to promote"},
		{"invalid from server", addr, []string{"set-weights", "greeter", "v1=90", "v3=10", "--reason", "try v3"}, ctlExitInvalid,
			"weir ctl: weights.v3: version v3 has no healthy endpoints"},
		{"unreachable", unreachable, []string{"get"}, ctlExitUnreachable, "weir ctl: cannot reach weir at " + unreachable},
		{"not saved", addr, []string{"pause", "greeter", "--reason", "look closer"}, ctlExitNotSaved,
			"weir ctl: greeter: rollout state could not be saved: disk full; nothing was applied: weir could not save"},
		{"diff errors", addr, []string{"diff", badDiff}, ctlExitError, "weir ctl: the candidate policies have 1 error(s)"},
		{"diff no changes", addr, []string{"diff", sameDiff}, ctlExitOK, ""},
		{"promote ok", addr, []string{"promote", "greeter", "--reason", "metrics good"}, ctlExitOK, ""},
		{"bad output flag", addr, []string{"get", "-o", "yaml"}, ctlExitError, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, err := runCtl(t, tt.addr, tt.args...)
			if got := ctlExitCode(err); got != tt.wantCode {
				t.Fatalf("exit code %d (err %v), want %d", got, err, tt.wantCode)
			}
			if !strings.HasPrefix(stderr, tt.wantStderr) || (tt.wantStderr == "" && stderr != "") {
				t.Errorf("stderr = %q, want prefix %q", stderr, tt.wantStderr)
			}
		})
	}
}

func TestCtlExitCodeMapping(t *testing.T) {
	o := &ctlOptions{addr: "127.0.0.1:1", tokenFile: "token"}
	for code, want := range map[codes.Code]int{
		codes.NotFound:           ctlExitNotFound,
		codes.FailedPrecondition: ctlExitPrecondition,
		codes.InvalidArgument:    ctlExitInvalid,
		codes.Unauthenticated:    ctlExitDenied,
		codes.PermissionDenied:   ctlExitDenied,
		codes.Aborted:            ctlExitNotSaved,
		codes.Unavailable:        ctlExitUnreachable,
		codes.DeadlineExceeded:   ctlExitUnreachable,
		codes.Internal:           ctlExitError,
		codes.Unimplemented:      ctlExitError,
	} {
		err := ctlClassify(fmt.Errorf("wrapped: %w", status.Error(code, "boom")), o)
		if got := ctlExitCode(err); got != want {
			t.Errorf("%v: exit code %d, want %d", code, got, want)
		}
		if !ctlReported(err) {
			t.Errorf("%v: not marked as reported", code)
		}
	}
	if got := ctlExitCode(nil); got != 0 {
		t.Errorf("nil: exit code %d, want 0", got)
	}
	if got := ctlExitCode(errors.New("usage")); got != 1 || ctlReported(errors.New("usage")) {
		t.Errorf("plain error: exit code %d, want 1 and not reported", got)
	}
}

func TestCtlBearerToken(t *testing.T) {
	fake, addr := startCtlFake(t)
	if _, _, err := runCtl(t, addr, "get"); err != nil {
		t.Fatal(err)
	}
	fake.mu.Lock()
	got := fake.auth[len(fake.auth)-1]
	fake.mu.Unlock()
	if want := "Bearer " + ctlFakeToken; got != want {
		t.Errorf("authorization = %q, want %q (first token of the file)", got, want)
	}

	ctlEnv(t)
	_, stderr, err := runWeir(t, "ctl", "--addr", addr, "get")
	if code := ctlExitCode(err); code != ctlExitDenied {
		t.Errorf("without a token: exit code %d, want %d", code, ctlExitDenied)
	}
	if !strings.Contains(stderr, "weir ctl: missing or invalid bearer token (no token sent") {
		t.Errorf("without a token: stderr = %q", stderr)
	}

	t.Setenv("WEIR_ADDR", addr)
	t.Setenv("WEIR_TOKEN_FILE", ctlTokenFile(t, "wrong"))
	if _, _, err := runWeir(t, "ctl", "get"); ctlExitCode(err) != ctlExitDenied {
		t.Errorf("bad token from the environment: exit code %d, want %d", ctlExitCode(err), ctlExitDenied)
	}
}

func TestCtlLocalValidation(t *testing.T) {
	fake, addr := startCtlFake(t)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"reason required", []string{"set-weights", "greeter", "v1=90", "v2=10"}, ctlExitError, `required flag(s) "reason" not set`},
		{"reason required for abort", []string{"abort", "greeter"}, ctlExitError, `required flag(s) "reason" not set`},
		{"blank reason", []string{"pause", "greeter", "--reason", "  "}, ctlExitError, "--reason must say why"},
		{"not a percent", []string{"set-weights", "greeter", "v1=abc", "v2=10", "--reason", "x"}, ctlExitInvalid,
			`weight "v1=abc": "abc" is not a percent; want VERSION=PERCENT`},
		{"no equals", []string{"set-weights", "greeter", "v1", "--reason", "x"}, ctlExitInvalid, `weight "v1": want VERSION=PERCENT`},
		{"three decimals", []string{"set-weights", "greeter", "v1=89.999", "v2=10.001", "--reason", "x"}, ctlExitInvalid, "is not a percent"},
		{"over 100", []string{"set-weights", "greeter", "v1=101", "--reason", "x"}, ctlExitInvalid, "101% is over 100"},
		{"twice", []string{"set-weights", "greeter", "v1=50", "v1=50", "--reason", "x"}, ctlExitInvalid, "version v1 is given twice"},
		{"sum", []string{"set-weights", "greeter", "v1=90", "v2=5.5", "--reason", "x"}, ctlExitInvalid, "weights sum to 95.5%, must be 100%"},
		{"lone cert", []string{"get", "--tls-cert", "c.pem"}, ctlExitError, "--tls-cert and --tls-key must be given together"},
		// A mistyped subcommand must fail like any bad usage, not print
		// help and exit 0 as if the operation had been done.
		{"unknown subcommand", []string{"promot", "greeter"}, ctlExitError, `unknown command "promot" for "weir ctl"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, err := runCtl(t, addr, tt.args...)
			if got := ctlExitCode(err); got != tt.wantCode {
				t.Fatalf("exit code %d (err %v), want %d", got, err, tt.wantCode)
			}
			if !strings.Contains(err.Error()+stderr, tt.wantErr) {
				t.Errorf("error %q, stderr %q: want %q", err, stderr, tt.wantErr)
			}
		})
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if fake.setWeights != nil || fake.operation != nil {
		t.Errorf("rejected commands reached the server: %v %v", fake.setWeights, fake.operation)
	}
}

func TestCtlSendsRequests(t *testing.T) {
	fake, addr := startCtlFake(t)
	policies := t.TempDir()
	writeFile(t, filepath.Join(policies, "greeter.yaml"), "service: greeter\n")
	writeFile(t, filepath.Join(policies, "checkout.yml"), "service: checkout\n")
	for _, args := range [][]string{
		{"set-weights", "greeter", "v1=87.5", "v2=12.5", "--reason", "hold v2"},
		{"abort", "greeter", "--reason", "5xx", "--expect-version", "v2"},
		{"diff", policies},
	} {
		if _, stderr, err := runCtl(t, addr, args...); ctlExitCode(err) > ctlExitChanges {
			t.Fatalf("%v: %v %s", args, err, stderr)
		}
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	want := &adminv1.SetWeightsRequest{Service: "greeter", Weights: map[string]string{"v1": "87.5", "v2": "12.5"}, Reason: "hold v2"}
	if diff := cmp.Diff(want.String(), fake.setWeights.String()); diff != "" {
		t.Errorf("SetWeights request (-want +got):\n%s", diff)
	}
	if got := fake.operation; got.GetService() != "greeter" || got.GetReason() != "5xx" || got.GetExpectVersion() != "v2" {
		t.Errorf("Abort request = %v", got)
	}
	wantFiles := map[string]string{"greeter.yaml": "service: greeter\n", "checkout.yml": "service: checkout\n"}
	if diff := cmp.Diff(wantFiles, fake.diffFiles); diff != "" {
		t.Errorf("Diff files (-want +got):\n%s", diff)
	}
}

// TestCtlDiffReadsWhatWeirReads checks that diff sends the files weir
// loads and skips the rest: an Emacs lock (a dangling link named
// .#greeter.yaml) made it fail with "no such file or directory", while
// weir itself skips it.
func TestCtlDiffReadsWhatWeirReads(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "greeter.yaml"), greeterPolicy("90", "10"))
	must(t, os.Symlink("alice@host.4242:1700000000", filepath.Join(dir, ".#greeter.yaml")))
	writeFile(t, filepath.Join(dir, "greeter.yaml~"), "an editor's backup")
	writeFile(t, filepath.Join(dir, ".greeter.yaml.swp"), "vim's swap file")
	must(t, os.Mkdir(filepath.Join(dir, "old.yaml"), 0o755))
	files, err := ctlReadPolicyDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"greeter.yaml": greeterPolicy("90", "10")}, files); diff != "" {
		t.Errorf("files sent (-want +got):\n%s", diff)
	}
	if set, err := policy.LoadDir(dir); err != nil || len(set.Services()) != 1 {
		t.Errorf("weir loads %v, %v from the same directory; want greeter alone", set.Services(), err)
	}
}

func TestCtlWatchTerminalRedraws(t *testing.T) {
	var out bytes.Buffer
	v := &ctlWatchView{out: &out, terminal: true}
	for i := 0; i < 2; i++ {
		if err := v.draw(&adminv1.RolloutUpdate{Rollouts: []*adminv1.Rollout{ctlFakeGreeter()}}); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(out.String(), "\x1b[2J\x1b[H"); n != 2 {
		t.Errorf("%d clear-screens for 2 updates:\n%q", n, out.String())
	}
}

func TestCtlFormat(t *testing.T) {
	for in, want := range map[uint32]string{0: "0", 8000: "80", 1250: "12.5", 3333: "33.33", 10000: "100", 5: "0.05"} {
		if got := ctlPercent(in); got != want {
			t.Errorf("ctlPercent(%d) = %q, want %q", in, got, want)
		}
	}
	for _, tt := range []struct {
		w    map[string]uint32
		want string
	}{
		{map[string]uint32{"v2": 2000, "v1": 8000}, "[v1 ████████████████░░░░ v2] 80/20"},
		{map[string]uint32{"v1": 10000}, "[v1 ████████████████████] 100"},
		{map[string]uint32{"a": 5000, "b": 2500, "c": 2500}, "[a ██████████░░░░░▓▓▓▓▓ c] 50/25/25 (a/b/c)"},
	} {
		if got := ctlBar(tt.w); got != tt.want {
			t.Errorf("ctlBar(%v) = %q, want %q", tt.w, got, tt.want)
		}
	}
}

// TestCtlStepOfWeightsWithoutSteps checks that get and get --watch show
// no step for a service whose weights no rollout moves: a fixed policy,
// or weights frozen when a policy file was deleted mid-rollout, which
// showed as step 0, as if a rollout stood at its first step.
func TestCtlStepOfWeightsWithoutSteps(t *testing.T) {
	for _, strategy := range []string{"fixed", "frozen"} {
		r := &adminv1.Rollout{Service: "greeter", Strategy: strategy, Weights: map[string]uint32{"v1": 8000, "v2": 2000}}
		if got := ctlStep(r); got != "-" {
			t.Errorf("%s: get's step is %q, want -", strategy, got)
		}
		if got := ctlWatchLine(r); strings.Contains(got, "step") {
			t.Errorf("%s: get --watch's line %q shows a step", strategy, got)
		}
	}
}

// TestCtlRefusedCertificateHint checks that weir refusing ctl's client
// certificate, sent none or one its CA did not sign, names the flags to
// check. ctl cannot tell the refusal from a lost connection for certain
// (see certificateHint), so the exit code stays 7.
func TestCtlRefusedCertificateHint(t *testing.T) {
	dir := t.TempDir()
	files, _, _ := writeCerts(t, dir)
	addr := startCtlFakeMTLS(t, files)
	cert, key := testca.New(t, "another CA").Client(t, "mallory").PEM(t)
	certPath, keyPath := filepath.Join(dir, "mallory.pem"), filepath.Join(dir, "mallory-key.pem")
	writeFile(t, certPath, string(cert))
	writeFile(t, keyPath, string(key))
	for _, tt := range []struct {
		name, args, hint string
	}{
		{"no certificate", "--tls-ca " + files.ClientCA, "give --tls-cert and --tls-key)"},
		{"another CA's certificate", "--tls-ca " + files.ClientCA + " --tls-cert " + certPath + " --tls-key " + keyPath,
			"check that --tls-cert is signed by that CA and still valid)"},
	} {
		_, _, err := runCtl(t, addr, append(strings.Fields(tt.args), "get")...)
		if code := ctlExitCode(err); code != ctlExitUnreachable || !strings.Contains(fmt.Sprint(err), tt.hint) {
			t.Errorf("%s: exit code %d, %v; want %d, with the hint %q", tt.name, code, err, ctlExitUnreachable, tt.hint)
		}
	}
	// Nothing listening is not a certificate's fault.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	closed := lis.Addr().String()
	lis.Close()
	if _, _, err := runCtl(t, closed, "--tls-ca", files.ClientCA, "get"); strings.Contains(fmt.Sprint(err), "client certificates") {
		t.Errorf("nothing listening: %v, want no certificate hint", err)
	}
}
