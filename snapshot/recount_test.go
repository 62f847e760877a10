package snapshot

import (
	"maps"
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/policy"
)

// freshLedger counts every name of r from scratch.
func freshLedger(r Resources) ledger {
	var l ledger
	l.count(1, r, func(v visit) []error { return visitResources(r, v, map[*routev3.VirtualHost]bool{}) })
	return l
}

// sameTallies reports whether a and b count the same names alike.
func sameTallies(a, b ledger) bool {
	for k := range a.tallies {
		if len(a.tallies[k]) != len(b.tallies[k]) || !maps.Equal(a.tallies[k], b.tallies[k]) {
			return false
		}
	}
	return a.broken == b.broken && maps.EqualFunc(a.domains, b.domains, maps.Equal)
}

// TestBuilderLedgerMatchesAFreshCount changes services one way after
// another — endpoints, weights, a version gone, a service gone and back,
// the sidecar port, all services but one gone and back — and checks after every build that the Builder's
// ledger, which counted only what changed, equals a count of the whole
// snapshot, and that the snapshot is Build's.
func TestBuilderLedgerMatchesAFreshCount(t *testing.T) {
	services, desired := world(40, 4)
	var b Builder
	var good *Snapshot // the last build that succeeded
	steps := []struct {
		name   string
		change func()
		port   uint32
		reject bool
	}{
		{name: "first build", change: func() {}},
		{name: "an endpoint moves", change: func() { services = withPort(services, 3, 9001) }},
		{name: "weights change", change: func() { desired["svc-00004"] = policy.Weights{"v1": 5000, "v2": 5000} }},
		{name: "a version goes", change: func() {
			services = slices.Clone(services)
			services[6].Instances = slices.DeleteFunc(slices.Clone(services[6].Instances),
				func(in discovery.Instance) bool { return in.Version == "v2" })
		}},
		{name: "a service goes", change: func() { services = slices.Delete(slices.Clone(services), 7, 8) }},
		{name: "it comes back", change: func() {
			again, _ := world(40, 4)
			services = slices.Insert(slices.Clone(services), 7, again[7])
		}},
		// A service whose name is another's Consul DNS name lists that
		// one's domains again: the build is refused, and the ledger stays
		// as the last good build left it.
		{name: "a clashing service comes", change: func() {
			services = append(slices.Clone(services), discovery.Service{Name: "svc-00001.service.consul", Instances: services[1].Instances})
		}, reject: true},
		{name: "it goes", change: func() { services = services[:len(services)-1] }},
		{name: "the sidecar moves", change: func() {}, port: 15002},
		{name: "nothing changes", change: func() {}, port: 15002},
		// With one service, the shared route configuration's domains are
		// checked on their own rather than counted (see visitDomains).
		{name: "all but one go", change: func() { services = services[:1] }},
		{name: "that one changes", change: func() { services = withPort(services, 0, 9002) }},
		{name: "the others come back", change: func() { services, _ = world(40, 4) }},
		{name: "all go", change: func() { services = nil }},
		{name: "one comes", change: func() { services, _ = world(1, 4) }},
	}
	for _, step := range steps {
		step.change()
		model, err := discovery.NewModel(services)
		if err != nil {
			t.Fatal(err)
		}
		in := Input{Model: model, Routing: policy.TableOf(weightsOnly(desired)), SidecarPort: step.port}
		snap, err := b.Build(in)
		if step.reject {
			if err == nil {
				t.Fatalf("%s: Build succeeded, want an inconsistency", step.name)
			}
			if !sameTallies(b.ledger, freshLedger(good.Resources)) {
				t.Errorf("%s: a refused build changed the ledger", step.name)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		good = snap
		if !sameTallies(b.ledger, freshLedger(snap.Resources)) {
			t.Errorf("%s: the Builder's ledger differs from a fresh count", step.name)
		}
		fresh, err := Build(in)
		if err != nil {
			t.Fatal(err)
		}
		if fresh.Version != snap.Version {
			t.Errorf("%s: Builder's version %s, Build's %s", step.name, snap.Version, fresh.Version)
		}
		if got, want := listedNames(snap.Resources), listedNames(fresh.Resources); !slices.Equal(got, want) {
			t.Errorf("%s: the Builder lists\n%v\nBuild lists\n%v", step.name, got, want)
		}
	}
}

// TestRecountRejectsAndForgets gives recount a service that lost a cluster
// its routes still name: it must say so, as Consistent would, and leave
// the ledger as the last good build left it.
func TestRecountRejectsAndForgets(t *testing.T) {
	services, desired := world(10, 4)
	var b Builder
	snap := mustBuildWith(t, &b, services, desired)
	before := freshLedger(snap.Resources)

	i := slices.IndexFunc(b.services.Slice(), func(bs *builtService) bool { return bs.svc.Name == "svc-00003" })
	broken := *b.services.At(i)
	broken.clusters = broken.clusters[:1]
	built := b.services.Set(i, &broken)
	r := snap.Resources
	r.Clusters = ListOf(slices.DeleteFunc(r.Clusters.Slice(), func(c *clusterv3.Cluster) bool {
		return c.GetName() == "svc-00003/v2"
	})...)

	ch := serviceChanges{gone: []*builtService{b.services.At(i)}, came: []*builtService{&broken}, rebuilt: []int{i}, sameSet: true}
	_, err := b.recount(r, built, ch, b.routes, b.sidecar.msg)
	if err == nil || !strings.Contains(err.Error(), `references cluster "svc-00003/v2", which is not served`) {
		t.Errorf("recount = %v, want a missing cluster svc-00003/v2", err)
	}
	if !sameTallies(b.ledger, before) {
		t.Error("a rejected recount changed the ledger")
	}
	if _, err := b.recount(snap.Resources, b.services, serviceChanges{sameSet: true}, b.routes, b.sidecar.msg); err != nil {
		t.Errorf("recount of the last good build: %v", err)
	}
}

// TestRecountStartsOverWhenItDisagrees spoils the Builder's count of one
// service's cluster, as a bug in counting would: when that service
// changes, the ledger finds a fault that a full check does not. The build
// must go through, say so in its report, and the next build count anew.
func TestRecountStartsOverWhenItDisagrees(t *testing.T) {
	services, desired := world(10, 4)
	var b Builder
	mustBuildWith(t, &b, services, desired)
	b.ledger.tallies[clusterName]["svc-00003/v1"] += oneGiven

	services = withPort(services, 3, 9003)
	snap := mustBuildWith(t, &b, services, desired)
	if !snap.Report.Recounted {
		t.Error("Report.Recounted = false after the ledger disagreed")
	}
	services = withPort(services, 4, 9004)
	snap = mustBuildWith(t, &b, services, desired)
	if snap.Report.Recounted || !sameTallies(b.ledger, freshLedger(snap.Resources)) {
		t.Errorf("the build after that: Recounted = %v, ledger like a fresh count = %v", snap.Report.Recounted, sameTallies(b.ledger, freshLedger(snap.Resources)))
	}
}

// listedNames returns the names of r's resources, list by list, in the
// order r lists them.
func listedNames(r Resources) []string {
	var out []string
	for c := range r.Clusters.Values() {
		out = append(out, "cluster "+c.GetName())
	}
	for e := range r.Endpoints.Values() {
		out = append(out, "endpoints "+e.GetClusterName())
	}
	for _, rc := range r.RouteConfigurations() {
		out = append(out, "routes "+rc.GetName())
	}
	for l := range r.SidecarListeners.Values() {
		out = append(out, "sidecar "+l.GetName())
	}
	for l := range r.APIListeners.Values() {
		out = append(out, "api "+l.GetName())
	}
	return out
}
