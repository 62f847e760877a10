package snapshot

import (
	"slices"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/weir-mesh/weir/discovery"
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
	s, err := Build(Input{Model: m, Desired: map[string]policy.Weights{"greeter": weights}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func inst(id, version string, port uint32, h discovery.Health) discovery.Instance {
	return discovery.Instance{ID: id, Address: "10.0.0.1", Port: port, Version: version, Health: h}
}

func claOf(s *Snapshot, cluster string) *endpointv3.ClusterLoadAssignment {
	for _, cla := range s.Endpoints {
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bridge, err := Bridge(tt.prev, tt.next)
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
		nb, err := Bridge(b, next)
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

func TestBridgeSwitchesVersionInThreeSteps(t *testing.T) {
	prev := build(t, policy.Weights{"v1": 10000}, inst("a", "v1", 9101, discovery.Passing))
	next := build(t, policy.Weights{"v2": 10000}, inst("b", "v2", 9201, discovery.Passing))
	warm, err := Bridge(prev, next)
	if err != nil {
		t.Fatal(err)
	}
	if got := RoutedClusters(warm.Resources); !slices.Equal(got, []string{"greeter/v1"}) {
		t.Fatalf("step 1 routes to %v, want greeter/v1 while greeter/v2 warms", got)
	}
	if claOf(warm, "greeter/v1") == nil || claOf(warm, "greeter/v2") == nil {
		t.Fatal("step 1 must serve both clusters")
	}
	switched, err := Bridge(warm, next)
	if err != nil {
		t.Fatal(err)
	}
	if got := RoutedClusters(switched.Resources); !slices.Equal(got, []string{"greeter/v2"}) || claOf(switched, "greeter/v1") == nil {
		t.Fatalf("step 2 routes to %v with greeter/v1 served: %v; want routes on v2 and v1 still served", got, claOf(switched, "greeter/v1") != nil)
	}
	if last, _ := Bridge(switched, next); last != next {
		t.Fatal("step 3 is not next")
	}
}
