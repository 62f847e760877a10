package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is a control plane running as a child process, measured from
// outside: memory and CPU from /proc, heap from its /metrics.
type process struct {
	name    string
	cmd     *exec.Cmd
	xdsAddr string
	opsAddr string
	stderr  *limitedWriter
	exited  chan error
}

// startProcess runs argv with --xds-addr and --ops-addr on free loopback
// ports appended, and returns once its /readyz answers 200.
func startProcess(ctx context.Context, name string, argv []string, timeout time.Duration) (*process, error) {
	xdsAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	opsAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p := &process{name: name, xdsAddr: xdsAddr, opsAddr: opsAddr, stderr: &limitedWriter{n: 1 << 20}, exited: make(chan error, 1)}
	args := append(argv[1:], "--xds-addr", xdsAddr, "--ops-addr", opsAddr)
	p.cmd = exec.Command(argv[0], args...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	if err := p.awaitReady(ctx, timeout); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// awaitReady polls /readyz every 20 ms until it answers 200, the process
// exits, or timeout passes.
func (p *process) awaitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + p.opsAddr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-p.exited:
			p.exited <- err
			return fmt.Errorf("%s exited before it was ready (%v): %s", p.name, err, p.stderr)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return fmt.Errorf("%s not ready within %v: %s", p.name, timeout, p.stderr)
}

// stop sends SIGTERM and waits, killing it after 10 s.
func (p *process) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// rss returns the process's resident set size in bytes.
func (p *process) rss() (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", p.cmd.Process.Pid)
}

// cpu returns the user and system CPU time the process has used.
func (p *process) cpu() (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", p.cmd.Process.Pid)
	}
	utime, err1 := strconv.ParseUint(fields[11], 10, 64)
	stime, err2 := strconv.ParseUint(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad /proc/%d/stat", p.cmd.Process.Pid)
	}
	const ticksPerSecond = 100 // USER_HZ, fixed at 100 on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond, nil
}

// liveHeap forces a collection in the process and returns the bytes of
// heap objects afterwards, what is live, and of goroutine stacks: the heap
// profile's gc=1, and HeapAlloc and StackInuse from the runtime.MemStats
// its debug=1 form ends with, read in the same request. (Heap in use
// counts whole spans, so it also holds the fragmentation a storm of send
// buffers leaves.)
func (p *process) liveHeap() (heap, stacks float64, err error) {
	// Two collections: objects in a sync.Pool (gRPC's send buffers) survive
	// the first in its victim cache, and only the second frees them.
	if err := p.profile(os.DevNull, "heap?gc=1"); err != nil {
		return 0, 0, err
	}
	resp, err := http.Get("http://" + p.opsAddr + "/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	heap, stacks = -1, -1
	for sc.Scan() && (heap < 0 || stacks < 0) {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# HeapAlloc = "); ok {
			heap, err = strconv.ParseFloat(strings.TrimSpace(rest), 64)
		} else if rest, ok := strings.CutPrefix(line, "# Stack = "); ok { // "# Stack = inuse / sys"
			inuse, _, _ := strings.Cut(rest, " ")
			stacks, err = strconv.ParseFloat(inuse, 64)
		}
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %q: %w", p.name, line, err)
		}
	}
	if heap < 0 || stacks < 0 {
		return 0, 0, fmt.Errorf("%s: no HeapAlloc or Stack in the heap profile (%v)", p.name, sc.Err())
	}
	return heap, stacks, nil
}

// metric returns the value of an unlabelled metric from /metrics.
func (p *process) metric(name string) (float64, error) {
	resp, err := http.Get("http://" + p.opsAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	return 0, fmt.Errorf("%s: no metric %s", p.name, name)
}

// cpuProfile writes a CPU profile of the process over d to path.
func (p *process) cpuProfile(path string, d time.Duration) error {
	return p.profile(path, fmt.Sprintf("profile?seconds=%d", int(d.Seconds())))
}

// generatorProfile starts a CPU profile of weir-bench's own process — the
// generator's side of the load — into path; stop ends it, once, however
// often it is called.
func generatorProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { pprof.StopCPUProfile(); f.Close() }) }, nil
}

// heapProfile writes a profile of the process's live heap to path.
func (p *process) heapProfile(path string) error { return p.profile(path, "heap?gc=1") }

func (p *process) profile(path, query string) error {
	resp, err := http.Get("http://" + p.opsAddr + "/debug/pprof/" + query)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func freeAddr() (string, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer lis.Close()
	return lis.Addr().String(), nil
}

// limitedWriter keeps the first n bytes written to it: a server's log,
// for the error message if it fails.
type limitedWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
	n   int
}

func (l *limitedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *limitedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n > 0 {
		k := min(len(b), l.n)
		l.buf.Write(b[:k])
		l.n -= k
	}
	return len(b), nil
}

// samplePeaks samples the process's RSS and heap every 50 ms until the
// returned function is called, which returns the largest of each. The heap
// is sampled from /metrics without forcing a collection, so it includes
// garbage not yet collected.
func (p *process) samplePeaks() func() usage {
	stop, done := make(chan struct{}), make(chan usage, 1)
	go func() {
		var peak usage
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if rss, err := p.rss(); err == nil {
				peak.rss = max(peak.rss, float64(rss))
			}
			if heap, err := p.metric("go_memstats_heap_alloc_bytes"); err == nil {
				peak.heap = max(peak.heap, heap)
			}
			select {
			case <-stop:
				done <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return func() usage { close(stop); return <-done }
}
