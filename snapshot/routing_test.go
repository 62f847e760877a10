package snapshot

import (
	"fmt"
	"path/filepath"
	"regexp"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/weir-mesh/weir/envoy"
	"github.com/weir-mesh/weir/policy"
)

// routeSummary describes every route of snap as one line: its name, its
// header conditions, and where it sends requests. The services' own route
// configurations repeat the shared one's virtual hosts (see
// checkServiceRoutes), so only the shared one is described.
func routeSummary(snap *Snapshot) []string {
	var out []string
	for _, rc := range sharedRouteConfigs(snap.Resources) {
		for _, vh := range rc.GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				line := vh.GetName() + " " + r.GetName()
				for _, h := range r.GetMatch().GetHeaders() {
					sm := h.GetStringMatch()
					line += fmt.Sprintf(" [%s exact=%q prefix=%q regex=%q]", h.GetName(), sm.GetExact(), sm.GetPrefix(), sm.GetSafeRegex().GetRegex())
				}
				action := r.GetRoute()
				if c := action.GetCluster(); c != "" {
					line += " -> " + c
				}
				for _, cw := range action.GetWeightedClusters().GetClusters() {
					line += fmt.Sprintf(" -> %s=%d", cw.GetName(), cw.GetWeight().GetValue())
				}
				for _, hp := range action.GetHashPolicy() {
					line += fmt.Sprintf(" hash(header=%q cookie=%q)", hp.GetHeader().GetHeaderName(), hp.GetCookie().GetName())
				}
				out = append(out, line)
			}
		}
	}
	return out
}

// endpointWeights returns address → load_balancing_weight of cluster's
// assignment in snap.
func endpointWeights(snap *Snapshot, cluster string) map[string]uint32 {
	out := make(map[string]uint32)
	for _, l := range claOf(snap, cluster).GetEndpoints() {
		for _, ep := range l.GetLbEndpoints() {
			out[ep.GetEndpoint().GetAddress().GetSocketAddress().GetAddress()] = ep.GetLoadBalancingWeight().GetValue()
		}
	}
	return out
}

