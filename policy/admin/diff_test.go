package admin

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/testing/protocmp"

	"github.com/google/go-cmp/cmp"

	"github.com/weir-mesh/weir/policy"
	adminv1 "github.com/weir-mesh/weir/policy/admin/v1"
)

// fakePlanner gives each service a cluster per version with weight and
// one route rendering its weights.
type fakePlanner struct{}

func (fakePlanner) Plan(routing map[string]policy.Routing) (map[string]ServicePlan, error) {
	out := map[string]ServicePlan{}
	for svc, r := range routing {
		var clusters []string
		for _, v := range slices.Sorted(maps.Keys(r.Weights)) {
			if r.Weights[v] > 0 {
				clusters = append(clusters, svc+"/"+v)
			}
		}
		out[svc] = ServicePlan{Clusters: clusters, Routes: map[string]string{"route-0": r.Weights.String()}}
	}
	return out, nil
}

func TestDiffReportsExactlyTheChange(t *testing.T) {
	env := newEnv(t, Config{Planner: fakePlanner{}})
	before := env.engine.Routing()
	resp, err := env.client.Diff(ctx(t), &adminv1.DiffRequest{Files: map[string]string{
		"greeter.yaml": canaryFile, "catalog.YAML": "service: catalog\nstrategy: fixed\nweights: {v1: 100}\n", "README.md": "not a policy"}})
	if err != nil {
		t.Fatal(err)
	}
	want := &adminv1.DiffResponse{Services: []*adminv1.ServiceDiff{{Service: "catalog",
		StrategyBefore: "fixed", StrategyAfter: "fixed",
		WeightsBefore: map[string]uint32{"v1": 9000, "v2": 1000}, WeightsAfter: map[string]uint32{"v1": 10000},
		ClustersRemoved: []string{"catalog/v2"}, RoutesChanged: []string{"route-0"}}}}
	if d := cmp.Diff(want, resp, protocmp.Transform()); d != "" {
		t.Errorf("Diff (-want +got):\n%s", d)
	}
	if after := env.engine.Routing(); !routingEqual(before.Map(), after.Map()) {
		t.Errorf("Diff applied something: %v → %v", before, after)
	}
}

func TestDiffNewRolloutAndBadFiles(t *testing.T) {
	env := newEnv(t, Config{})
	resp, err := env.client.Diff(ctx(t), &adminv1.DiffRequest{Files: map[string]string{
		"greeter.yaml": canaryFile, "catalog.yaml": fixedFile("90", "10"),
		"search.yaml": strings.Replace(canaryFile, "greeter", "search", 1)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Services) != 1 || resp.Services[0].Service != "search" || resp.Services[0].StrategyBefore != "" ||
		resp.Services[0].StrategyAfter != "canary" || resp.Services[0].WeightsAfter["v2"] != 2000 {
		t.Errorf("Diff adding a canary: %v, want search at its first step (v2=20)", resp)
	}
	resp, err = env.client.Diff(ctx(t), &adminv1.DiffRequest{Files: map[string]string{
		"greeter.yaml": canaryFile, "catalog.yaml": "service: catalog\nstrategy: fixed\nweights: {v1: 90, v2: 5}\n"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Services) != 0 || len(resp.Errors) != 1 || !strings.HasPrefix(resp.Errors[0], "catalog.yaml:3") {
		t.Errorf("Diff of a bad file: %v, want one error naming catalog.yaml:3", resp)
	}
	t.Logf("bad file: %s", resp.Errors)
}
