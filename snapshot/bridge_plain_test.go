package snapshot

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weir-mesh/weir/envoy"
)

// plainBridge is Bridge as it was before it looked only at what changed
// (commit da03a6b): every route configuration cloned and every route
// checked against every cluster prev names, every cluster routed by prev
// or the bridge considered for keeping; it withholds traffic from a
// cluster that comes back to serving endpoints, as Bridge does since.
// TestBridgeAgreesWithPlainBridge compares the two.
func plainBridge(prev, next *Snapshot, stillRouted ...string) (*Snapshot, error) {
	bridged := next.Resources
	withheld := plainWithholdNew(&bridged, prev.Resources)
	leaving := slices.Concat(RoutedClusters(prev.Resources), RoutedClusters(bridged), stillRouted)
	kept := plainKeepLeaving(&bridged, prev.Resources, leaving, RoutedClusters(next.Resources))
	if withheld+kept == 0 {
		return next, nil
	}
	if err := Consistent(bridged); err != nil {
		return nil, fmt.Errorf("snapshot: bridge is inconsistent: %w", err)
	}
	version, err := contentVersion(bridged)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return &Snapshot{Resources: bridged, Version: version, Report: next.Report}, nil
}

func plainWithholdNew(r *Resources, prev Resources) int {
	// A cluster prev names without traffic and serves no endpoints of,
	// whose endpoints next serves, gets them before its traffic.
	routed := RoutedClusters(prev)
	known := slices.DeleteFunc(ReferencedClusters(prev), func(c string) bool {
		return !slices.Contains(routed, c) && plainServes(r.Endpoints, c) && !plainServes(prev.Endpoints, c)
	})
	prevRoutes := plainMainRoutes(prev)
	for vh, route := range prevRoutes {
		prevRoutes[vh] = plainStillServing(route, r.Endpoints)
	}
	changed := 0
	if r.Outbound != nil {
		out, n := plainWithholdIn(r.Outbound.Message(), known, prevRoutes)
		if n > 0 {
			shared, err := SharedRoutesOf(out)
			if err != nil {
				panic(err) // a valid route configuration with fewer routes
			}
			r.Outbound, changed = shared, n
		}
	}
	routes := r.Routes.Slice()
	for i, rc := range routes {
		out, n := plainWithholdIn(rc, known, prevRoutes)
		routes[i] = out
		changed += n
	}
	if changed > 0 {
		r.Routes = ListOf(routes...)
	}
	return changed
}

func plainWithholdIn(rc *routev3.RouteConfiguration, known []string, prevRoutes map[string]*routev3.Route) (*routev3.RouteConfiguration, int) {
	out := proto.Clone(rc).(*routev3.RouteConfiguration)
	changed := 0
	for _, vh := range out.GetVirtualHosts() {
		named := namedClusters(vh) // before plainWithhold changes vh's routes in place
		kept := make([]*routev3.Route, 0, len(vh.GetRoutes()))
		for _, route := range vh.GetRoutes() {
			r, withheld := plainWithhold(route, known, prevRoutes[vh.GetName()])
			if withheld {
				changed++
			}
			if r != nil {
				kept = append(kept, r)
			}
		}
		vh.Routes = warmed(kept, named)
	}
	if changed == 0 {
		return rc, 0
	}
	return out, changed
}

func plainWithhold(route *routev3.Route, known []string, prevMain *routev3.Route) (out *routev3.Route, withheld bool) {
	if route.GetName() == envoy.WarmingRouteName {
		return route, false
	}
	action := route.GetRoute()
	if c := action.GetCluster(); c != "" {
		switch {
		case slices.Contains(known, c):
			return route, false
		case plainIsMatchRoute(route):
			return nil, true
		case prevMain != nil:
			return prevMain, true
		default:
			return route, false
		}
	}
	wc := action.GetWeightedClusters()
	kept := plainKnownOnly(wc.GetClusters(), known)
	switch {
	case len(kept) == len(wc.GetClusters()):
		return route, false
	case len(kept) > 0:
		wc.Clusters = kept
		return route, true
	case prevMain != nil:
		return prevMain, true
	default:
		return route, false
	}
}

