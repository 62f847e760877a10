package main

import (
	"bufio"
	"errors"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// weirProcess is the real weir binary serving the quickstart on
// kernel-picked loopback ports, as `make run` does.
type weirProcess struct {
	cmd *exec.Cmd
	ops string // the ops address, HOST:PORT
	// lines is weir's stderr, line by line, closed when weir exits.
	lines  chan string
	logged []string
}

// buildWeir builds the weir binary into a directory of the test.
func buildWeir(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "weir")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startWeirProcess runs bin serve with the quickstart and extra flags, and
// waits until /readyz answers 200.
func startWeirProcess(t *testing.T, bin string, extra ...string) *weirProcess {
	t.Helper()
	args := append([]string{"serve", "--xds-addr", "127.0.0.1:0", "--ops-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--catalog", "../../examples/quickstart/catalog.yaml", "--policies", "../../examples/quickstart/policies"}, extra...)
	p := &weirProcess{cmd: exec.Command(bin, args...), lines: make(chan string, 100)}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill() })
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	p.ops = p.awaitOpsAddr(t)
	until(t, "/readyz to answer 200", func() bool {
		resp, err := http.Get("http://" + p.ops + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// awaitOpsAddr reads the start-up line for the ops address.
func (p *weirProcess) awaitOpsAddr(t *testing.T) string {
	t.Helper()
	opsAddr := regexp.MustCompile(`ops=(127\.0\.0\.1:\d+)`)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("weir exited before starting:\n%s", p.log())
			}
			p.logged = append(p.logged, line)
			if m := opsAddr.FindStringSubmatch(line); m != nil {
				return m[1]
			}
		case <-time.After(waitTimeout):
			t.Fatalf("no start-up line within %v:\n%s", waitTimeout, p.log())
		}
	}
}

// wait reads weir's log to the end and waits for it to exit.
func (p *weirProcess) wait() error {
	for line := range p.lines {
		p.logged = append(p.logged, line)
	}
	return p.cmd.Wait()
}

// log is what weir logged so far.
func (p *weirProcess) log() string { return strings.Join(p.logged, "\n") }

// TestServeBinarySecondSignalKills checks that a second SIGTERM kills weir
// while the graceful stop begun by the first one waits, here for a CPU
// profile being taken: the signal handler used to stay installed until the
// command returned, so every further signal was swallowed.
func TestServeBinarySecondSignalKills(t *testing.T) {
	p := startWeirProcess(t, buildWeir(t), "--pprof")
	p.holdOpsShutdown(t)
	exited := make(chan error, 1)
	go func() { exited <- p.wait() }()
	// The handler is released just after weir takes the first signal, so
	// repeat the signal until it is not taken.
	resend := time.NewTicker(50 * time.Millisecond)
	defer resend.Stop()
	timeout := time.After(waitTimeout)
	for signals := 1; ; signals++ {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Fatal(err)
		}
		select {
		case <-exited:
			ws := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
			if !ws.Signaled() || signals < 2 {
				t.Fatalf("weir ended with %v after %d SIGTERMs, want killed by the second or a later one\n%s", p.cmd.ProcessState, signals, p.log())
			}
			return
		case <-resend.C:
		case <-timeout:
			t.Fatalf("weir still running %v after %d SIGTERMs\n%s", waitTimeout, signals, p.log())
		}
	}
}

// holdOpsShutdown starts a 20 s CPU profile and returns once weir has the
// request, which then holds its ops server's shutdown for the drain.
func (p *weirProcess) holdOpsShutdown(t *testing.T) {
	t.Helper()
	wrote, once := make(chan struct{}), sync.Once{}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { once.Do(func() { close(wrote) }) },
	}), "GET", "http://"+p.ops+"/debug/pprof/profile?seconds=20", nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		if resp, err := http.DefaultClient.Do(req); err == nil { // weir stops before it answers
			resp.Body.Close()
		}
	}()
	select {
	case <-wrote:
	case <-time.After(waitTimeout):
		t.Fatal("the profile request was not sent")
	}
	// weir accepts connections in order: once it answers on a later one,
	// it has the profile's.
	resp, err := http.Get("http://" + p.ops + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}
