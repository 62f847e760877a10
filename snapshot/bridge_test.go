package snapshot

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/envoy"
	"github.com/weir-mesh/weir/policy"
)

// build returns the snapshot of service greeter with the given instances
// under the given policy weights.
func build(t *testing.T, weights policy.Weights, instances ...discovery.Instance) *Snapshot {
	t.Helper()
	m, err := discovery.NewModel([]discovery.Service{{Name: "greeter", Instances: instances}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Build(Input{Model: m, Routing: policy.TableOf(map[string]policy.Routing{"greeter": {Weights: weights}})})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func inst(id, version string, port uint32, h discovery.Health) discovery.Instance {
	return discovery.Instance{ID: id, Address: "10.0.0.1", Port: port, Version: version, Health: h}
}

func claOf(s *Snapshot, cluster string) *endpointv3.ClusterLoadAssignment {
	for cla := range s.Endpoints.Values() {
		if cla.GetClusterName() == cluster {
			return cla
		}
	}
	return nil
}

func TestBridge(t *testing.T) {
	half := policy.Weights{"v1": 5000, "v2": 5000}
	v1 := inst("a", "v1", 9101, discovery.Passing)
	v1Draining := inst("a", "v1", 9101, discovery.Maintenance)
	v2 := inst("b", "v2", 9201, discovery.Passing)
	v2Moved := inst("b", "v2", 9202, discovery.Passing)
	v2Draining := inst("b", "v2", 9201, discovery.Maintenance)
	v2Critical := inst("b", "v2", 9201, discovery.Critical)

	tests := []struct {
		name       string
		prev, next *Snapshot
		wantBridge bool
		keptCLA    string // cluster whose prev endpoints the bridge keeps
	}{
		{"v1 drained keeps v1's endpoints until routes move", build(t, half, v1, v2), build(t, half, v1Draining, v2), true, "greeter/v1"},
		{"v1 deregistered keeps v1's cluster until routes move", build(t, half, v1, v2), build(t, half, v2), true, "greeter/v1"},
		{"an endpoint change without a routing change needs no bridge", build(t, half, v1, v2), build(t, half, v1, v2Moved), false, ""},
		{"switching all traffic to a new version warms it on the old routes first", build(t, half, v1), build(t, policy.Weights{"v2": 10000}, v1, v2), true, ""},
		{"a new version is warmed before it gets traffic", build(t, half, v1), build(t, half, v1, v2), true, ""},
		{"nothing serving at all needs no bridge", build(t, half, v1Draining), build(t, half, inst("a", "v1", 9101, discovery.Critical)), false, ""},
		{"a version back from draining gets its endpoints before its traffic", build(t, half, v1, v2Draining), build(t, half, v1, v2), true, ""},
		{"a version back from critical gets its endpoints before its traffic", build(t, half, v1, v2Critical), build(t, half, v1, v2), true, ""},
		{"a version still without serving endpoints is not waited for", build(t, half, v1, v2Draining), build(t, half, v1Draining, v2Draining), false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bridge, err := Bridge(tt.prev, tt.next, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := bridge != tt.next; got != tt.wantBridge {
				t.Fatalf("bridge needed = %v, want %v", got, tt.wantBridge)
			}
			if !tt.wantBridge {
				return
			}
			if err := Consistent(bridge.Resources); err != nil {
				t.Fatal(err)
			}
			if tt.keptCLA == "" {
				// Warming: the new cluster is named but gets no traffic yet.
				if got := RoutedClusters(bridge.Resources); !slices.Equal(got, []string{"greeter/v1"}) {
					t.Errorf("bridge routes to %v, want only greeter/v1", got)
				}
				if got := ReferencedClusters(bridge.Resources); !slices.Contains(got, "greeter/v2") {
					t.Errorf("bridge names %v, want greeter/v2 warming", got)
				}
				if claOf(bridge, "greeter/v2") != claOf(tt.next, "greeter/v2") {
					t.Error("bridge's greeter/v2 endpoints are not next's")
				}
			} else {
				if !slices.Equal(RoutedClusters(bridge.Resources), RoutedClusters(tt.next.Resources)) {
					t.Errorf("bridge routes to %v, want next's %v", RoutedClusters(bridge.Resources), RoutedClusters(tt.next.Resources))
				}
				if got, want := claOf(bridge, tt.keptCLA), claOf(tt.prev, tt.keptCLA); got != want {
					t.Errorf("bridge's %s endpoints are not prev's", tt.keptCLA)
				}
				if eps := claOf(bridge, tt.keptCLA).GetEndpoints()[0].GetLbEndpoints(); eps[0].GetHealthStatus() != corev3.HealthStatus_HEALTHY {
					t.Errorf("kept endpoint is %v, want HEALTHY", eps[0].GetHealthStatus())
				}
			}
			if steps := stepsToNext(t, bridge, tt.next); steps > 2 {
				t.Errorf("reaching next took %d more bridges, want at most 2", steps)
			}
		})
	}
}

// stepsToNext bridges from b until it reaches next and returns how many more
// bridges that took.
func stepsToNext(t *testing.T, b, next *Snapshot) int {
	t.Helper()
	for steps := 0; steps < 5; steps++ {
		nb, err := Bridge(b, next, nil)
		if err != nil {
			t.Fatal(err)
		}
		if nb == next {
			return steps
		}
		b = nb
	}
	t.Fatal("bridging never reaches next")
	return 0
}

// TestBridgeSwitchesVersionInThreeSteps switches all traffic to a new
// version while the old one stays registered until the switch is applied,
// as a deploy does: the new version warms on the old routes, routes move
// while the old version keeps its endpoints, and then it leaves.
func TestBridgeSwitchesVersionInThreeSteps(t *testing.T) {
	v1, v2 := inst("a", "v1", 9101, discovery.Passing), inst("b", "v2", 9201, discovery.Passing)
	prev := build(t, policy.Weights{"v1": 10000}, v1)
	switched := build(t, policy.Weights{"v2": 10000}, v1, v2)
	warm, err := Bridge(prev, switched, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := RoutedClusters(warm.Resources); !slices.Equal(got, []string{"greeter/v1"}) {
		t.Fatalf("step 1 routes to %v, want greeter/v1 while greeter/v2 warms", got)
	}
	if claOf(warm, "greeter/v1") == nil || claOf(warm, "greeter/v2") == nil {
		t.Fatal("step 1 must serve both clusters")
	}
	if moved, _ := Bridge(warm, switched, nil); moved != switched {
		t.Fatal("step 2, once greeter/v2 is warm, is not the switch")
	}
	next := build(t, policy.Weights{"v2": 10000}, v2)
	if left, _ := Bridge(switched, next, nil); left != next || claOf(left, "greeter/v1") != nil {
		t.Fatal("step 3, greeter/v1 leaving after routes moved off it, is not next")
	}
}

// TestBridgeSwitchesFromALeavingVersion switches all traffic to a new
// version in the very change that the old one leaves: its routes do not
// wait for the new version to warm, as they would route to a version
// without endpoints meanwhile, but the old version's endpoints stay until
// proxies applied them.
func TestBridgeSwitchesFromALeavingVersion(t *testing.T) {
	prev := build(t, policy.Weights{"v1": 10000}, inst("a", "v1", 9101, discovery.Passing))
	next := build(t, policy.Weights{"v2": 10000}, inst("b", "v2", 9201, discovery.Passing))
	switched, err := Bridge(prev, next, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := RoutedClusters(switched.Resources); !slices.Equal(got, []string{"greeter/v2"}) || claOf(switched, "greeter/v1") != claOf(prev, "greeter/v1") {
		t.Fatalf("step 1 routes to %v with greeter/v1's endpoints kept: %v; want routes on v2 and v1's endpoints kept",
			got, claOf(switched, "greeter/v1") == claOf(prev, "greeter/v1"))
	}
	if last, _ := Bridge(switched, next, nil); last != next {
		t.Fatal("step 2 is not next")
	}
}

// buildRouting returns the snapshot of service greeter with the given
// instances under routing.
func buildRouting(t *testing.T, routing policy.Routing, instances ...discovery.Instance) *Snapshot {
	t.Helper()
	m, err := discovery.NewModel([]discovery.Service{{Name: "greeter", Instances: instances}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Build(Input{Model: m, Routing: policy.TableOf(map[string]policy.Routing{"greeter": routing})})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// routeNames returns the names of the routes of the shared route
// configuration, which every service's own repeats.
func routeNames(s *Snapshot) []string {
	var out []string
	for _, rc := range sharedRouteConfigs(s.Resources) {
		for _, vh := range rc.GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				out = append(out, r.GetName())
			}
		}
	}
	return out
}

func TestBridgeMatchAndSticky(t *testing.T) {
	v1 := inst("a", "v1", 9101, discovery.Passing)
	v2 := inst("b", "v2", 9201, discovery.Passing)
	half := policy.Weights{"v1": 5000, "v2": 5000}
	canaryMatch := policy.Routing{
		Weights: policy.Weights{"v1": 10000},
		Matches: []policy.MatchRoute{{Version: "v2", Conditions: []policy.Match{{Header: "x-canary", Exact: "1"}}}},
	}
	sticky := policy.Routing{Weights: half, Sticky: &policy.Sticky{Header: "x-user-id"}}

	tests := []struct {
		name        string
		prev, next  *Snapshot
		routed      []string // by the bridge
		routes      []string // route names of the bridge
		referenced  string   // a cluster the bridge must name (warming)
		keptCluster string   // a cluster the bridge keeps from prev
	}{{
		name:       "a match route to a new canary waits until the canary is warm",
		prev:       buildRouting(t, policy.Routing{Weights: policy.Weights{"v1": 10000}}, v1),
		next:       buildRouting(t, canaryMatch, v1, v2),
		routed:     []string{"greeter/v1"},
		routes:     []string{"", envoy.WarmingRouteName},
		referenced: "greeter/v2",
	}, {
		name:       "turning stickiness on warms the ring before it gets traffic",
		prev:       buildRouting(t, policy.Routing{Weights: half}, v1, v2),
		next:       buildRouting(t, sticky, v1, v2),
		routed:     []string{"greeter/v1", "greeter/v2"},
		routes:     []string{"", envoy.WarmingRouteName},
		referenced: "greeter/*",
	}, {
		name:       "a match route to a canary back from critical waits for its endpoints",
		prev:       buildRouting(t, canaryMatch, v1, inst("b", "v2", 9201, discovery.Critical)),
		next:       buildRouting(t, canaryMatch, v1, v2),
		routed:     []string{"greeter/v1"},
		routes:     []string{"", envoy.WarmingRouteName},
		referenced: "greeter/v2",
	}, {
		name:        "turning stickiness off keeps the ring until routes leave it",
		prev:        buildRouting(t, sticky, v1, v2),
		next:        buildRouting(t, policy.Routing{Weights: half}, v1, v2),
		routed:      []string{"greeter/v1", "greeter/v2"},
		routes:      []string{""}, // next routes to both versions: nothing to warm
		keptCluster: "greeter/*",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bridge, err := Bridge(tt.prev, tt.next, nil)
			if err != nil {
				t.Fatal(err)
			}
			if bridge == tt.next {
				t.Fatal("no bridge, want one")
			}
			if err := Consistent(bridge.Resources); err != nil {
				t.Fatal(err)
			}
			if err := validate(bridge.Resources); err != nil {
				t.Fatal(err)
			}
			checkServiceRoutes(t, bridge.Resources)
			if got := RoutedClusters(bridge.Resources); !slices.Equal(got, tt.routed) {
				t.Errorf("bridge routes to %v, want %v", got, tt.routed)
			}
			if got := routeNames(bridge); !slices.Equal(got, tt.routes) {
				t.Errorf("bridge has routes %q, want %q", got, tt.routes)
			}
			if tt.referenced != "" && !slices.Contains(ReferencedClusters(bridge.Resources), tt.referenced) {
				t.Errorf("bridge names %v, want %s warming", ReferencedClusters(bridge.Resources), tt.referenced)
			}
			if tt.keptCluster != "" && claOf(bridge, tt.keptCluster) != claOf(tt.prev, tt.keptCluster) {
				t.Errorf("bridge does not keep prev's %s", tt.keptCluster)
			}
			if steps := stepsToNext(t, bridge, tt.next); steps > 1 {
				t.Errorf("reaching next took %d more bridges, want at most 1", steps)
			}
		})
	}
}

// TestBridgeFromEarlierSnapshots checks which clusters that prev warms
// BridgeFrom takes as set up: only those that every earlier snapshot a
// proxy may still hold names too. A version deregistered and back within
// a burst is warmed by prev, but a proxy holding the snapshot between
// dropped its cluster.
func TestBridgeFromEarlierSnapshots(t *testing.T) {
	v1 := inst("a", "v1", 9101, discovery.Passing)
	v2 := inst("b", "v2", 9201, discovery.Passing)
	onlyV1 := policy.Weights{"v1": 10000}
	warming := build(t, onlyV1, v1, v2) // v2 named by the warming route
	without := build(t, onlyV1, v1)     // v2 not named
	next := build(t, policy.Weights{"v1": 5000, "v2": 5000}, v1, v2)

	tests := []struct {
		name       string
		earlier    func() ([]*Snapshot, bool)
		wantRouted []string
	}{
		{"no earlier snapshot: the fleet holds prev", nil, []string{"greeter/v1", "greeter/v2"}},
		{"none, asked", func() ([]*Snapshot, bool) { return nil, true }, []string{"greeter/v1", "greeter/v2"}},
		{"earlier ones warmed v2 too", func() ([]*Snapshot, bool) { return []*Snapshot{warming}, true }, []string{"greeter/v1", "greeter/v2"}},
		{"one between dropped v2", func() ([]*Snapshot, bool) { return []*Snapshot{warming, without}, true }, []string{"greeter/v1"}},
		{"older ones no longer known", func() ([]*Snapshot, bool) { return []*Snapshot{warming}, false }, []string{"greeter/v1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bridge, err := BridgeFrom(warming, next, nil, tt.earlier)
			if err != nil {
				t.Fatal(err)
			}
			if err := Consistent(bridge.Resources); err != nil {
				t.Fatal(err)
			}
			// Envoy's route configuration and the gRPC clients' alike.
			for _, r := range []Resources{{Outbound: bridge.Outbound}, {Routes: bridge.Routes}} {
				if got := RoutedClusters(r); !slices.Equal(got, tt.wantRouted) {
					t.Errorf("%v: routed %v, want %v", r.RouteConfigurations()[0].GetName(), got, tt.wantRouted)
				}
			}
			if !slices.Contains(ReferencedClusters(bridge.Resources), "greeter/v2") {
				t.Error("greeter/v2 is not named: clients would not set it up")
			}
		})
	}
}

// TestBridgeRoutesToNoDownVersion checks the bridge of a change that
// routes only to versions clients have not set up, so that the bridge
// keeps prev's routing meanwhile, while a version prev routes to goes
// down (critical or deregistered) in the same change: prev's routing must
// not bring the down version back, with prev's endpoints as if they still
// served. What is left of prev's routing keeps the traffic; with nothing
// left, next's routing is served at once.
func TestBridgeRoutesToNoDownVersion(t *testing.T) {
	only := func(v string) policy.Weights { return policy.Weights{v: policy.Full} }
	v1 := inst("a", "v1", 9101, discovery.Passing)
	v1Critical := inst("a", "v1", 9101, discovery.Critical)
	v2 := inst("b", "v2", 9201, discovery.Passing)
	v2Critical := inst("b", "v2", 9201, discovery.Critical)
	v3 := inst("c", "v3", 9301, discovery.Passing)
	tests := []struct {
		name       string
		prev, next *Snapshot
		routed     []string // by the bridge
	}{
		{"v1 critical as a new v2 comes", build(t, only("v1"), v1), build(t, only("v1"), v1Critical, v2), []string{"greeter/v2"}},
		{"v1 deregistered as a new v2 comes", build(t, only("v1"), v1), build(t, only("v1"), v2), []string{"greeter/v2"}},
		{"v1 critical as v2 comes back from critical", build(t, only("v2"), v1, v2Critical), build(t, only("v2"), v1Critical, v2), []string{"greeter/v2"}},
		{"v1 critical while v3 serves, the policy moving to a new v2",
			build(t, policy.Weights{"v1": 5000, "v3": 5000}, v1, v3), build(t, only("v2"), v1Critical, v2, v3), []string{"greeter/v3"}},
		// Not a version lost: the ring's endpoints are v1's, which serves.
		{"stickiness turned off as the policy moves to a new v2",
			buildRouting(t, policy.Routing{Weights: only("v1"), Sticky: &policy.Sticky{Header: "x-user-id"}}, v1),
			build(t, only("v2"), v1, v2), []string{"greeter/*"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bridge, err := Bridge(tt.prev, tt.next, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := Consistent(bridge.Resources); err != nil {
				t.Fatal(err)
			}
			if err := validate(bridge.Resources); err != nil {
				t.Fatal(err)
			}
			checkServiceRoutes(t, bridge.Resources)
			for _, r := range []Resources{{Outbound: bridge.Outbound}, {Routes: bridge.Routes}} {
				if got := RoutedClusters(r); !slices.Equal(got, tt.routed) {
					t.Errorf("%s: the bridge routes to %v, want %v", r.RouteConfigurations()[0].GetName(), got, tt.routed)
				}
			}
			if steps := stepsToNext(t, bridge, tt.next); steps > 2 {
				t.Errorf("reaching next took %d more bridges, want at most 2", steps)
			}
		})
	}
}

// routesOnlyToServing fails unless every cluster that s routes traffic to
// lists as HEALTHY only endpoints of instances that serve in m, of its
// version (any version, for a sticky service's combined cluster), and at
// least one unless no instance of its service serves: a bridge that
// routes to a version gone down, with its endpoints from before, fails.
func routesOnlyToServing(t *testing.T, where string, m discovery.Model, s *Snapshot) {
	t.Helper()
	for _, c := range RoutedClusters(s.Resources) {
		name, version, _ := strings.Cut(c, "/")
		svc, _ := m.Service(name)
		serving := map[string]bool{}
		anyServing := false
		for _, in := range svc.Instances {
			if in.Health.Serving() {
				anyServing = true
				if version == StickyVersion || in.Version == version {
					serving[fmt.Sprintf("%s:%d", in.Address, in.Port)] = true
				}
			}
		}
		healthy := 0
		for _, locality := range claOf(s, c).GetEndpoints() {
			for _, ep := range locality.GetLbEndpoints() {
				sa := ep.GetEndpoint().GetAddress().GetSocketAddress()
				if ep.GetHealthStatus() != corev3.HealthStatus_HEALTHY {
					continue
				}
				healthy++
				if at := fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue()); !serving[at] {
					t.Fatalf("%s: %s gets traffic, listing %s, which does not serve", where, c, at)
				}
			}
		}
		if healthy == 0 && anyServing {
			t.Fatalf("%s: %s gets traffic without a healthy endpoint while %s has serving instances", where, c, name)
		}
	}
}
