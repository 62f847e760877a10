package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/internal/logbuf"
)

// deadline bounds every wait; it is a failure deadline, never a delay.
const deadline = 10 * time.Second

// chanSink records what a Source delivers, in order, on one channel, so tests
// can assert the sequence of updates and rejections.
type chanSink struct{ events chan any }

func (s chanSink) Update(m discovery.Model) { s.events <- m }
func (s chanSink) Reject(err error)         { s.events <- err }

// start runs a Source on path until the test ends.
func start(t *testing.T, path string) chanSink {
	t.Helper()
	return startLogging(t, path, t.Output())
}

// startLogging is start with the Source's log written to log.
func startLogging(t *testing.T, path string, log io.Writer) chanSink {
	t.Helper()
	sink := chanSink{events: make(chan any, 64)}
	src := &Source{Path: path, Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, sink) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v, want nil", err)
			}
		case <-time.After(deadline):
			t.Error("Run did not return after cancel")
		}
	})
	return sink
}

func (s chanSink) next(t *testing.T) any {
	t.Helper()
	select {
	case ev := <-s.events:
		return ev
	case <-time.After(deadline):
		t.Fatal("nothing delivered")
		return nil
	}
}

// wantUpdate fails unless the next delivery is an update to a model with the
// given instance IDs.
func (s chanSink) wantUpdate(t *testing.T, ids ...string) {
	t.Helper()
	s.check(t, s.next(t), ids)
}

// wantUpdateInPlace is wantUpdate after a write in place, which truncates the
// file first: a load that falls between the truncation and the write sees an
// empty file, and that rejection is allowed.
func (s chanSink) wantUpdateInPlace(t *testing.T, ids ...string) {
	t.Helper()
	ev := s.next(t)
	if err, ok := ev.(error); ok && strings.Contains(err.Error(), "file is empty") {
		ev = s.next(t)
	}
	s.check(t, ev, ids)
}

func (s chanSink) check(t *testing.T, ev any, ids []string) {
	t.Helper()
	switch ev := ev.(type) {
	case discovery.Model:
		if diff := cmp.Diff(ids, instanceIDs(ev), cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("update (-want +got instance ids):\n%s", diff)
		}
	case error:
		t.Fatalf("got rejection %v, want update to %v", ev, ids)
	}
}

// wantReject fails unless the next delivery is a rejection mentioning substr.
func (s chanSink) wantReject(t *testing.T, substr string) error {
	t.Helper()
	switch ev := s.next(t).(type) {
	case discovery.Model:
		t.Fatalf("got update to %v, want rejection", instanceIDs(ev))
	case error:
		if !strings.Contains(ev.Error(), substr) {
			t.Fatalf("rejection %q does not mention %q", ev, substr)
		}
		return ev
	}
	return nil
}

func instanceIDs(m discovery.Model) []string {
	var ids []string
	for _, s := range m.Services() {
		for _, in := range s.Instances {
			ids = append(ids, in.ID)
		}
	}
	return ids
}

// catalog returns a catalog with one service and the given instance IDs.
func catalog(ids ...string) string {
	var b strings.Builder
	b.WriteString("services:\n  - name: greeter\n    instances:\n")
	for i, id := range ids {
		fmt.Fprintf(&b, "      - {id: %s, address: 127.0.0.1, port: %d}\n", id, 9100+i)
	}
	return b.String()
}

