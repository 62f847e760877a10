package snapshot

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"weak"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/policy"
)

// servedWeights returns cluster → weight of the catch-all route of every
// virtual host of snap.
func servedWeights(snap *Snapshot) map[string]uint32 {
	out := make(map[string]uint32)
	for _, route := range mainRoutes(snap.Resources) {
		for _, cw := range route.GetRoute().GetWeightedClusters().GetClusters() {
			out[cw.GetName()] = cw.GetWeight().GetValue()
		}
	}
	return out
}

func clusterNames(snap *Snapshot) []string {
	var out []string
	for c := range snap.Clusters.Values() {
		out = append(out, c.GetName())
	}
	return out
}

// TestGoldenSemantics states what the golden files must show, so that an
// -update that breaks the rules fails here.
func TestGoldenSemantics(t *testing.T) {
	tests := []struct {
		name     string
		weights  map[string]uint32
		clusters []string
		report   Report
	}{
		{"no-policy-two-versions", map[string]uint32{"greeter/v1": 7500, "greeter/v2": 2500}, []string{"greeter/v1", "greeter/v2"}, Report{}},
		{"fixed-90-10", map[string]uint32{"greeter/v1": 9000, "greeter/v2": 1000}, []string{"greeter/v1", "greeter/v2"}, Report{}},
		{"fine-99.99-0.01", map[string]uint32{"greeter/v1": 9999, "greeter/v2": 1}, []string{"greeter/v1", "greeter/v2"}, Report{}},
		{"policy-version-missing", map[string]uint32{"greeter/v1": 8889, "greeter/v2": 1111}, []string{"greeter/v1", "greeter/v2"},
			Report{Unserved: []ServiceVersion{{"greeter", "v3"}}}},
		{"all-desired-unhealthy", map[string]uint32{"greeter/v1": 10000}, []string{"greeter/v1", "greeter/v2", "greeter/v3"},
			Report{Unserved: []ServiceVersion{{"greeter", "v2"}, {"greeter", "v3"}}}},
		{"maintenance-critical", map[string]uint32{"greeter/v1": 10000}, []string{"greeter/v1"}, Report{}},
		{"no-instances", map[string]uint32{"greeter/": 10000, "planned/": 10000}, []string{"greeter/", "planned/"},
			Report{Unserved: []ServiceVersion{{"planned", "v1"}}, NoServing: []string{"greeter", "planned"}}},
		{"several-services", map[string]uint32{"a/v1": 10000, "a-b/v1": 10000, "b/v1": 10000}, []string{"a-b/v1", "a/", "a/v1", "b/v1"},
			Report{UnknownServices: []string{"c"}, DuplicateEndpoints: []ServiceVersion{{"a", "v1"}}}},
		{"weight-zero", map[string]uint32{"greeter/v1": 10000}, []string{"greeter/v1", "greeter/v2"}, Report{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := buildInput(t, filepath.Join("testdata", tt.name+".yaml"))
			if diff := cmp.Diff(tt.weights, servedWeights(snap)); diff != "" {
				t.Errorf("route weights (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.clusters, clusterNames(snap)); diff != "" {
				t.Errorf("clusters (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.report, snap.Report); diff != "" {
				t.Errorf("report (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMaintenanceDrainsCriticalOmitted(t *testing.T) {
	snap := buildInput(t, filepath.Join("testdata", "maintenance-critical.yaml"))
	got := map[string]string{}
	for _, lb := range snap.Endpoints.At(0).GetEndpoints()[0].GetLbEndpoints() {
		got[lb.GetEndpoint().GetAddress().GetSocketAddress().GetAddress()] = lb.GetHealthStatus().String()
	}
	want := map[string]string{"10.0.0.1": "HEALTHY", "10.0.0.2": "HEALTHY", "10.0.0.3": "DRAINING"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("endpoints (-want +got):\n%s", diff)
	}
}

// world returns n services with perService instances each, over two versions,
// and a 90/10 policy for every other service.
func world(n, perService int) ([]discovery.Service, map[string]policy.Weights) {
	services := make([]discovery.Service, n)
	desired := make(map[string]policy.Weights)
	for i := range services {
		name := fmt.Sprintf("svc-%05d", i)
		services[i].Name = name
		for j := range perService {
			services[i].Instances = append(services[i].Instances, discovery.Instance{
				ID:      fmt.Sprintf("%s-%02d", name, j),
				Address: fmt.Sprintf("10.%d.%d.%d", i/256%256, i%256, j+1),
				Port:    8080,
				Version: []string{"v1", "v2"}[j%2],
				Health:  discovery.Health(j % 4),
			})
		}
		if i%2 == 0 {
			desired[name] = policy.Weights{"v1": 9000, "v2": 1000}
		}
	}
	return services, desired
}

func mustBuild(t testing.TB, services []discovery.Service, desired map[string]policy.Weights) *Snapshot {
	t.Helper()
	return mustBuildWith(t, new(Builder), services, desired)
}

func mustBuildWith(t testing.TB, b *Builder, services []discovery.Service, desired map[string]policy.Weights) *Snapshot {
	t.Helper()
	model, err := discovery.NewModel(services)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := b.Build(Input{Model: model, Routing: policy.TableOf(weightsOnly(desired))})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func TestDeterministic(t *testing.T) {
	services, desired := world(50, 6)
	first := mustBuild(t, services, desired)

	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(len(services), func(i, j int) { services[i], services[j] = services[j], services[i] })
	for _, s := range services {
		r.Shuffle(len(s.Instances), func(i, j int) { s.Instances[i], s.Instances[j] = s.Instances[j], s.Instances[i] })
	}
	second := mustBuild(t, services, desired)

	if first.Version != second.Version {
		t.Errorf("Version = %s, then %s after shuffling", first.Version, second.Version)
	}
	if diff := cmp.Diff(messages(first.Resources), messages(second.Resources), protocmp.Transform()); diff != "" {
		t.Errorf("resources differ after shuffling (-first +second):\n%s", diff)
	}
	if len(first.Version) != versionLen {
		t.Errorf("Version %q has %d characters, want %d", first.Version, len(first.Version), versionLen)
	}
}

func TestVersionChanges(t *testing.T) {
	services, desired := world(3, 4)
	base := mustBuild(t, services, desired)
	if again := mustBuild(t, services, desired); again.Version != base.Version {
		t.Errorf("nothing changed but Version went from %s to %s", base.Version, again.Version)
	}

	services[1].Instances[0].Address = "192.0.2.1" // a passing instance
	if moved := mustBuild(t, services, desired); moved.Version == base.Version {
		t.Errorf("an endpoint moved but Version stayed %s", base.Version)
	}
	services[1].Instances[0].Address = "10.0.1.1"
	if back := mustBuild(t, services, desired); back.Version != base.Version {
		t.Errorf("endpoint moved back but Version is %s, want %s", back.Version, base.Version)
	}

	desired["svc-00000"] = policy.Weights{"v1": 5000, "v2": 5000}
	if shifted := mustBuild(t, services, desired); shifted.Version == base.Version {
		t.Errorf("weights changed but Version stayed %s", base.Version)
	}
}

func TestReportWarnings(t *testing.T) {
	r := Report{
		Unserved:           []ServiceVersion{{"greeter", "v3"}},
		UnknownServices:    []string{"ghost"},
		NoServing:          []string{"empty"},
		DuplicateEndpoints: []ServiceVersion{{"greeter", "v1"}},
	}
	want := []string{
		`service "greeter": policy wants version "v3", which has no serving instances; its share goes to the other versions`,
		`service "ghost": has a policy but discovery does not know it`,
		`service "empty": no serving instances; its calls fail`,
		`service "greeter": version "v1" has several instances at one address and port; they are one endpoint, healthy if any of them is`,
	}
	if diff := cmp.Diff(want, r.Warnings()); diff != "" {
		t.Errorf("Warnings (-want +got):\n%s", diff)
	}
	if got := (Report{}).Warnings(); len(got) != 0 {
		t.Errorf("empty report warns %q", got)
	}
}

func BenchmarkBuild(b *testing.B) {
	services, desired := world(5000, 10)
	model, err := discovery.NewModel(services)
	if err != nil {
		b.Fatal(err)
	}
	in := Input{Model: model, Routing: policy.TableOf(weightsOnly(desired))}
	// One build first, untimed: a process's first build also sets up
	// protobuf's message types and grows the heap, which the first of
	// -count runs would otherwise pay for (about 10 % of its time).
	if _, err := Build(in); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(in); err != nil {
			b.Fatal(err)
		}
	}
}

// weightsOnly turns weights per service into routing without matches or
// stickiness.
func weightsOnly(desired map[string]policy.Weights) map[string]policy.Routing {
	out := make(map[string]policy.Routing, len(desired))
	for svc, ws := range desired {
		out[svc] = policy.Routing{Weights: ws}
	}
	return out
}

// withPort returns services with one instance of service i moved to port.
// withAddress returns services with the first instance of the i-th at
// address.
func withAddress(services []discovery.Service, i int, address string) []discovery.Service {
	out := slices.Clone(services)
	out[i].Instances = slices.Clone(out[i].Instances)
	out[i].Instances[0].Address = address
	return out
}

func withPort(services []discovery.Service, i int, port uint32) []discovery.Service {
	out := slices.Clone(services)
	out[i].Instances = slices.Clone(out[i].Instances)
	out[i].Instances[0].Port = port
	return out
}

func TestBuilderReusesAndAgreesWithBuild(t *testing.T) {
	services, desired := world(50, 3)
	var b Builder
	for step, port := range []uint32{0, 7001, 7002, 7002} {
		if port != 0 {
			services = withPort(services, step, port)
		}
		model, err := discovery.NewModel(services)
		if err != nil {
			t.Fatal(err)
		}
		in := Input{Model: model, Routing: policy.TableOf(weightsOnly(desired))}
		fresh, err := Build(in)
		if err != nil {
			t.Fatal(err)
		}
		incremental, err := b.Build(in)
		if err != nil {
			t.Fatal(err)
		}
		if fresh.Version != incremental.Version {
			t.Fatalf("step %d: Builder gives version %s, Build gives %s", step, incremental.Version, fresh.Version)
		}
	}
	// An unchanged service keeps the very same messages.
	model, _ := discovery.NewModel(services)
	first, _ := b.Build(Input{Model: model, Routing: policy.TableOf(weightsOnly(desired))})
	second, _ := b.Build(Input{Model: model, Routing: policy.TableOf(weightsOnly(desired))})
	if first.Clusters.At(10) != second.Clusters.At(10) || first.Endpoints.At(10) != second.Endpoints.At(10) {
		t.Error("an unchanged service's resources were built again")
	}
}

// TestBuilderSharesUnchangedLists: a list of a snapshot in which nothing
// changed since the last build is the Same list, which an xDS cache takes
// as its type unchanged; an endpoint moving to another address changes
// only the assignments, and Changed names only that service's.
func TestBuilderSharesUnchangedLists(t *testing.T) {
	services, desired := world(20, 4)
	var b Builder
	first := mustBuildWith(t, &b, services, desired)
	services = slices.Clone(services)
	services[3].Instances = slices.Clone(services[3].Instances)
	services[3].Instances[0].Address = "10.9.9.9"
	second := mustBuildWith(t, &b, services, desired)
	if !first.Clusters.Same(second.Clusters) || !first.Routes.Same(second.Routes) || first.Outbound != second.Outbound ||
		!first.APIListeners.Same(second.APIListeners) || !first.SidecarListeners.Same(second.SidecarListeners) {
		t.Error("a new list, though none of its resources changed")
	}
	changes, ok := Changed(second.Endpoints, first.Endpoints)
	if !ok {
		t.Fatal("assignments: Changed could not tell")
	}
	var changed []string
	for i := range changes {
		changed = append(changed, second.Endpoints.At(i).GetClusterName())
	}
	if want := []string{ClusterName(services[3].Name, services[3].Instances[0].Version)}; !slices.Equal(changed, want) {
		t.Errorf("assignments changed: %v, want %v", changed, want)
	}
}

// TestBuilderSeesRoutingInAnUnrelatedTable: a routing table made apart
// from the last build's (policy.TableOf, no history) with one policy
// changed gets that policy's routing (a Builder compares each policy of
// such a table with what its service was built with), and the very same
// table again builds the same snapshot.
func TestBuilderSeesRoutingInAnUnrelatedTable(t *testing.T) {
	model, err := discovery.NewModel([]discovery.Service{{Name: "a", Instances: []discovery.Instance{
		{ID: "1", Address: "10.0.0.1", Port: 80, Version: "v1"},
		{ID: "2", Address: "10.0.0.2", Port: 80, Version: "v2"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	routing := map[string]policy.Routing{"a": {Weights: policy.Weights{"v1": 10000}}}
	var b Builder
	if _, err := b.Build(Input{Model: model, Routing: policy.TableOf(routing)}); err != nil {
		t.Fatal(err)
	}
	routing = maps.Clone(routing)
	routing["a"] = policy.Routing{Weights: policy.Weights{"v2": 10000}}
	table := policy.TableOf(routing)
	got, err := b.Build(Input{Model: model, Routing: table})
	if err != nil {
		t.Fatal(err)
	}
	want := mustBuild(t, model.Services(), map[string]policy.Weights{"a": {"v2": 10000}})
	if got.Version != want.Version {
		t.Errorf("Builder's version %s, Build's %s: the routing in an unrelated table was missed", got.Version, want.Version)
	}
	again, err := b.Build(Input{Model: model, Routing: table})
	if err != nil {
		t.Fatal(err)
	}
	if again.Version != want.Version {
		t.Errorf("the same table again: version %s, want %s", again.Version, want.Version)
	}
}

// BenchmarkBuildIncremental changes one service per build, in catalogs
// of 1,000, 5,000 and 20,000 services, half of them with a policy: an
// instance moves to another address (only its assignment changes) or
// port (its virtual host's domains name ports, so RouteConfigName
// changes too) — discovery's model follows the last one, see
// discovery.Model.Next — or a service's weights change (a routing table
// that follows the last and names that service, as the policy engine
// makes: see policy.Table.Next). The work should follow
// the change, not the catalog: RouteConfigName's list of virtual hosts
// is persistent too (see SharedRoutes). Making the model and the
// routing is left out of the time: it is discovery's and the policy
// engine's work, not the Builder's.
func BenchmarkBuildIncremental(b *testing.B) {
	for _, change := range []string{"address", "port", "weights"} {
		for _, n := range []int{1000, 5000, 20000} {
			b.Run(fmt.Sprintf("change=%s/services=%d", change, n), func(b *testing.B) { benchmarkBuildIncremental(b, n, change) })
		}
	}
}

func benchmarkBuildIncremental(b *testing.B, n int, change string) {
	services, desired := world(n, 10)
	routing := weightsOnly(desired)
	table := policy.TableOf(routing)
	model, err := discovery.NewModel(services)
	if err != nil {
		b.Fatal(err)
	}
	var builder Builder
	if _, err := builder.Build(Input{Model: model, Routing: table}); err != nil {
		b.Fatal(err)
	}
	step := 0
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		step++
		switch change {
		case "address", "port":
			if change == "address" {
				services = withAddress(services, step%n, fmt.Sprintf("11.%d.%d.%d", step>>16&255, step>>8&255, step&255))
			} else {
				services = withPort(services, step%n, uint32(20000+step))
			}
			next, err := discovery.NewModel(services)
			if err != nil {
				b.Fatal(err)
			}
			model = model.Next(next)
		case "weights":
			name := services[2*step%n].Name
			routing[name] = policy.Routing{Weights: policy.Weights{"v1": policy.Weight(step % 10001), "v2": policy.Weight(10000 - step%10001)}}
			table = table.Next([]string{name}, lookupIn(routing))
		}
		b.StartTimer()
		if _, err := builder.Build(Input{Model: model, Routing: table}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBuilderLetsGoOfOldBuilds checks that a service's earlier builds can
// be collected once it is rebuilt: what a rebuilt service keeps of its last
// build (its listener's connection manager, its route configuration) must
// not point into that build, which holds its old instances and resources.
func TestBuilderLetsGoOfOldBuilds(t *testing.T) {
	services, desired := world(3, 2)
	model, err := discovery.NewModel(services)
	if err != nil {
		t.Fatal(err)
	}
	var b Builder
	if _, err := b.Build(Input{Model: model, Routing: policy.TableOf(weightsOnly(desired))}); err != nil {
		t.Fatal(err)
	}
	first := weak.Make(b.services.At(0))
	routing := weightsOnly(desired)
	for step := range 4 { // an instance moves: the listener and the route configuration stay
		services = slices.Clone(services)
		services[0].Instances = slices.Clone(services[0].Instances)
		services[0].Instances[0].Address = fmt.Sprintf("10.9.0.%d", step+1)
		next, err := discovery.NewModel(services)
		if err != nil {
			t.Fatal(err)
		}
		model = model.Next(next)
		if _, err := b.Build(Input{Model: model, Routing: policy.TableOf(routing)}); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	if first.Value() != nil {
		t.Error("the first build of a service rebuilt four times since is still reachable")
	}
	runtime.KeepAlive(&b) // the builder and what it holds stay reachable through the check
}

// lookupIn returns the routing of a service in routing, as policy.Table's
// Next asks for it.
func lookupIn(routing map[string]policy.Routing) func(string) (policy.Routing, bool) {
	return func(svc string) (policy.Routing, bool) {
		r, ok := routing[svc]
		return r, ok
	}
}
