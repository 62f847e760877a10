package policy

import (
	"maps"
	"slices"
	"testing"
)

func TestEffective(t *testing.T) {
	tests := []struct {
		name         string
		desired      Weights
		serving      map[string]int
		want         Weights
		wantUnserved []string
	}{
		{"every desired version serves", Weights{"v1": 9000, "v2": 1000}, map[string]int{"v1": 3, "v2": 1},
			Weights{"v1": 9000, "v2": 1000}, nil},
		{"an unserved version's share goes to the others in proportion",
			Weights{"v1": 5000, "v2": 2500, "v3": 2500}, map[string]int{"v1": 1, "v2": 1},
			Weights{"v1": 6667, "v2": 3333}, []string{"v3"}},
		{"equal remainders go to the version that sorts first",
			Weights{"a": 1, "b": 1, "c": 1, "d": 9997}, map[string]int{"a": 1, "b": 1, "c": 1},
			Weights{"a": 3334, "b": 3333, "c": 3333}, []string{"d"}},
		{"zero weights are dropped", Weights{"v1": 10000, "v2": 0}, map[string]int{"v1": 1, "v2": 1},
			Weights{"v1": 10000}, nil},
		{"no desired version serves: spread by serving instances",
			Weights{"v3": 10000}, map[string]int{"v1": 2, "v2": 1},
			Weights{"v1": 6667, "v2": 3333}, []string{"v3"}},
		// A promoted blue-green rollout, or a completed canary, whose new
		// version stops serving: the old one, which the policy names at 0 %,
		// takes the traffic, not a version the policy does not name (a
		// release registered ahead of its rollout). It went to v1 and v3 by
		// their serving instances, 2:1.
		{"no desired share serves: the policy's versions that serve take it",
			Weights{"v1": 0, "v2": 10000}, map[string]int{"v1": 2, "v2": 0, "v3": 1},
			Weights{"v1": 10000}, []string{"v2"}},
		{"nothing serves: equal shares", Weights{"v1": 10000}, map[string]int{"v1": 0, "v2": 0},
			Weights{"v1": 5000, "v2": 5000}, []string{"v1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			desired := maps.Clone(tt.desired)
			got, unserved := Effective(tt.desired, tt.serving)
			if !maps.Equal(got, tt.want) || !slices.Equal(unserved, tt.wantUnserved) {
				t.Errorf("Effective = %v, %v; want %v, %v", got, unserved, tt.want, tt.wantUnserved)
			}
			if got.Sum() != Full {
				t.Errorf("Effective sums to %v, want %v", got.Sum(), Full)
			}
			if !maps.Equal(tt.desired, desired) {
				t.Errorf("Effective changed its input to %v", tt.desired)
			}
		})
	}
}