func writeInPlace(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeRename replaces path atomically, as editors and config managers do.
func writeRename(t *testing.T, path, data string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	writeInPlace(t, tmp, data)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestSourceFollowsEdits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.yaml")
	writeInPlace(t, path, catalog("a"))
	sink := start(t, path)
	sink.wantUpdate(t, "a")

	writeRename(t, path, catalog("a", "b"))
	sink.wantUpdate(t, "a", "b")

	writeInPlace(t, path, catalog("c"))
	sink.wantUpdateInPlace(t, "c")

	// A broken edit is rejected, and the next good edit is the next update:
	// nothing was delivered in between.
	writeRename(t, path, catalog("c")+"    bogus: 1\n")
	sink.wantReject(t, `unknown field "bogus"`)
	writeRename(t, path, catalog("d"))
	sink.wantUpdate(t, "d")

	// An edit that leaves the model as it was (a comment) delivers nothing.
	writeRename(t, path, "# only a comment changed\n"+catalog("d"))
	writeRename(t, path, catalog("e"))
	sink.wantUpdate(t, "e")

	// Repairing a broken file back to the applied model delivers that model
	// again: that is how the sink learns the rejection is over.
	writeRename(t, path, "services: {}\n")
	sink.wantReject(t, "must be a list")
	writeRename(t, path, catalog("e"))
	sink.wantUpdate(t, "e")
	writeRename(t, path, catalog("f"))
	sink.wantUpdate(t, "f")
}

// TestSourceTellsWhatChanged: each model follows the one before
// (discovery.Model.Next), so a consumer learns which services an edit
// changed without comparing them all.
func TestSourceTellsWhatChanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.yaml")
	two := func(alphaPort, betaPort int) string {
		return fmt.Sprintf("services:\n  - name: alpha\n    instances: [{id: a1, address: 127.0.0.1, port: %d}]\n"+
			"  - name: beta\n    instances: [{id: b1, address: 127.0.0.1, port: %d}]\n", alphaPort, betaPort)
	}
	writeInPlace(t, path, two(9100, 9200))
	sink := start(t, path)
	first, ok := sink.next(t).(discovery.Model)
	if !ok {
		t.Fatal("the first delivery is not a model")
	}
	writeRename(t, path, two(9100, 9201))
	second, ok := sink.next(t).(discovery.Model)
	if !ok {
		t.Fatal("the second delivery is not a model")
	}
	if changed, ok := second.ChangedSince(first); !ok || !slices.Equal(changed, []string{"beta"}) {
		t.Errorf("ChangedSince(first) = %q, %v; want [beta], true", changed, ok)
	}
}

func TestSourceFileRemoved(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "catalog.yaml")
	writeInPlace(t, path, catalog("a"))
	sink := start(t, path)
	sink.wantUpdate(t, "a")

	// Other files in the directory are ignored.
	writeInPlace(t, filepath.Join(dir, "other.yaml"), "not: a catalog\n")

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := sink.wantReject(t, "catalog.yaml"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("rejection %v is not fs.ErrNotExist", err)
	}
	writeRename(t, path, catalog("b"))
	sink.wantUpdate(t, "b")
}

func TestSourceFileAppearsLater(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.yaml")
	sink := start(t, path)
	sink.wantReject(t, "no such file")
	writeRename(t, path, catalog("a"))
	sink.wantUpdate(t, "a")
}

// TestSourceSaysWhetherItKeepsACatalog checks that a rejected catalog's
// warning says "keeping the last catalog" only when there is one.
func TestSourceSaysWhetherItKeepsACatalog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.yaml")
	var log logbuf.Buffer
	sink := startLogging(t, path, &log)
	sink.wantReject(t, "no such file")
	if got := log.String(); !strings.Contains(got, "catalog rejected; there is no earlier catalog to keep") || strings.Contains(got, "keeping the last") {
		t.Errorf("rejected before any catalog was read, weir logged:\n%s\nwant that there is no earlier catalog to keep", got)
	}
	writeRename(t, path, catalog("a"))
	sink.wantUpdate(t, "a")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	sink.wantReject(t, "no such file")
	if got := log.String(); !strings.Contains(got, "catalog rejected; keeping the last catalog") {
		t.Errorf("rejected after a catalog was read, weir logged:\n%s\nwant that it keeps the last catalog", got)
	}
}

func TestSourceMissingDirectory(t *testing.T) {
	src := &Source{Path: filepath.Join(t.TempDir(), "nope", "catalog.yaml")}
	err := src.Run(t.Context(), chanSink{events: make(chan any, 1)})
	if err == nil {
		t.Fatal("Run with a missing directory = nil, want error")
	}
}
