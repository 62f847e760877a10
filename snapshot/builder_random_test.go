package snapshot

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/policy"
)

// Names that sort unlike their clusters ("a/v1" > "a-b/v1"), upper case,
// digits, dots, and names whose domains clash with another's, so that some
// builds are refused.
var (
	randomNames    = []string{"a", "a-b", "a0", "ab", "b", "b-a", "c", "d", "z9", "n1", "n10", "n2", "A", "a.b", "a_b", "m-1", "m.1", "a.service.consul"}
	randomVersions = []string{"v1", "v2", "v1.0", "V2", "", "x_y"}
)

// TestBuilderAgreesWithBuildOnRandomChanges makes random changes — a
// service comes or goes, an endpoint moves or changes health, a version
// changes, weights change, stickiness or a match route turns on or off,
// the sidecar moves
// — and checks after each build that one long-lived Builder says what a
// fresh Build says, lists it in name order, keeps its ledger like a fresh
// count (also after a refused build), and never changes a snapshot it
// returned before.
func TestBuilderAgreesWithBuildOnRandomChanges(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		w := newRandomWorld(rng)
		var b Builder
		var returned []*Snapshot
		var names [][]string
		for step := range 40 {
			w.change(rng)
			in := w.input(t, rng)
			got, gotErr := b.Build(in)
			want, wantErr := Build(in)
			where := fmt.Sprintf("seed %d step %d", seed, step)
			if (gotErr == nil) != (wantErr == nil) {
				t.Fatalf("%s: Builder: %v; Build: %v", where, gotErr, wantErr)
			}
			if gotErr != nil {
				if len(returned) > 0 && !sameTallies(b.ledger, freshLedger(returned[len(returned)-1].Resources)) {
					t.Fatalf("%s: a refused build changed the ledger", where)
				}
				continue
			}
			sameSnapshot(t, where, got, want)
			if !sameTallies(b.ledger, freshLedger(got.Resources)) {
				t.Fatalf("%s: the ledger differs from a fresh count", where)
			}
			returned, names = append(returned, got), append(names, listedNames(got.Resources))
		}
		for i, snap := range returned {
			if !slices.Equal(names[i], listedNames(snap.Resources)) {
				t.Fatalf("seed %d: snapshot %d changed after it was returned", seed, i)
			}
		}
	}
}

// sameSnapshot fails unless got and want have equal versions (also as
// contentVersion computes it), reports and resources, listed alike in
// name order.
func sameSnapshot(t *testing.T, where string, got, want *Snapshot) {
	t.Helper()
	if cv, _ := contentVersion(got.Resources); got.Version != want.Version || cv != got.Version {
		t.Fatalf("%s: version %s, Build's %s, contentVersion %s", where, got.Version, want.Version, cv)
	}
	if g, w := listedNames(got.Resources), listedNames(want.Resources); !slices.Equal(g, w) {
		t.Fatalf("%s: the Builder lists\n%v\nBuild lists\n%v", where, g, w)
	}
	if !sortedByNames(got.Resources) {
		t.Fatalf("%s: not listed in name order: %v", where, listedNames(got.Resources))
	}
	g, w := entries(got.Resources), entries(want.Resources)
	for i := range g {
		if !proto.Equal(g[i].msg, w[i].msg) {
			t.Fatalf("%s: %s %q differs from Build's", where, g[i].typeURL, g[i].name)
		}
	}
	if !reflect.DeepEqual(got.Report, want.Report) {
		t.Fatalf("%s: report %+v, Build's %+v", where, got.Report, want.Report)
	}
}

// sortedByNames reports whether every list of r is in strictly increasing
// name order.
func sortedByNames(r Resources) bool {
	return increasing(r.Clusters, (*clusterv3.Cluster).GetName) &&
		increasing(r.Endpoints, (*endpointv3.ClusterLoadAssignment).GetClusterName) &&
		increasing(r.Routes, (*routev3.RouteConfiguration).GetName) &&
		increasing(r.Outbound.Hosts(), (*routev3.VirtualHost).GetName) &&
		increasing(r.SidecarListeners, (*listenerv3.Listener).GetName) &&
		increasing(r.APIListeners, (*listenerv3.Listener).GetName)
}

func increasing[M any](l List[M], name func(M) string) bool {
	items := l.Slice()
	for i := 1; i < len(items); i++ {
		if name(items[i-1]) >= name(items[i]) {
			return false
		}
	}
	return true
}