// TestRoutingGoldenSemantics states what the golden files of match routes
// and stickiness must show.
func TestRoutingGoldenSemantics(t *testing.T) {
	tests := []struct {
		name     string
		routes   []string
		clusters []string
		report   Report
	}{{
		name: "canary-match",
		routes: []string{
			`greeter match-0 [x-canary exact="always" prefix="" regex=""] -> greeter/v2`,
			"greeter  -> greeter/v1=9500 -> greeter/v2=500",
		},
		clusters: []string{"greeter/v1", "greeter/v2"},
	}, {
		name: "sticky-header",
		routes: []string{
			`greeter  -> greeter/* hash(header="x-user-id" cookie="")`,
			"greeter weir_warming -> greeter/v1=1 -> greeter/v2=1",
		},
		clusters: []string{"greeter/*", "greeter/v1", "greeter/v2"},
	}, {
		name: "cookie-match",
		routes: []string{
			`web match-0 [cookie exact="" prefix="" regex="(^|.*;\\s*)beta=yes(;.*|$)"] [user-agent exact="" prefix="Mozilla/" regex=""] -> web/v2`,
			`web match-1 [cookie exact="" prefix="" regex="(^|.*;\\s*)ab\\.group=(?:b[0-9]+)(;.*|$)"] -> web/v2`,
			"web  -> web/v1=10000",
		},
		clusters: []string{"web/v1", "web/v2"},
	}, {
		name: "match-to-unserved-version",
		routes: []string{
			`greeter match-1 [x-stable exact="" prefix="" regex="yes|true"] -> greeter/v1`,
			"greeter  -> greeter/v1=10000",
			"greeter weir_warming -> greeter/v2=1",
		},
		clusters: []string{"greeter/v1", "greeter/v2"},
		report: Report{
			Unserved:        []ServiceVersion{{"greeter", "v2"}},
			UnservedMatches: []ServiceVersion{{"greeter", "v2"}, {"greeter", "v9"}},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := buildInput(t, filepath.Join("testdata", tt.name+".yaml"))
			if diff := cmp.Diff(tt.routes, routeSummary(snap)); diff != "" {
				t.Errorf("routes (-want +got):\n%s", diff)
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

func TestStickyCluster(t *testing.T) {
	snap := buildInput(t, filepath.Join("testdata", "sticky-header.yaml"))
	var ring *clusterv3.Cluster
	for c := range snap.Clusters.Values() {
		if c.GetName() == "greeter/*" {
			ring = c
		} else if c.GetLbPolicy() != clusterv3.Cluster_ROUND_ROBIN {
			t.Errorf("version cluster %s has lb_policy %v, want ROUND_ROBIN", c.GetName(), c.GetLbPolicy())
		}
	}
	if ring.GetLbPolicy() != clusterv3.Cluster_RING_HASH || ring.GetRingHashLbConfig().GetMinimumRingSize().GetValue() != 1024 {
		t.Errorf("greeter/* is %v %v, want RING_HASH with a minimum ring of 1024", ring.GetLbPolicy(), ring.GetRingHashLbConfig())
	}
	// v1: 7500 over 3 serving instances, v2: 2500 over 1; v1's draining
	// 10.0.0.4 is left out.
	want := map[string]uint32{"10.0.0.1": 2500000, "10.0.0.2": 2500000, "10.0.0.3": 2500000, "10.0.0.5": 2500000}
	if diff := cmp.Diff(want, endpointWeights(snap, "greeter/*")); diff != "" {
		t.Errorf("greeter/* endpoint weights (-want +got):\n%s", diff)
	}
	if got := RoutedClusters(snap.Resources); !cmp.Equal(got, []string{"greeter/*"}) {
		t.Errorf("RoutedClusters = %v, want [greeter/*]", got)
	}
}

func TestStickyEndpoints(t *testing.T) {
	ep := func(addr string) envoy.Endpoint { return envoy.Endpoint{Address: addr, Port: 80, Health: healthy} }
	byVersion := map[string][]envoy.Endpoint{
		"v1": {ep("10.0.0.1"), ep("10.0.0.2"), ep("10.0.0.3")},
		"v2": {ep("10.0.0.3"), ep("10.0.0.4")}, // 10.0.0.3 also in v1: counted once
		"v3": {ep("10.0.0.9")},
	}
	got := stickyEndpoints(byVersion, policy.Weights{"v1": 1, "v2": 9999, "v3": 0})
	var summary []string
	for _, e := range got {
		summary = append(summary, fmt.Sprintf("%s=%d", e.Address, e.Weight))
	}
	want := []string{"10.0.0.1=333", "10.0.0.2=333", "10.0.0.3=333", "10.0.0.4=4999500"}
	if diff := cmp.Diff(want, summary); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	got = stickyEndpoints(map[string][]envoy.Endpoint{"v1": make([]envoy.Endpoint, 2000)}, policy.Weights{"v1": 1})
	if len(got) != 0 {
		t.Errorf("endpoints without health are in the ring: %v", got)
	}
	many := make([]envoy.Endpoint, 2000)
	for i := range many {
		many[i] = envoy.Endpoint{Address: fmt.Sprintf("10.1.%d.%d", i/256, i%256), Port: 80, Health: healthy}
	}
	for _, e := range stickyEndpoints(map[string][]envoy.Endpoint{"v1": many}, policy.Weights{"v1": 1}) {
		if e.Weight != 1 {
			t.Fatalf("endpoint weight %d, want at least 1", e.Weight)
		}
	}
}

func TestCookieMatchRegexes(t *testing.T) {
	snap := buildInput(t, filepath.Join("testdata", "cookie-match.yaml"))
	cookieRegex := map[string]string{}
	for _, rc := range snap.RouteConfigurations() {
		for _, r := range rc.GetVirtualHosts()[0].GetRoutes() {
			for _, h := range r.GetMatch().GetHeaders() {
				if h.GetName() == "cookie" {
					cookieRegex[r.GetName()] = h.GetStringMatch().GetSafeRegex().GetRegex()
				}
			}
		}
	}
	tests := []struct {
		route, header string
		want          bool
	}{
		{"match-0", "beta=yes", true},
		{"match-0", "session=1; beta=yes", true},
		{"match-0", "beta=yesterday", false},
		{"match-0", "xbeta=yes", false},
		{"match-1", "a=1; ab.group=b12; c=3", true},
		{"match-1", "abxgroup=b12", false},
		{"match-1", "ab.group=b12x", false},
	}
	for _, tt := range tests {
		re := regexp.MustCompile("^(?:" + cookieRegex[tt.route] + ")$") // safe_regex matches the whole value
		if got := re.MatchString(tt.header); got != tt.want {
			t.Errorf("%s on cookie %q = %v, want %v", tt.route, tt.header, got, tt.want)
		}
	}
}

const healthy = corev3.HealthStatus_HEALTHY
