package policy

import (
	"os"
	"path/filepath"
	"testing"
)

// TestExamples parses every example policy, the field reference the README
// links to, so that no example drifts from what weir accepts.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "examples", "policies", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no example policies in ../examples/policies")
	}
	strategies := make(map[Strategy]bool)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		p, err := ParseFile(f, data)
		if err != nil {
			t.Errorf("example %s: %v", f, err)
			continue
		}
		strategies[p.Strategy] = true
	}
	for _, st := range []Strategy{Fixed, Canary, BlueGreen, Rolling} {
		if !strategies[st] {
			t.Errorf("no example policy for strategy %s", st)
		}
	}
}
