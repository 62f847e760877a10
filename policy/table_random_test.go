package policy

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/weir-mesh/weir/discovery"
)

// randomModel returns the services the engine tests know, each with a
// random subset of the versions v1, v2 and v3.
func randomModel(t *testing.T, rng *rand.Rand) discovery.Model {
	var svcs []discovery.Service
	for i, name := range []string{"greeter", "echo", "bg", "roll", "gone"} {
		var inst []discovery.Instance
		for j, v := range []string{"v1", "v2", "v3"} {
			if rng.IntN(5) == 0 {
				continue
			}
			inst = append(inst, discovery.Instance{ID: name + v, Address: "10.0." + string(rune('0'+i)) + "." + string(rune('1'+j)), Port: 1, Version: v})
		}
		svcs = append(svcs, discovery.Service{Name: name, Instances: inst})
	}
	m, err := discovery.NewModel(svcs)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// randomSet returns a random subset of a canary, a fixed, a blue-green, a
// rolling and another fixed policy, with random settings.
func randomSet(t *testing.T, rng *rand.Rand) Set {
	var ps []Policy
	if rng.IntN(4) > 0 {
		p := canaryPolicy()
		if rng.IntN(3) == 0 {
			p.Canary.Steps = []Step{{SetWeight: w(10)}, {SetWeight: w(40)}, {Pause: &Pause{Indefinite: true}}}
		}
		if rng.IntN(3) == 0 {
			p.Canary.Version = "v3"
		}
		if rng.IntN(3) == 0 {
			p.Canary.Match = []Match{{Header: "x", Exact: "y"}}
		}
		ps = append(ps, p)
	}
	if rng.IntN(4) > 0 {
		ws := Weights{"v1": Full}
		if rng.IntN(2) == 0 {
			ws = Weights{"v1": 5000, "v2": 5000}
		}
		ps = append(ps, Policy{Service: "echo", Strategy: Fixed, Weights: ws})
	}
	if rng.IntN(4) > 0 {
		ps = append(ps, Policy{Service: "bg", Strategy: BlueGreen, BlueGreen: &BlueGreenSpec{Active: "v1", Preview: "v2",
			PreviewMatch: []Match{{Header: "p", Exact: "1"}}, AutoPromoteAfter: time.Duration(rng.IntN(2)) * time.Minute, RollbackWindow: time.Minute}})
	}
	if rng.IntN(4) > 0 {
		ps = append(ps, Policy{Service: "roll", Strategy: Rolling, Rolling: &RollingSpec{From: "v1", To: "v2", StepWeight: 2500, Interval: 20 * time.Second}})
	}
	if rng.IntN(2) > 0 {
		ps = append(ps, Policy{Service: "gone", Strategy: Fixed, Weights: Weights{"v2": Full}})
	}
	return mustSet(t, ps...)
}

// TestEngineTablesNameEveryChange runs random sequences of everything that
// changes an engine's routing (new policies, ticks, applied and stale
// applied routings, NACKs, health, operator operations, overrides, saves
// that fail and are undone) and checks, at random points, as a snapshot
// builder would, that Routing is what the engine's state asks for, and
// that its table names every service whose routing differs from the table
// the builder last used (which, as after a failed build, is sometimes not
// the last one it was given).
func TestEngineTablesNameEveryChange(t *testing.T) {
	told := 0
	for seed := range uint64(100) {
		rng := rand.New(rand.NewPCG(seed, 1))
		var store *Store
		if seed%3 == 0 {
			var err error
			if store, err = OpenStore(t.TempDir()); err != nil {
				t.Fatal(err)
			}
		}
		e, clock := newTestEngine(t, store)
		e.ObserveModel(randomModel(t, rng))
		var seen Table // what a builder last built from
		var seenMap map[string]Routing
		var tables []Table
		services := []string{"greeter", "echo", "bg", "roll", "gone"}
		for step := range 200 {
			switch k := rng.IntN(12); k {
			case 0:
				e.SetPolicies(randomSet(t, rng))
			case 1:
				clock.Add(time.Duration(rng.IntN(40)) * time.Second)
				e.Tick()
			case 2, 3:
				e.Applied(e.Routing())
			case 4:
				if len(tables) > 0 {
					e.Applied(tables[rng.IntN(len(tables))])
				}
			case 5:
				e.Nack("p", "bad")
				e.Tick()
			case 6:
				e.ObserveModel(randomModel(t, rng))
				e.Tick()
			case 7:
				svc := services[rng.IntN(len(services))]
				ops := []Operation{
					func(p Policy, r Rollout, now time.Time) (Rollout, Event, error) { return Promote(r, now, "a", "x") },
					func(p Policy, r Rollout, now time.Time) (Rollout, Event, error) {
						return PauseRollout(r, now, "a", "x")
					},
					func(p Policy, r Rollout, now time.Time) (Rollout, Event, error) { return Resume(p, r, now, "a", "x") },
					func(p Policy, r Rollout, now time.Time) (Rollout, Event, error) { return Abort(r, now, "a", "x") },
					func(p Policy, r Rollout, now time.Time) (Rollout, Event, error) { return Rollback(p, r, now, "a", "x") },
					func(p Policy, r Rollout, now time.Time) (Rollout, Event, error) {
						return SetWeights(r, Weights{r.Old: 7000, r.New: 3000}, now, "a", "x")
					},
				}
				_ = e.Do(svc, ops[rng.IntN(len(ops))])
			case 8:
				_ = e.SetFixedWeights(services[rng.IntN(len(services))], Weights{"v1": Weight(rng.IntN(2)) * 5000, "v2": Full - Weight(rng.IntN(2))*5000}, "a", "x")
			case 9:
				if store != nil && rng.IntN(10) == 0 {
					store.Close() // later saves fail: restore paths
				}
			default:
				// a build
				got := e.Routing()
				tables = append(tables, got)
				e.mu.Lock()
				want := routingOf(e.policies, e.rollouts, e.frozen, e.overrides)
				e.mu.Unlock()
				if !reflect.DeepEqual(got.Map(), want) {
					t.Fatalf("seed %d step %d: Routing stale", seed, step)
				}
				if names, ok := got.ChangedSince(seen); ok {
					told++
					for svc := range union(seenMap, got.Map()) {
						a, ina := seenMap[svc]
						b, inb := got.Map()[svc]
						if ina != inb || !reflect.DeepEqual(a, b) {
							if !slices.Contains(names, svc) {
								t.Fatalf("seed %d step %d: %s changed (%v -> %v) but ChangedSince says %v", seed, step, svc, a, b, names)
							}
						}
					}
				}
				if rng.IntN(3) > 0 { // sometimes the build "fails" and the builder keeps its last
					seen, seenMap = got, got.Map()
				}
			}
		}
		if store != nil {
			store.Close()
		}
	}
	if told < 1000 {
		t.Errorf("tables told what changed %d times, want 1,000 or more: the test no longer tests that", told)
	}
}

// union returns the services of a and of b.
func union(a, b map[string]Routing) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}