// TestBuilderAgreesWithBuildWhenInputsAreSkipped: a debounced publisher
// builds from some inputs only, so a model and a routing table reach the
// Builder through steps it never saw (their histories must tell it all
// that changed since its last build), and sometimes the routing table is
// one made apart, without that history, while the model still follows.
func TestBuilderAgreesWithBuildWhenInputsAreSkipped(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 99))
		w := newRandomWorld(rng)
		var b Builder
		for step := range 60 {
			w.change(rng)
			in := w.input(t, rng)
			if rng.IntN(2) == 0 {
				continue // not built
			}
			if rng.IntN(4) == 0 {
				in.Routing = policy.TableOf(in.Routing.Map())
			}
			got, gotErr := b.Build(in)
			want, wantErr := Build(in)
			where := fmt.Sprintf("seed %d step %d", seed, step)
			if (gotErr == nil) != (wantErr == nil) {
				t.Fatalf("%s: Builder: %v; Build: %v", where, gotErr, wantErr)
			}
			if gotErr == nil {
				sameSnapshot(t, where, got, want)
			}
		}
	}
}

// randomWorld is a catalog and policies that change at random.
type randomWorld struct {
	services map[string]discovery.Service
	routing  map[string]policy.Routing
	port     uint32
	// model and routed are the last input's; rerouted are the services
	// whose routing has changed since.
	model    discovery.Model
	routed   policy.Table
	rerouted []string
}

func newRandomWorld(rng *rand.Rand) *randomWorld {
	w := &randomWorld{services: map[string]discovery.Service{}, routing: map[string]policy.Routing{}}
	for _, name := range randomNames {
		if rng.IntN(4) != 0 {
			w.services[name] = discovery.Service{Name: name, Instances: randomInstances(rng, name, 3)}
		}
	}
	return w
}

func randomInstances(rng *rand.Rand, service string, n int) []discovery.Instance {
	out := make([]discovery.Instance, n)
	for j := range out {
		out[j] = discovery.Instance{
			ID: fmt.Sprintf("%s-%d", service, j), Address: fmt.Sprintf("10.0.%d.%d", rng.IntN(3), j+1),
			Port: uint32(8080 + rng.IntN(2)), Version: randomVersions[rng.IntN(len(randomVersions))], Health: discovery.Health(rng.IntN(4)),
		}
	}
	return out
}

// change makes one or two random changes.
func (w *randomWorld) change(rng *rand.Rand) {
	for range 1 + rng.IntN(2) {
		name := randomNames[rng.IntN(len(randomNames))]
		svc, known := w.services[name]
		svc.Instances = slices.Clone(svc.Instances)
		switch rng.IntN(8) {
		case 0:
			if known && rng.IntN(2) == 0 {
				delete(w.services, name)
			} else {
				w.services[name] = discovery.Service{Name: name, Instances: randomInstances(rng, name, rng.IntN(4))}
			}
		case 1, 2:
			if known && len(svc.Instances) > 0 {
				in := &svc.Instances[rng.IntN(len(svc.Instances))]
				in.Port, in.Health = uint32(8080+rng.IntN(3)), discovery.Health(rng.IntN(4))
				w.services[name] = svc
			}
		case 3:
			if known && len(svc.Instances) > 0 {
				svc.Instances[rng.IntN(len(svc.Instances))].Version = randomVersions[rng.IntN(len(randomVersions))]
				w.services[name] = svc
			}
		case 4:
			r := w.routing[name]
			r.Weights = policy.Weights{"v1": policy.Weight(rng.IntN(10001)), "v2": policy.Weight(rng.IntN(10001))}
			w.routing[name] = r
			w.rerouted = append(w.rerouted, name)
		case 5:
			r := w.routing[name]
			if r.Sticky == nil {
				r.Sticky = &policy.Sticky{Header: "x-user"}
			} else {
				r.Sticky = nil
			}
			w.routing[name] = r
			w.rerouted = append(w.rerouted, name)
		case 6:
			r := w.routing[name]
			if len(r.Matches) == 0 {
				r.Matches = []policy.MatchRoute{{Version: randomVersions[rng.IntN(len(randomVersions))],
					Conditions: []policy.Match{{Header: "x-canary", Exact: "1"}}}}
			} else {
				r.Matches = nil
			}
			w.routing[name] = r
			w.rerouted = append(w.rerouted, name)
		default:
			w.port = uint32(rng.IntN(3)) * 15001
		}
	}
}

// input returns the world as a Build's input. Mostly its model follows
// the last input's (discovery.Model.Next), and its routing is the last
// input's very table, or one that follows it and names the services whose
// routing changed (policy.Table.Next), which tells a Builder what changed;
// sometimes both are new, and a Builder compares every service.
func (w *randomWorld) input(t *testing.T, rng *rand.Rand) Input {
	model, err := discovery.NewModel(slices.Collect(maps.Values(w.services)))
	if err != nil {
		t.Fatal(err)
	}
	fresh := rng.IntN(4) == 0
	if !fresh {
		model = w.model.Next(model)
	}
	switch {
	case fresh:
		w.routed = policy.TableOf(w.routing)
	case len(w.rerouted) > 0:
		w.routed = w.routed.Next(w.rerouted, lookupIn(w.routing))
	}
	w.model, w.rerouted = model, nil
	return Input{Model: model, Routing: w.routed, SidecarPort: w.port}
}
