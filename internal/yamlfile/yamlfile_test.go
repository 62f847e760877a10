package yamlfile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/weir-mesh/weir/internal/configmaptest"
)

func TestErrorString(t *testing.T) {
	tests := []struct {
		err  Error
		want string
	}{
		{Error{File: "a.yaml", Line: 3, Field: "services[0].name", Msg: "is required"}, "a.yaml:3: services[0].name: is required"},
		{Error{File: "a.yaml", Msg: "file is empty"}, "a.yaml: file is empty"},
		{Error{File: "a.yaml", Line: 2, Msg: "bad"}, "a.yaml:2: bad"},
		{Error{Line: 2, Field: "x", Msg: "bad"}, "line 2: x: bad"},
		{Error{Field: "x", Msg: "bad"}, "x: bad"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

// item is a toy schema that exercises every helper the way the real formats do.
type item struct {
	Name string
	Port int64
	Tags []string
}

func decodeItems(file string, data []byte) ([]item, error) {
	root, err := Parse(file, data)
	if err != nil {
		return nil, err
	}
	top, err := root.Fields("items")
	if err != nil {
		return nil, err
	}
	v, err := top.Require("items")
	if err != nil {
		return nil, err
	}
	list, err := v.List()
	if err != nil {
		return nil, err
	}
	var out []item
	for _, iv := range list {
		m, err := iv.Fields("name", "port", "tags")
		if err != nil {
			return nil, err
		}
		var it item
		nv, err := m.Require("name")
		if err != nil {
			return nil, err
		}
		if it.Name, err = nv.Text(); err != nil {
			return nil, err
		}
		if pv, ok := m.Get("port"); ok {
			if it.Port, err = pv.Int(); err != nil {
				return nil, err
			}
		}
		if tv, ok := m.Get("tags"); ok {
			tm, err := tv.Map()
			if err != nil {
				return nil, err
			}
			it.Tags = tm.Keys()
		}
		out = append(out, it)
	}
	return out, nil
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "f.yaml: file is empty, want a YAML mapping"},
		{"comment only", "# nothing\n", "f.yaml: file is empty, want a YAML mapping"},
		{"null document", "---\n", "f.yaml:2: file is empty, want a YAML mapping"},
		{"list root", "- a\n", "f.yaml:1: the document must be a mapping, not a list"},
		{"scalar root", "hello\n", "f.yaml:1: the document must be a mapping, not a string"},
		{"two documents", "items: []\n---\nitems: []\n", "f.yaml:2: a second YAML document (after ---) is not allowed; put one document per file"},
		{"syntax", "items:\n  - name: a\n  port 2\n", "f.yaml:3: invalid YAML: could not find expected ':'"},
		{"syntax in second document", "items: []\n---\n[\n", "f.yaml:3: invalid YAML: did not find expected node content"},
		{"control character", "\x01", "f.yaml:1: invalid YAML: control characters are not allowed at column 1"},
		{"control character later", "items:\n  - name: a\x01\n", "f.yaml:2: invalid YAML: control characters are not allowed at column 12"},
		{"not UTF-8", "items:\n\n  - name: caf\xff\n", "f.yaml:3: invalid YAML: invalid leading UTF-8 octet at column 14"},
		{"not UTF-8 after UTF-8", "items:\n  - name: é\xe9\n", "f.yaml:2: invalid YAML: incomplete UTF-8 octet sequence at column 12"},
		{"unknown root field", "items: []\nitem: []\n", `f.yaml:2: unknown field "item" (valid: items)`},
		{"unknown nested field", "items:\n  - name: a\n    prot: 1\n", `f.yaml:3: items[0]: unknown field "prot" (valid: name, port, tags)`},
		{"duplicate key", "items:\n  - name: a\n    name: b\n", `f.yaml:3: items[0]: key "name" is repeated (first on line 2)`},
		{"missing field", "{}\n", "f.yaml:1: items: is required"},
		{"null field", "items:\n", "f.yaml:1: items: is required"},
		{"missing nested field", "items:\n  - port: 1\n", "f.yaml:2: items[0].name: is required"},
		{"not a list", "items: {a: 1}\n", "f.yaml:1: items: must be a list, not a mapping"},
		{"not a mapping", "items: [a]\n", "f.yaml:1: items[0]: must be a mapping, not a string"},
		{"not an integer", "items: [{name: a, port: \"1\"}]\n", "f.yaml:1: items[0].port: must be an integer, not a string"},
		{"float port", "items: [{name: a, port: 1.5}]\n", "f.yaml:1: items[0].port: must be an integer, not a number"},
		{"huge integer", "items: [{name: a, port: 99999999999999999999}]\n", "f.yaml:1: items[0].port: must be an integer, not a number"},
		{"not a string", "items: [{name: [a]}]\n", "f.yaml:1: items[0].name: must be a string, not a list"},
		{"boolean string", "items: [{name: true}]\n", "f.yaml:1: items[0].name: must be a string, not a boolean"},
		{"complex key", "items: [{name: a, tags: {[x]: 1}}]\n", "f.yaml:1: items[0].tags: keys must be strings, not a list"},
		{"self alias", "items: &x [*x]\n", "f.yaml:1: items[0]: must be a mapping, not a list"},
		{"merge key", "base: &b {name: a}\nitems: [{<<: *b}]\n", `f.yaml:1: unknown field "base" (valid: items)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeItems("f.yaml", []byte(tt.in))
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			var ye *Error
			if !errors.As(err, &ye) {
				t.Errorf("error %T is not an *Error", err)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	// Anchors and aliases are followed; numbers are accepted as text.
	in := "items:\n  - &b {name: b}\n  - name: 1.0\n  - name: a\n    port: 0x10\n    tags: {z: 1, a: 2}\n  - *b\n"
	got, err := decodeItems("f.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []item{{Name: "b"}, {Name: "1.0"}, {Name: "a", Port: 16, Tags: []string{"z", "a"}}, {Name: "b"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decode (-want +got):\n%s", diff)
	}
}

func TestNames(t *testing.T) {
	for _, s := range []string{"a", "greeter", "a-1", "0", "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabc"} {
		if err := CheckServiceName(s); err != nil {
			t.Errorf("CheckServiceName(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"", "-a", "a-", "A", "a_b", "a.b", "greeter\n", "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcd"} {
		if err := CheckServiceName(s); err == nil {
			t.Errorf("CheckServiceName(%q) = nil, want error", s)
		}
	}
	for _, s := range []string{"v1", "1.0", "V2_rc-1", "0"} {
		if err := CheckVersion(s); err != nil {
			t.Errorf("CheckVersion(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"", ".v1", "-1", "v 1", "v1\n", "v/1"} {
		if err := CheckVersion(s); err == nil {
			t.Errorf("CheckVersion(%q) = nil, want error", s)
		}
	}
}

func TestWatchDir(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	loads := make(chan struct{}, 16)
	done := make(chan error, 1)
	go func() {
		done <- WatchDir(ctx, nil, dir, func(name string) bool { return name == "watched" }, func() { loads <- struct{}{} })
	}()
	wait := func(what string) {
		t.Helper()
		select {
		case <-loads:
		case <-time.After(5 * time.Second):
			t.Fatalf("no load after %s", what)
		}
	}
	wait("start")
	// An ignored file followed by the watched one: the first load after the
	// start must be caused by the watched file, and there is exactly one.
	if err := os.WriteFile(filepath.Join(dir, "ignored"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "watched"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	wait("write")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("WatchDir = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WatchDir did not return after cancel")
	}
}

func TestWatchDirMissing(t *testing.T) {
	err := WatchDir(t.Context(), nil, filepath.Join(t.TempDir(), "nope"), nil, func() { t.Error("load called") })
	if err == nil {
		t.Fatal("WatchDir on a missing directory = nil, want error")
	}
}

// TestWatchDirFollowsARecreatedDirectory checks that a watched directory
// removed and made again, or replaced by another renamed into place, is
// watched again: its watch was once lost with the old directory, and no
// later change was ever loaded.
func TestWatchDirFollowsARecreatedDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "policies")
	file := filepath.Join(dir, "a.yaml")
	write := func(path, content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mkdir := func(path string) {
		t.Helper()
		if err := os.Mkdir(path, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mkdir(dir)
	write(file, "one")
	loaded := watchFile(t, dir, file)
	awaitLoad(t, loaded, "one")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	awaitLoad(t, loaded, "missing")
	mkdir(dir)
	write(file, "two")
	awaitLoad(t, loaded, "two")
	// Replaced by a directory renamed into place.
	if err := os.Rename(dir, dir+".old"); err != nil {
		t.Fatal(err)
	}
	mkdir(dir + ".new")
	write(filepath.Join(dir+".new", "a.yaml"), "three")
	if err := os.Rename(dir+".new", dir); err != nil {
		t.Fatal(err)
	}
	awaitLoad(t, loaded, "three")
	write(file, "four")
	awaitLoad(t, loaded, "four")
}

// watchFile watches dir until t ends, and returns what each load read of
// file: its content, or "missing".
func watchFile(t *testing.T, dir, file string) <-chan string {
	loaded := make(chan string, 64)
	done := make(chan error, 1)
	go func() {
		done <- WatchDir(t.Context(), nil, dir, nil, func() {
			b, err := os.ReadFile(file)
			if err != nil {
				loaded <- "missing"
				return
			}
			loaded <- string(b)
		})
	}()
	t.Cleanup(func() { // t.Context is done by now
		if err := <-done; err != nil {
			t.Errorf("WatchDir = %v, want nil", err)
		}
	})
	return loaded
}

// awaitLoad waits until a load reads want, failing t after 5 seconds.
func awaitLoad(t *testing.T, loaded <-chan string, want string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	var last string
	for {
		select {
		case last = <-loaded:
			if last == want {
				return
			}
		case <-deadline:
			t.Fatalf("no load read %q within 5 s; the last read %q", want, last)
		}
	}
}

// TestWatchDirFollowsARecreatedRelativeDirectory checks the same of a
// directory given relative to the working directory: fsnotify names its
// parent's events "./policies", which once never matched "policies".
func TestWatchDirFollowsARecreatedRelativeDirectory(t *testing.T) {
	for _, name := range []string{"policies", "./policies", "policies/"} {
		t.Run(name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			if err := os.Mkdir("policies", 0o755); err != nil {
				t.Fatal(err)
			}
			file := filepath.Join("policies", "a.yaml")
			write := func(content string) {
				t.Helper()
				if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			write("one")
			loaded := watchFile(t, name, file)
			awaitLoad(t, loaded, "one")
			if err := os.RemoveAll("policies"); err != nil {
				t.Fatal(err)
			}
			awaitLoad(t, loaded, "missing")
			if err := os.Mkdir("policies", 0o755); err != nil {
				t.Fatal(err)
			}
			write("two")
			awaitLoad(t, loaded, "two")
		})
	}
}

func TestFirstUnreadableLeavesUTF16Alone(t *testing.T) {
	// "a: 1\n" in UTF-16LE with its byte order mark: every other byte is NUL.
	utf16 := []byte{0xFF, 0xFE, 'a', 0, ':', 0, ' ', 0, '1', 0, '\n', 0}
	if line, column, ok := firstUnreadable(utf16); ok {
		t.Errorf("firstUnreadable(UTF-16) = line %d, column %d; want none", line, column)
	}
	if _, err := Parse("f.yaml", utf16); err != nil {
		t.Errorf("Parse(UTF-16) = %v", err)
	}
}

// TestWatchDirFollowsAConfigMapVolume checks a directory in a volume the
// kubelet updates as it does a ConfigMap's: at its root, every update is
// seen in the directory itself; below it, the directory is reached through
// the ..data link that each update swaps, and its watch, which followed the
// link to the old timestamped directory, was lost with it, so that every
// update after the first went unseen.
func TestWatchDirFollowsAConfigMapVolume(t *testing.T) {
	for _, sub := range []string{".", "policies", "a/b"} {
		t.Run(sub, func(t *testing.T) {
			mount := t.TempDir()
			file := filepath.Join(sub, "a.yaml")
			vol := configmaptest.New(t, mount, map[string]string{file: "one"})
			loaded := watchFile(t, filepath.Join(mount, sub), filepath.Join(mount, file))
			awaitLoad(t, loaded, "one")
			for _, content := range []string{"two", "three", "four"} {
				vol.Update(map[string]string{file: content}, nil)
				awaitLoad(t, loaded, content)
			}
		})
	}
}

// TestWatchDirReleasesWatchesOfOldDirectories checks that a directory
// reached through a link swapped to another directory many times (a
// release directory kept after each deploy, as a ConfigMap's is not) keeps
// one watch on it: each swap once left a watch on the directory swapped
// away from, which inotify frees only when that directory is removed, so
// that a long-running weir used up the user's inotify watches.
func TestWatchDirReleasesWatchesOfOldDirectories(t *testing.T) {
	root := t.TempDir()
	link := filepath.Join(root, "policies")
	release := func(i int) {
		t.Helper()
		dir := filepath.Join(root, fmt.Sprintf("release-%d", i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Base(dir), link+".tmp"); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(link+".tmp", link); err != nil {
			t.Fatal(err)
		}
	}
	release(0)
	before := inotifyWatches(t)
	loaded := watchFile(t, link, filepath.Join(link, "a.yaml"))
	awaitLoad(t, loaded, "0")
	for i := 1; i <= 20; i++ {
		release(i)
		awaitLoad(t, loaded, fmt.Sprint(i))
	}
	if got := inotifyWatches(t) - before; got != 2 {
		t.Errorf("%d inotify watches after 20 swaps, want 2: the directory and its parent", got)
	}
}

// inotifyWatches counts the inotify watches of this process.
func inotifyWatches(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fdinfo")
	if err != nil {
		t.Skipf("no /proc/self/fdinfo: %v", err)
	}
	n := 0
	for _, fd := range fds {
		b, err := os.ReadFile(filepath.Join("/proc/self/fdinfo", fd.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		n += strings.Count(string(b), "inotify wd:")
	}
	return n
}
