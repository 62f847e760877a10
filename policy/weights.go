package policy

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Weight is a traffic share in hundredths of a percent: Full (10000) is all
// traffic, 1 is 0.01 %.
type Weight uint32

// Full is 100 %.
const Full Weight = 10000

// ParseWeight parses a percentage with at most two decimals ("90", "12.5",
// "0.01") into a Weight.
func ParseWeight(s string) (Weight, error) {
	s = strings.TrimSpace(s)
	whole, frac, hasFrac := strings.Cut(s, ".")
	if whole == "" || strings.HasPrefix(whole, "-") || strings.HasPrefix(whole, "+") {
		if strings.HasPrefix(whole, "-") {
			return 0, fmt.Errorf("weight %q is negative", s)
		}
		return 0, fmt.Errorf("weight %q is not a percentage like 90 or 12.5", s)
	}
	if hasFrac && (len(frac) == 0 || len(frac) > 2) {
		return 0, fmt.Errorf("weight %q must have one or two decimals (0.01 %% resolution)", s)
	}
	w, err := strconv.ParseUint(whole, 10, 32)
	if err != nil || w > 100 {
		return 0, fmt.Errorf("weight %q is not a percentage between 0 and 100", s)
	}
	cents := uint64(0)
	if hasFrac {
		f, err := strconv.ParseUint(frac, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("weight %q is not a percentage like 90 or 12.5", s)
		}
		if len(frac) == 1 {
			f *= 10
		}
		cents = f
	}
	total := w*100 + cents
	if total > uint64(Full) {
		return 0, fmt.Errorf("weight %q is more than 100", s)
	}
	return Weight(total), nil
}

// String formats w as a percentage without trailing zeros: "90", "12.5", "0.01".
func (w Weight) String() string {
	s := fmt.Sprintf("%d.%02d", w/100, w%100)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// Weights maps a version to its share of a service's traffic.
type Weights map[string]Weight

// Sum returns the total of all shares.
func (ws Weights) Sum() Weight {
	var sum Weight
	for _, w := range ws {
		sum += w
	}
	return sum
}

// String formats the weights sorted by version, as "v1=90 v2=10".
func (ws Weights) String() string {
	parts := make([]string, 0, len(ws))
	for _, v := range slices.Sorted(maps.Keys(ws)) {
		parts = append(parts, v+"="+ws[v].String())
	}
	return strings.Join(parts, " ")
}

// Effective turns desired weights into weights that are safe to route: no
// version without serving instances gets a share; such a version's share goes
// to the others in proportion to their desired weights. serving counts the
// instances per version that can take new requests.
//
// If no version with a desired share can serve, the versions desired at 0 %
// that can take it, by serving instances (the old version of a promoted or
// completed rollout, which the policy still names); and only if no version
// of desired can serve, whatever versions can (see Spread): traffic goes to
// a version the policy does not name only when none it names serves.
// unserved lists, sorted, the versions that were desired but could not
// serve. Versions with a zero result are omitted.
func Effective(desired Weights, serving map[string]int) (effective Weights, unserved []string) {
	usable := make(Weights)
	for v, w := range desired {
		if w == 0 {
			continue
		}
		if serving[v] > 0 {
			usable[v] = w
		} else {
			unserved = append(unserved, v)
		}
	}
	slices.Sort(unserved)
	if len(usable) == 0 {
		return Spread(servingOf(desired, serving)), unserved
	}
	return scale(usable), unserved
}

// servingOf returns serving restricted to the versions of desired that
// serve, or the whole of serving if none does.
func servingOf(desired Weights, serving map[string]int) map[string]int {
	named := make(map[string]int)
	for v := range desired {
		if serving[v] > 0 {
			named[v] = serving[v]
		}
	}
	if len(named) == 0 {
		return serving
	}
	return named
}

// Spread returns weights proportional to the number of serving instances per
// version, as if the service had one version and balanced over all of them.
// When nothing can serve, every version gets an equal share: requests fail
// either way, and no version is preferred.
func Spread(serving map[string]int) Weights {
	ws := make(Weights)
	for v, n := range serving {
		if n > 0 {
			ws[v] = Weight(n)
		}
	}
	if len(ws) == 0 {
		for v := range serving {
			ws[v] = 1
		}
	}
	return scale(ws)
}

// scale rescales rel, positive relative weights, in place to sum to Full,
// using the largest remainder method so the result is exact and
// deterministic (ties go to the version that sorts first), and returns it.
// Weights that already sum to Full, as validated policies' do, are kept.
func scale(rel Weights) Weights {
	var total uint64
	for _, w := range rel {
		total += uint64(w)
	}
	if total == uint64(Full) || total == 0 {
		return rel
	}
	type part struct {
		version   string
		remainder uint64
	}
	var parts []part
	var assigned Weight
	for v, w := range rel {
		exact := uint64(w) * uint64(Full)
		rel[v] = Weight(exact / total)
		assigned += rel[v]
		if r := exact % total; r > 0 {
			parts = append(parts, part{v, r})
		}
	}
	// The shortfall is the remainders' sum over total: less than how many
	// there are, so each gets at most one.
	slices.SortFunc(parts, func(a, b part) int {
		if c := cmp.Compare(b.remainder, a.remainder); c != 0 {
			return c
		}
		return cmp.Compare(a.version, b.version)
	})
	for i := 0; assigned < Full; i++ {
		rel[parts[i].version]++
		assigned++
	}
	return rel
}