func plainServes(endpoints List[*endpointv3.ClusterLoadAssignment], cluster string) bool {
	for cla := range endpoints.Values() {
		if cla.GetClusterName() == cluster {
			return hasServing(cla)
		}
	}
	return false
}

func plainIsMatchRoute(route *routev3.Route) bool {
	return strings.HasPrefix(route.GetName(), matchRoutePrefix)
}

// plainStillServing is withholder.stillServing: main without the
// clusters next's endpoints serve none of (but a sticky cluster next
// removes), nil when none is left.
func plainStillServing(main *routev3.Route, next List[*endpointv3.ClusterLoadAssignment]) *routev3.Route {
	down := func(c string) bool {
		for cla := range next.Values() {
			if cla.GetClusterName() == c {
				return !hasServing(cla)
			}
		}
		return !strings.HasSuffix(c, "/"+StickyVersion)
	}
	out := proto.Clone(main).(*routev3.Route)
	action := out.GetRoute()
	if c := action.GetCluster(); c != "" {
		if down(c) {
			return nil
		}
		return main
	}
	var kept []*routev3.WeightedCluster_ClusterWeight
	for _, cw := range action.GetWeightedClusters().GetClusters() {
		if !down(cw.GetName()) {
			kept = append(kept, cw)
		}
	}
	switch len(kept) {
	case 0:
		return nil
	case len(action.GetWeightedClusters().GetClusters()):
		return main
	}
	action.GetWeightedClusters().Clusters = kept
	return out
}

func plainKnownOnly(clusters []*routev3.WeightedCluster_ClusterWeight, known []string) []*routev3.WeightedCluster_ClusterWeight {
	var kept []*routev3.WeightedCluster_ClusterWeight
	for _, c := range clusters {
		if slices.Contains(known, c.GetName()) {
			kept = append(kept, c)
		}
	}
	return kept
}

func plainMainRoutes(r Resources) map[string]*routev3.Route {
	m := make(map[string]*routev3.Route)
	for _, rc := range r.RouteConfigurations() {
		for _, vh := range rc.GetVirtualHosts() {
			for _, route := range vh.GetRoutes() {
				if route.GetName() != envoy.WarmingRouteName && !plainIsMatchRoute(route) {
					m[vh.GetName()] = route
				}
			}
		}
	}
	return m
}

func plainKeepLeaving(r *Resources, prev Resources, leaving, routedNext []string) int {
	prevClusters := byName(prev.Clusters.Slice(), (*clusterv3.Cluster).GetName)
	prevCLAs := byName(prev.Endpoints.Slice(), (*endpointv3.ClusterLoadAssignment).GetClusterName)
	nextClusters := byName(r.Clusters.Slice(), (*clusterv3.Cluster).GetName)
	nextCLAs := byName(r.Endpoints.Slice(), (*endpointv3.ClusterLoadAssignment).GetClusterName)
	clusters, endpoints := r.Clusters.Slice(), r.Endpoints.Slice()
	kept := 0
	slices.Sort(leaving)
	for _, name := range slices.Compact(leaving) {
		if slices.Contains(routedNext, name) || prevCLAs[name] == nil {
			continue
		}
		switch {
		case nextClusters[name] == nil:
			clusters = append(clusters, prevClusters[name])
			endpoints = append(endpoints, prevCLAs[name])
		case !hasServing(nextCLAs[name]):
			endpoints[slices.Index(endpoints, nextCLAs[name])] = prevCLAs[name]
		default:
			continue
		}
		kept++
	}
	slices.SortFunc(clusters, func(a, b *clusterv3.Cluster) int { return cmp.Compare(a.GetName(), b.GetName()) })
	slices.SortFunc(endpoints, func(a, b *endpointv3.ClusterLoadAssignment) int {
		return cmp.Compare(a.GetClusterName(), b.GetClusterName())
	})
	r.Clusters, r.Endpoints = ListOf(clusters...), ListOf(endpoints...)
	return kept
}

