// Package history records where an immutable value came from: the values
// before it, each made from the one before, and which keys (service
// names) differ between each and the next. A consumer that used an
// earlier value learns from ChangedSince which keys to look at rather than
// comparing every one. discovery.Model and policy.Table keep one each.
package history

import (
	"slices"
	"sync/atomic"
)

// History is one value's history. Its zero value is a value's that has
// none: nothing is ever told to have changed since it.
type History struct {
	id    uint64 // 0 for the zero History
	steps []step // oldest first; the last one's value is this one's parent
}

// step is one value of a history and the keys that differ between it and
// the value made after it.
type step struct {
	id      uint64
	changed []string
}

// Max is how many values back ChangedSince looks: enough for the values a
// consumer skips between two looks (a debounced build skips those of a
// burst), few enough that what a value keeps of its past stays small.
const Max = 64

var ids atomic.Uint64

// New returns the history of a value with no past.
func New() History { return History{id: ids.Add(1)} }

// Next returns the history of a value made from h's, in which the keys of
// changed may differ from h's value and no other does; the zero History
// has no past to keep, so its Next is New.
func (h History) Next(changed []string) History {
	if h.id == 0 {
		return New()
	}
	steps := h.steps[max(0, len(h.steps)-Max+1):]
	steps = append(slices.Clip(steps), step{h.id, slices.Clone(changed)})
	return History{id: ids.Add(1), steps: steps}
}

// ChangedSince returns, sorted, the keys that may differ between the value
// of earlier and h's, and true; or false when h did not come from earlier
// through at most Max calls of Next, and only comparing every key tells.
func (h History) ChangedSince(earlier History) ([]string, bool) {
	if earlier.id == 0 {
		return nil, false
	}
	if earlier.id == h.id {
		return nil, true
	}
	for i := len(h.steps) - 1; i >= 0; i-- {
		if h.steps[i].id != earlier.id {
			continue
		}
		var changed []string
		for _, st := range h.steps[i:] {
			changed = append(changed, st.changed...)
		}
		slices.Sort(changed)
		return slices.Compact(changed), true
	}
	return nil, false
}

// Same reports whether h and o are the history of the very same value:
// not the zero History, which any value with no history has.
func (h History) Same(o History) bool { return h.id != 0 && h.id == o.id }

// IsZero reports whether h is the zero History.
func (h History) IsZero() bool { return h.id == 0 }
