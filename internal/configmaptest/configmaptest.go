// Package configmaptest writes a directory the way the kubelet writes a
// ConfigMap volume (k8s.io/kubernetes pkg/volume/util AtomicWriter), so that
// tests can check weir's file watchers against the layout operators mount:
// every visible file is a link through the hidden ..data link to a hidden
// timestamped directory, and an update swaps ..data rather than any file.
package configmaptest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// dataDir is the link to the current timestamped directory; newDataDir is
// the link the kubelet renames over it.
const (
	dataDir    = "..data"
	newDataDir = "..data_tmp"
)

// Step names one step of an update, in the kubelet's order.
type Step string

// The steps of an update, in order. Between two of them the volume is
// exactly as the kubelet leaves it at that point.
const (
	Written       Step = "new timestamped directory written"
	Linked        Step = newDataDir + " made"
	Swapped       Step = dataDir + " swapped"
	LinksAdded    Step = "links to new files made"
	LinksRemoved  Step = "links to removed files removed"
	OldDirRemoved Step = "old timestamped directory removed"
)

// Steps returns the steps of an update, in order.
func Steps() []Step {
	return []Step{Written, Linked, Swapped, LinksAdded, LinksRemoved, OldDirRemoved}
}

// Volume is a ConfigMap volume in Dir. Its files are given as a map from
// each file's path in the volume (a name, or a path like "policies/a.yaml")
// to its content.
type Volume struct {
	Dir   string
	t     testing.TB
	files map[string]string
}

// New makes a volume in dir, which must exist, holding files, as the
// kubelet does when it mounts one.
func New(t testing.TB, dir string, files map[string]string) *Volume {
	t.Helper()
	v := &Volume{Dir: dir, t: t}
	v.Update(files, nil)
	return v
}

// Update replaces the volume's files by files, as the kubelet does when
// the ConfigMap changes. after, if not nil, is called after each step.
func (v *Volume) Update(files map[string]string, after func(Step)) {
	v.t.Helper()
	if after == nil {
		after = func(Step) {}
	}
	oldTS, _ := os.Readlink(filepath.Join(v.Dir, dataDir)) // "" at the first write
	ts := v.writeTimestamped(files)
	after(Written)
	v.check(os.Symlink(ts, filepath.Join(v.Dir, newDataDir)))
	after(Linked)
	v.check(os.Rename(filepath.Join(v.Dir, newDataDir), filepath.Join(v.Dir, dataDir)))
	after(Swapped)
	for _, name := range topLevel(files) {
		link := filepath.Join(v.Dir, name)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			v.check(os.Symlink(filepath.Join(dataDir, name), link))
		}
	}
	after(LinksAdded)
	for _, name := range topLevel(v.files) {
		if !slices.Contains(topLevel(files), name) {
			v.check(os.Remove(filepath.Join(v.Dir, name)))
		}
	}
	after(LinksRemoved)
	if oldTS != "" {
		v.check(os.RemoveAll(filepath.Join(v.Dir, oldTS)))
	}
	after(OldDirRemoved)
	v.files = files
}

// writeTimestamped writes files into a new timestamped directory and
// returns its name.
func (v *Volume) writeTimestamped(files map[string]string) string {
	v.t.Helper()
	ts, err := os.MkdirTemp(v.Dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	v.check(err)
	for name, content := range files {
		path := filepath.Join(ts, name)
		v.check(os.MkdirAll(filepath.Dir(path), 0o755))
		v.check(os.WriteFile(path, []byte(content), 0o644))
	}
	v.check(os.Chmod(ts, 0o755))
	return filepath.Base(ts)
}

func (v *Volume) check(err error) {
	v.t.Helper()
	if err != nil {
		v.t.Fatal(err)
	}
}

// topLevel returns the first element of each path in files, sorted, once
// each: the names the kubelet links from the volume's root.
func topLevel(files map[string]string) []string {
	var names []string
	for path := range files {
		name, _, _ := strings.Cut(filepath.ToSlash(path), "/")
		names = append(names, name)
	}
	slices.Sort(names)
	return slices.Compact(names)
}