// TestBridgeAgreesWithPlainBridge serves, as the publisher does, bridges
// between the builds of a world that changes at random (versions come and
// go, weights and stickiness change, endpoints drain), with clusters of
// earlier snapshots still routed at random, and checks that Bridge gives
// what plainBridge gives and changes neither snapshot it is given. Where
// plainBridge makes a bridge with next's very content (it puts back
// assignments that are already there), Bridge may return next itself.
func TestBridgeAgreesWithPlainBridge(t *testing.T) {
	bridges := 0
	for seed := range uint64(30) {
		rng := rand.New(rand.NewPCG(seed, 11))
		w := newRandomWorld(rng)
		var b Builder
		var current *Snapshot
		var served []*Snapshot
		for step := range 60 {
			w.change(rng)
			in := w.input(t, rng)
			next, err := b.Build(in)
			if err != nil {
				continue
			}
			if current == nil {
				current, served = next, []*Snapshot{next}
				continue
			}
			var stillRouted []string
			for _, s := range served[max(0, len(served)-rng.IntN(4)):] {
				stillRouted = append(stillRouted, RoutedClusters(s.Resources)...)
			}
			where := fmt.Sprintf("seed %d step %d", seed, step)
			prevMsgs, nextMsgs := messages(current.Resources), messages(next.Resources)
			prevVersion, nextVersion := mustContentVersion(t, current), mustContentVersion(t, next)
			got, gotErr := Bridge(current, next, func() []string { return stillRouted })
			want, wantErr := plainBridge(current, next, stillRouted...)
			if (gotErr == nil) != (wantErr == nil) {
				t.Fatalf("%s: Bridge: %v; plainBridge: %v", where, gotErr, wantErr)
			}
			if !slices.Equal(messages(current.Resources), prevMsgs) || !slices.Equal(messages(next.Resources), nextMsgs) ||
				mustContentVersion(t, current) != prevVersion || mustContentVersion(t, next) != nextVersion {
				t.Fatalf("%s: Bridge changed a snapshot it was given", where)
			}
			if gotErr != nil {
				continue
			}
			routesOnlyToServing(t, where, in.Model, got)
			switch {
			case got == next && (want == next || want.Version == next.Version):
			case got == next || want == next:
				t.Fatalf("%s: Bridge made a bridge: %v; plainBridge: %v", where, got != next, want != next)
			default:
				sameSnapshot(t, where, got, want)
				namesWhatNextNames(t, where, got, next)
				bridges++
			}
			current = got
			if rng.IntN(3) == 0 { // the fleet applied it: on to the target
				current = next
			}
			served = append(served, current)
		}
	}
	if bridges == 0 {
		t.Fatal("no bridge was made: the test compares nothing")
	}
	t.Logf("%d bridges compared", bridges)
}

// namesWhatNextNames fails unless every virtual host of bridge names
// (in some route) every cluster that next's virtual host of that name, in
// the route configuration of that name, names: clients must hold next's
// clusters before next routes to them. plainBridge shares the bridge's
// warming code, so its agreement does not show this.
func namesWhatNextNames(t *testing.T, where string, bridge, next *Snapshot) {
	t.Helper()
	named := func(r Resources) map[[3]string]bool {
		out := make(map[[3]string]bool)
		for _, rc := range r.RouteConfigurations() {
			for _, vh := range rc.GetVirtualHosts() {
				for _, route := range vh.GetRoutes() {
					eachCluster(route, func(c string, _ uint32) { out[[3]string{rc.GetName(), vh.GetName(), c}] = true })
				}
			}
		}
		return out
	}
	inBridge := named(bridge.Resources)
	for k := range named(next.Resources) {
		if !inBridge[k] {
			t.Fatalf("%s: route configuration %q, virtual host %q: the bridge does not name %s, which next names", where, k[0], k[1], k[2])
		}
	}
}

// messages lists every message of r, list by list, in order.
func messages(r Resources) []proto.Message {
	var out []proto.Message
	for c := range r.Clusters.Values() {
		out = append(out, c)
	}
	for e := range r.Endpoints.Values() {
		out = append(out, e)
	}
	if r.Outbound != nil {
		out = append(out, r.Outbound.rest)
		for vh := range r.Outbound.Hosts().Values() {
			out = append(out, vh)
		}
	}
	for rc := range r.Routes.Values() {
		out = append(out, rc)
	}
	for l := range r.SidecarListeners.Values() {
		out = append(out, l)
	}
	for l := range r.APIListeners.Values() {
		out = append(out, l)
	}
	return out
}

func mustContentVersion(t *testing.T, s *Snapshot) string {
	t.Helper()
	v, err := contentVersion(s.Resources)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
