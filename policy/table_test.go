package policy

import (
	"maps"
	"slices"
	"testing"
)

func TestTableChangedSince(t *testing.T) {
	routes := func(names ...string) map[string]Routing {
		m := map[string]Routing{}
		for _, n := range names {
			m[n] = Routing{Weights: Weights{"v1": Full}}
		}
		return m
	}
	lookupIn := func(m map[string]Routing) func(string) (Routing, bool) {
		return func(svc string) (Routing, bool) { r, ok := m[svc]; return r, ok }
	}
	first := TableOf(routes("a", "b"))
	second := first.Next([]string{"c"}, lookupIn(routes("a", "b", "c")))
	third := second.Next([]string{"a"}, lookupIn(routes("b", "c")))
	for _, tt := range []struct {
		name           string
		table, earlier Table
		want           []string
		ok             bool
	}{
		{"itself", second, second, nil, true},
		{"one step", second, first, []string{"c"}, true},
		{"two steps", third, first, []string{"a", "c"}, true},
		{"backwards", first, third, nil, false},
		{"the zero table", first, Table{}, nil, false},
		{"made apart", TableOf(routes("a", "b")), first, nil, false},
	} {
		got, ok := tt.table.ChangedSince(tt.earlier)
		if ok != tt.ok || !slices.Equal(got, tt.want) {
			t.Errorf("%s: ChangedSince = %v, %v; want %v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
	if r, ok := third.Get("c"); !ok || r.Weights["v1"] != Full || third.Len() != 2 {
		t.Errorf("third table: c = %v, %v, %d services; want c at 100 of 2", r, ok, third.Len())
	}
	if got := slices.Sorted(maps.Keys(third.Map())); !slices.Equal(got, []string{"b", "c"}) || !maps.Equal(third.Map()["b"].Weights, Weights{"v1": Full}) {
		t.Errorf("third table's map: %v, want b and c", third.Map())
	}
	if _, ok := second.Get("c"); !ok {
		t.Error("second table lost c when third was made from it")
	}
}
