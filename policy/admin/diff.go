package admin

import (
	"context"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/weir-mesh/weir/policy"
	adminv1 "github.com/weir-mesh/weir/policy/admin/v1"
)

// Diff implements adminv1.AdminServiceServer: what replacing the policy
// directory with the candidate files would change, per service, applying
// nothing. Problems with the files come back in the response's errors, each
// naming file, line and field, and then no service is compared.
func (s *Server) Diff(_ context.Context, req *adminv1.DiffRequest) (*adminv1.DiffResponse, error) {
	set, errs := parseCandidate(req.GetFiles())
	if len(errs) > 0 {
		return &adminv1.DiffResponse{Errors: errs}, nil
	}
	e := s.cfg.Engine
	current := e.Policies()
	before, after := e.Routing().Map(), e.Preview(set)
	out := &adminv1.DiffResponse{}
	var planBefore, planAfter map[string]ServicePlan
	if s.cfg.Planner != nil {
		var err1, err2 error
		planBefore, err1 = s.cfg.Planner.Plan(before)
		planAfter, err2 = s.cfg.Planner.Plan(after)
		if err := cmpOr(err1, err2); err != nil {
			out.Errors = append(out.Errors, fmt.Sprintf("clusters and routes not compared: %v", err))
			planBefore, planAfter = nil, nil
		}
	}
	services := slices.Sorted(maps.Keys(before))
	for svc := range after {
		if _, ok := before[svc]; !ok {
			services = append(services, svc)
		}
	}
	slices.Sort(services)
	for _, svc := range services {
		d := &adminv1.ServiceDiff{Service: svc, StrategyBefore: strategyOf(current, before, svc),
			StrategyAfter: strategyOf(set, after, svc),
			WeightsBefore: weights(before[svc].Weights), WeightsAfter: weights(after[svc].Weights)}
		d.ClustersAdded, d.ClustersRemoved = setDiff(planAfter[svc].Clusters, planBefore[svc].Clusters), setDiff(planBefore[svc].Clusters, planAfter[svc].Clusters)
		d.RoutesChanged = routesChanged(planBefore[svc].Routes, planAfter[svc].Routes)
		if changed(d) {
			out.Services = append(out.Services, d)
		}
	}
	return out, nil
}

func cmpOr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// parseCandidate parses the candidate policy files (those a policy
// directory's reading reads: policy.IsPolicyFile) into a Set.
func parseCandidate(files map[string]string) (policy.Set, []string) {
	var (
		policies []policy.Policy
		errs     []string
	)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if !policy.IsPolicyFile(path.Base(name)) {
			continue
		}
		p, err := policy.ParseFile(name, []byte(files[name]))
		if err != nil {
			errs = append(errs, strings.Split(err.Error(), "\n")...)
			continue
		}
		policies = append(policies, p)
	}
	set, err := policy.NewSet(policies...)
	if err != nil {
		errs = append(errs, strings.Split(err.Error(), "\n")...)
	}
	return set, errs
}

// strategyOf names how svc is routed: its policy's strategy, "frozen" for
// weights kept after its policy was deleted, "" for none.
func strategyOf(set policy.Set, routing map[string]policy.Routing, svc string) string {
	if p, ok := set.Get(svc); ok {
		return string(p.Strategy)
	}
	if _, ok := routing[svc]; ok {
		return "frozen"
	}
	return ""
}

// setDiff returns, sorted, the names in a that are not in b.
func setDiff(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return out
}

// routesChanged returns, sorted, the routes added, removed or changed.
func routesChanged(before, after map[string]string) []string {
	var out []string
	for name, r := range before {
		if a, ok := after[name]; !ok || a != r {
			out = append(out, name)
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func changed(d *adminv1.ServiceDiff) bool {
	return d.StrategyBefore != d.StrategyAfter || !maps.Equal(d.WeightsBefore, d.WeightsAfter) ||
		len(d.ClustersAdded)+len(d.ClustersRemoved)+len(d.RoutesChanged) > 0
}
