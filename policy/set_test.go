package policy

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func write(t *testing.T, dir, name, data string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeRename replaces dir/name atomically, as editors and config managers do.
func writeRename(t *testing.T, dir, name, data string) {
	t.Helper()
	write(t, dir, ".tmp-"+name, data)
	if err := os.Rename(filepath.Join(dir, ".tmp-"+name), filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

func fixed(service, weights string) string {
	return "service: " + service + "\nstrategy: fixed\nweights: " + weights + "\n"
}

func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "greeter.yaml", fixed("greeter", "{v1: 90, v2: 10}"))
	write(t, dir, "echo.yml", "# echo\n"+fixed("echo", "{v1: 100}"))
	write(t, dir, "Upper.YAML", fixed("upper", "{v1: 100}"))
	write(t, dir, "mixed.Yml", fixed("mixed", "{v1: 100}"))
	// Not policy files: all of these would be errors if they were read.
	for _, name := range []string{".hidden.yaml", ".#greeter.yaml", "greeter.yaml~", ".greeter.yaml.swp", "greeter.yaml.swp", "README.md", "notes.txt"} {
		write(t, dir, name, "garbage: [\n")
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A link to a policy file is read, as Kubernetes ConfigMap volumes are made of them.
	other := t.TempDir()
	write(t, other, "target", fixed("linked", "{v2: 100}"))
	if err := os.Symlink(filepath.Join(other, "target"), filepath.Join(dir, "linked.yaml")); err != nil {
		t.Fatal(err)
	}

	set, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"echo", "greeter", "linked", "mixed", "upper"}, set.Services()); diff != "" {
		t.Errorf("Services (-want +got):\n%s", diff)
	}
	if set.Len() != 5 {
		t.Errorf("Len = %d, want 5", set.Len())
	}
	got, ok := set.Get("echo")
	want := Policy{Service: "echo", Strategy: Fixed, Weights: Weights{"v1": Full}, File: filepath.Join(dir, "echo.yml"), Line: 2}
	if !ok {
		t.Fatal("Get(echo) not found")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Get(echo) (-want +got):\n%s", diff)
	}
	// The Set is immutable: what callers get are copies.
	got.Weights["v1"] = 1
	if again, _ := set.Get("echo"); again.Weights["v1"] != Full {
		t.Errorf("Set changed through a returned Weights: %v", again.Weights)
	}
}

func TestLoadDirEmpty(t *testing.T) {
	set, err := LoadDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != 0 || len(set.Services()) != 0 {
		t.Errorf("empty directory gave %v", set.Services())
	}
}

func TestLoadDirMissing(t *testing.T) {
	_, err := LoadDir(filepath.Join(t.TempDir(), "nope"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadDir(missing) = %v, want fs.ErrNotExist", err)
	}
}

func TestLoadDirErrors(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", fixed("greeter", "{v1: 100}"))
	write(t, dir, "b.yaml", "# the same service again\n"+fixed("greeter", "{v2: 100}"))
	write(t, dir, "c.yaml", fixed("c", "{v1: 99}"))
	write(t, dir, "d.yaml", fixed("d", "{v1: 100}"))
	write(t, dir, "e.yaml", fixed("greeter", "{v3: 100}"))

	set, err := LoadDir(dir)
	if err == nil {
		t.Fatal("LoadDir succeeded")
	}
	if set.Len() != 0 {
		t.Errorf("LoadDir returned %d policies with its error, want none", set.Len())
	}
	a, b, c, e := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml"), filepath.Join(dir, "c.yaml"), filepath.Join(dir, "e.yaml")
	want := c + ":3: weights: weights sum to 99, must be 100\n" +
		b + `:2: service: service "greeter" already has a policy in ` + a + ":1\n" +
		e + `:1: service: service "greeter" already has a policy in ` + a + ":1"
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
	}
}

func TestZeroSet(t *testing.T) {
	var s Set
	if _, ok := s.Get("x"); ok || s.Len() != 0 || len(s.Services()) != 0 {
		t.Error("zero Set is not empty")
	}
	if !s.Equal(Set{}) {
		t.Error("zero Set is not Equal to itself")
	}
}

// change is one call of a Watcher's onChange.
type change struct {
	set Set
	err error
}

