package policy

import (
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/weir-mesh/weir/internal/configmaptest"
)

// TestWatcherConfigMap checks a policy directory mounted from a Kubernetes
// ConfigMap, at the volume's root or in a directory of it (items with paths
// like policies/greeter.yaml): a changed, an added and a removed policy
// apply; and at no step of an update is a policy read that is neither the
// old nor the new one, nor one missing that both have: were a canary's
// policy missing for a moment, the canary would get its even share.
func TestWatcherConfigMap(t *testing.T) {
	updates := []map[string]string{
		{"greeter.yaml": fixed("greeter", "{v1: 100}")},
		{"greeter.yaml": fixed("greeter", "{v1: 90, v2: 10}")},                                          // changed
		{"greeter.yaml": fixed("greeter", "{v1: 90, v2: 10}"), "echo.yaml": fixed("echo", "{v1: 100}")}, // added
		{"echo.yaml": fixed("echo", "{v2: 100}")},                                                       // removed, and another changed
		{"echo-v2.yaml": fixed("echo", "{v2: 100}")},                                                    // moved to another file
	}
	for _, sub := range []string{".", "policies"} {
		t.Run(sub, func(t *testing.T) {
			mount := t.TempDir()
			dir := filepath.Join(mount, sub)
			vol := configmaptest.New(t, mount, inDir(sub, updates[0]))
			changes := startWatcher(t, dir)
			old := desired(next(t, changes).set)
			for _, files := range updates[1:] {
				want := desiredOf(t, files)
				vol.Update(inDir(sub, files), func(s configmaptest.Step) {
					set, err := LoadDir(dir)
					if err == nil {
						if err := halfway(old, want, desired(set)); err != nil {
							t.Errorf("after %s: %v", s, err)
						}
					}
				})
				for c := next(t, changes); c.err != nil || !maps.EqualFunc(desired(c.set), want, weightsEqual); c = next(t, changes) {
					if c.err != nil {
						t.Logf("rejected during an update: %v", c.err) // the last good set keeps serving
					} else if err := halfway(old, want, desired(c.set)); err != nil {
						t.Errorf("onChange: %v", err)
					}
				}
				old = want
			}
		})
	}
}

// inDir returns files with their names in dir.
func inDir(dir string, files map[string]string) map[string]string {
	in := make(map[string]string, len(files))
	for name, content := range files {
		in[filepath.Join(dir, name)] = content
	}
	return in
}

func desired(set Set) map[string]Weights {
	m := make(map[string]Weights)
	for _, svc := range set.Services() {
		p, _ := set.Get(svc)
		m[svc] = p.Weights
	}
	return m
}

func desiredOf(t *testing.T, files map[string]string) map[string]Weights {
	t.Helper()
	var policies []Policy
	for name, content := range files {
		p, err := ParseFile(name, []byte(content))
		if err != nil {
			t.Fatal(err)
		}
		policies = append(policies, p)
	}
	set, err := NewSet(policies...)
	if err != nil {
		t.Fatal(err)
	}
	return desired(set)
}

func weightsEqual(a, b Weights) bool { return reflect.DeepEqual(a, b) }

// halfway returns an error unless got is what may be read during an update
// from before to after: each service's weights as before or after, and
// every service that has a policy both before and after present.
func halfway(before, after, got map[string]Weights) error {
	for svc, w := range got {
		if !weightsEqual(w, before[svc]) && !weightsEqual(w, after[svc]) {
			return fmt.Errorf("%s has %v, neither the old %v nor the new %v", svc, w, before[svc], after[svc])
		}
	}
	for svc := range before {
		if _, both := after[svc]; both {
			if _, ok := got[svc]; !ok {
				return fmt.Errorf("%s has no policy, but had one before and after", svc)
			}
		}
	}
	return nil
}
