// Package consultest runs real Consul agents for tests: each on its own free
// loopback ports and data directory, stopped when the test ends. The binary
// comes from $WEIR_CONSUL (set by `make test`, which installs it) or from the
// repository's .tools folder.
package consultest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// Version is the Consul release the Makefile installs and the tests run.
const Version = "v1.14.0"

// startTimeout bounds how long an agent may take to elect itself leader.
const startTimeout = 30 * time.Second

// Agent is a running (or stopped) Consul agent.
type Agent struct {
	t       testing.TB
	bin     string
	dir     string
	http    int
	args    []string
	Client  *api.Client
	logFile string

	mu  sync.Mutex
	cmd *exec.Cmd
	wg  sync.WaitGroup
}

// Options choose the kind of agent.
type Options struct {
	// Persistent runs a single-node server with a data directory instead of
	// -dev, so that the catalog survives Stop and Start, as a real Consul
	// cluster's does.
	Persistent bool
	// MaxConnsPerClient raises Consul's per-client HTTP connection limit
	// (default 200), which caps the number of concurrent blocking queries.
	MaxConnsPerClient int
	// Stopped prepares the agent without starting it; call Start.
	Stopped bool
}

// Binary returns the path of the Consul binary, failing the test if there
// is none.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("WEIR_CONSUL"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("WEIR_CONSUL=%s: %v (run `make consul`)", p, err)
		}
		return p
	}
	_, here, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(here), "..", "..", ".tools", "consul-"+Version, "consul")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no Consul binary at %s and WEIR_CONSUL is unset: run `make consul` (or `make test`, which installs it)", p)
	}
	return p
}

// New prepares an agent on free loopback ports and, unless opts.Stopped,
// starts it and waits until it has a leader. The agent is stopped when the
// test ends.
func New(t testing.TB, opts Options) *Agent {
	t.Helper()
	a := &Agent{t: t, bin: Binary(t), dir: t.TempDir()}
	ports := freePorts(t, 4)
	a.http = ports[0]
	config := fmt.Sprintf(`ports { http = %d, serf_lan = %d, serf_wan = %d, server = %d, dns = -1, grpc = -1, grpc_tls = -1 }
limits { http_max_conns_per_client = %d }
`, ports[0], ports[1], ports[2], ports[3], max(opts.MaxConnsPerClient, 200))
	if err := os.Mkdir(filepath.Join(a.dir, "config"), 0o700); err != nil {
		t.Fatal(err)
	}
	a.WriteConfig("weir-test.hcl", config)
	a.args = []string{"agent", "-bind=127.0.0.1", "-client=127.0.0.1", "-advertise=127.0.0.1",
		"-node=weir-test", "-config-dir=" + filepath.Join(a.dir, "config"), "-log-level=warn"}
	if opts.Persistent {
		a.args = append(a.args, "-server", "-bootstrap-expect=1", "-data-dir="+filepath.Join(a.dir, "data"))
	} else {
		a.args = append(a.args, "-dev")
	}
	a.logFile = filepath.Join(a.dir, "consul.log")
	client, err := api.NewClient(&api.Config{Address: a.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	a.Client = client
	if !opts.Stopped {
		a.Start()
	}
	t.Cleanup(func() {
		a.Stop()
		// A test that failed may have failed for what Consul did:
		// its warnings and errors tell.
		if t.Failed() {
			if log := a.log(); log != "" {
				t.Logf("consul log:\n%s", log)
			}
		}
	})
	return a
}

// WriteConfig adds an HCL file to the agent's configuration directory; a
// service definition written while the agent is stopped is registered when
// it starts again.
func (a *Agent) WriteConfig(name, hcl string) {
	a.t.Helper()
	if err := os.WriteFile(filepath.Join(a.dir, "config", name), []byte(hcl), 0o600); err != nil {
		a.t.Fatal(err)
	}
}

// Addr is the agent's HTTP address, host:port.
func (a *Agent) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(a.http)) }

// Start (re)starts a stopped agent on the same ports and data directory and
// waits for a leader.
func (a *Agent) Start() {
	a.t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd != nil {
		a.t.Fatal("consultest: agent already running")
	}
	log, err := os.OpenFile(a.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		a.t.Fatal(err)
	}
	cmd := exec.Command(a.bin, a.args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		a.t.Fatalf("start consul: %v", err)
	}
	a.cmd = cmd
	exited := make(chan struct{})
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		cmd.Wait()
		log.Close()
		close(exited)
	}()
	a.waitForLeader(exited)
}

func (a *Agent) waitForLeader(exited <-chan struct{}) {
	a.t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-exited:
			a.t.Fatalf("consul exited during start-up:\n%s", a.log())
		default:
		}
		if leader, err := a.Client.Status().Leader(); err == nil && leader != "" {
			return
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("consul has no leader after %v:\n%s", startTimeout, a.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the agent (SIGTERM, then SIGKILL after 10 s) and waits for it
// to exit. Stopping a stopped agent does nothing.
func (a *Agent) Stop() {
	a.mu.Lock()
	cmd := a.cmd
	a.cmd = nil
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

func (a *Agent) log() string {
	b, _ := os.ReadFile(a.logFile)
	return string(bytes.TrimSpace(b))
}

// Agents' ports come from below Linux's ephemeral range (32768–60999 by
// default), which the kernel hands out for port 0: an agent that is stopped
// and started again must find its ports free, and a listener on port 0
// (weir's own, in a test) could otherwise take one meanwhile.
const (
	portLow  = 20000
	portHigh = 32000
)

// freePorts returns n distinct loopback ports, free for both TCP and UDP (Serf
// uses both) a moment ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for attempts := 0; len(ports) < n; attempts++ {
		if attempts > 1000 {
			t.Fatalf("no free loopback ports in %d-%d", portLow, portHigh)
		}
		p := portLow + rand.IntN(portHigh-portLow)
		if slices.Contains(ports, p) || !portFree(p) {
			continue
		}
		ports = append(ports, p)
	}
	return ports
}

// portFree reports whether p can be bound on 127.0.0.1 for TCP and UDP.
func portFree(p int) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer l.Close()
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	u.Close()
	return true
}