func startWatcher(t *testing.T, dir string) <-chan change {
	t.Helper()
	changes := make(chan change, 64)
	w := &Watcher{Dir: dir, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, func(s Set, err error) { changes <- change{s, err} }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return changes
}

func next(t *testing.T, changes <-chan change) change {
	t.Helper()
	select {
	case c := <-changes:
		return c
	case <-time.After(10 * time.Second): // a failure deadline, not a delay
		t.Fatal("onChange not called")
		return change{}
	}
}

func wantDesired(t *testing.T, c change, want map[string]Weights) {
	t.Helper()
	if c.err != nil {
		t.Fatalf("onChange error %v, want %v", c.err, want)
	}
	got := make(map[string]Weights)
	for _, svc := range c.set.Services() {
		p, _ := c.set.Get(svc)
		got[svc] = p.Weights
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("desired weights (-want +got):\n%s", diff)
	}
}

func TestWatcher(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "greeter.yaml", fixed("greeter", "{v1: 100}"))
	changes := startWatcher(t, dir)
	wantDesired(t, next(t, changes), map[string]Weights{"greeter": {"v1": Full}})

	writeRename(t, dir, "greeter.yaml", fixed("greeter", "{v1: 90, v2: 10}"))
	wantDesired(t, next(t, changes), map[string]Weights{"greeter": {"v1": 9000, "v2": 1000}})

	// A broken edit is reported with an empty Set, once.
	writeRename(t, dir, "greeter.yaml", fixed("greeter", "{v1: 90, v2: 1}"))
	c := next(t, changes)
	if c.err == nil || !strings.Contains(c.err.Error(), "weights sum to 91, must be 100") || c.set.Len() != 0 {
		t.Fatalf("after a broken edit got (%v, %v), want an empty Set and the sum error", c.set.Services(), c.err)
	}

	// Files that are not policies do not count; a new policy does.
	write(t, dir, "notes.txt", "hello")
	writeRename(t, dir, "greeter.yaml", fixed("greeter", "{v1: 50, v2: 50}"))
	writeRename(t, dir, "echo.yaml", fixed("echo", "{v1: 100}"))
	c = next(t, changes)
	if c.err == nil && c.set.Len() == 1 { // the greeter fix may be seen on its own first
		c = next(t, changes)
	}
	wantDesired(t, c, map[string]Weights{"greeter": {"v1": 5000, "v2": 5000}, "echo": {"v1": Full}})

	// Removing a policy file is a change too.
	if err := os.Remove(filepath.Join(dir, "echo.yaml")); err != nil {
		t.Fatal(err)
	}
	wantDesired(t, next(t, changes), map[string]Weights{"greeter": {"v1": 5000, "v2": 5000}})
}

func TestWatcherReportsOnlyDifferences(t *testing.T) {
	dir := t.TempDir()
	changes := startWatcher(t, dir)
	wantDesired(t, next(t, changes), map[string]Weights{})

	// Neither a non-policy file nor rewriting a policy with the same content
	// calls onChange: the next call is for the real edit that follows.
	writeRename(t, dir, "greeter.yaml", fixed("greeter", "{v1: 100}"))
	wantDesired(t, next(t, changes), map[string]Weights{"greeter": {"v1": Full}})
	write(t, dir, "README.md", "policies live here")
	writeRename(t, dir, "greeter.yaml", fixed("greeter", "{v1: 100}"))
	writeRename(t, dir, "greeter.yaml", fixed("greeter", "{v2: 100}"))
	wantDesired(t, next(t, changes), map[string]Weights{"greeter": {"v2": Full}})
}

// TestWatcherFollowsARecreatedDirectory checks that a policy directory
// removed and made again is read again: the deletion is reported, and
// the new directory's policies apply.
func TestWatcherFollowsARecreatedDirectory(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "greeter.yaml", fixed("greeter", "{v1: 100}"))
	changes := startWatcher(t, dir)
	wantDesired(t, next(t, changes), map[string]Weights{"greeter": {"v1": Full}})
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if c := next(t, changes); c.err == nil {
		t.Fatalf("after removing the directory: %v, want an error", c.set.Services())
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, dir, "greeter.yaml", fixed("greeter", "{v1: 30, v2: 70}"))
	c := next(t, changes)
	for c.err != nil || len(c.set.Services()) == 0 {
		c = next(t, changes) // the new directory may be read while still empty
	}
	wantDesired(t, c, map[string]Weights{"greeter": {"v1": 3000, "v2": 7000}})
}
