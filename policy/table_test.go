package policy

import (
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
	first := TableOf(routes("a", "b"))
	second := first.Next(routes("a", "b", "c"), []string{"c"})
	third := second.Next(routes("b", "c"), []string{"a"})
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
}
