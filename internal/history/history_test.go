package history

import (
	"slices"
	"testing"
)

func TestHistory(t *testing.T) {
	var zero History
	if zero.Same(History{}) || !zero.IsZero() {
		t.Error("the zero History is the same as another zero one, or not zero")
	}
	first := zero.Next([]string{"a"})
	if first.IsZero() || len(first.steps) != 0 {
		t.Errorf("the zero History's Next: %+v, want a new History with no past", first)
	}
	second := first.Next([]string{"b", "a"})
	third := second.Next([]string{"c"})
	if got, ok := third.ChangedSince(first); !ok || !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("ChangedSince two steps back = %v, %v; want [a b c]", got, ok)
	}
	if got, ok := third.ChangedSince(third); !ok || len(got) != 0 || !third.Same(third) {
		t.Errorf("ChangedSince itself = %v, %v; want nothing changed", got, ok)
	}
	if _, ok := first.ChangedSince(third); ok {
		t.Error("a History told what changed since a later one")
	}
	if _, ok := New().ChangedSince(first); ok {
		t.Error("a new History told what changed since an unrelated one")
	}
	h := first
	for range Max {
		h = h.Next([]string{"d"})
	}
	if _, ok := h.ChangedSince(first); !ok {
		t.Errorf("%d steps back: not told", Max)
	}
	if _, ok := h.Next(nil).ChangedSince(first); ok {
		t.Errorf("%d steps back: told, want it forgotten", Max+1)
	}
}
