package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// unknown stands in for an empty version or instance id in a response, so
// a backend that fills in neither still shows up in the line.
const unknown = "(none)"

// tally counts one second's RPC outcomes. Its zero value is ready for use;
// start a new second with a new zero value.
type tally struct {
	versions  map[string]int // successful responses by version
	instances map[string]int // successful responses by instance id
	failed    int
	errs      map[string]bool // distinct failure messages seen
}

// add records one RPC outcome: a failure if err is non-nil, otherwise a
// response from instance of version. It reports whether err is a failure
// not seen before in this tally, so the caller logs each distinct error
// once per second rather than a hundred times.
func (t *tally) add(version, instance string, err error) (firstOfKind bool) {
	if err != nil {
		t.failed++
		if t.errs == nil {
			t.errs = map[string]bool{}
		}
		msg := err.Error()
		if t.errs[msg] {
			return false
		}
		t.errs[msg] = true
		return true
	}
	if t.versions == nil {
		t.versions, t.instances = map[string]int{}, map[string]int{}
	}
	t.versions[orUnknown(version)]++
	t.instances[orUnknown(instance)]++
	return false
}

func orUnknown(s string) string {
	if s == "" {
		return unknown
	}
	return s
}

// empty reports whether nothing has been added.
func (t *tally) empty() bool {
	return t.failed == 0 && len(t.versions) == 0
}

// line formats the tally as one line stamped with now's wall-clock time:
// each version's share of the successful responses (sorted by version),
// the failed count and the responses per instance (sorted by id), e.g.
//
//	18:04:05  v1 90.2% (451)  v2 9.8% (49)  failed 0  [greeter-v1-a 226, greeter-v1-b 225, ...]
func (t *tally) line(now time.Time) string {
	var b strings.Builder
	b.WriteString(now.Format(time.TimeOnly))
	ok := 0
	for _, n := range t.versions {
		ok += n
	}
	if ok == 0 {
		b.WriteString("  no responses")
	}
	for _, v := range slices.Sorted(maps.Keys(t.versions)) {
		n := t.versions[v]
		fmt.Fprintf(&b, "  %s %.1f%% (%d)", v, 100*float64(n)/float64(ok), n)
	}
	fmt.Fprintf(&b, "  failed %d", t.failed)
	if len(t.instances) > 0 {
		ids := slices.Sorted(maps.Keys(t.instances))
		parts := make([]string, len(ids))
		for i, id := range ids {
			parts[i] = fmt.Sprintf("%s %d", id, t.instances[id])
		}
		fmt.Fprintf(&b, "  [%s]", strings.Join(parts, ", "))
	}
	return b.String()
}
