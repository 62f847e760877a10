package snapshot

import (
	"slices"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/policy"
)

// sharedRouteConfigs returns RouteConfigName of r, whole (as a slice, to
// range over).
func sharedRouteConfigs(r Resources) []*routev3.RouteConfiguration {
	if r.Outbound == nil {
		return nil
	}
	return []*routev3.RouteConfiguration{r.Outbound.Message()}
}

// checkServiceRoutes checks that every API listener uses its service's own
// route configuration, and that r serves RouteConfigName and one route
// configuration per service, sorted by name, each holding just its
// service's virtual host exactly as RouteConfigName holds it.
func checkServiceRoutes(t *testing.T, r Resources) {
	t.Helper()
	want := []string{RouteConfigName}
	for l := range r.APIListeners.Values() {
		hcms, err := connectionManagers(l)
		if err != nil || len(hcms) != 1 || hcms[0].GetRds().GetRouteConfigName() != ServiceRouteConfigName(l.GetName()) {
			t.Errorf("API listener %q does not use route configuration %q (%v)", l.GetName(), ServiceRouteConfigName(l.GetName()), err)
		}
		want = append(want, ServiceRouteConfigName(l.GetName()))
	}
	var got []string
	for _, rc := range r.RouteConfigurations() {
		got = append(got, rc.GetName())
	}
	if !slices.Equal(got, want) {
		t.Errorf("route configurations %q, want %q", got, want)
	}
	shared := map[string]*routev3.VirtualHost{}
	for _, rc := range sharedRouteConfigs(r) {
		for _, vh := range rc.GetVirtualHosts() {
			shared[vh.GetName()] = vh
		}
	}
	for rc := range r.Routes.Values() {
		vhs := rc.GetVirtualHosts()
		if len(vhs) != 1 || ServiceRouteConfigName(vhs[0].GetName()) != rc.GetName() || !proto.Equal(vhs[0], shared[vhs[0].GetName()]) {
			t.Errorf("route configuration %q does not hold just its service's virtual host as %q has it", rc.GetName(), RouteConfigName)
		}
	}
}

// routesByName returns the route configurations of snap by name, and the
// digest of each.
func routesByName(t *testing.T, snap *Snapshot) (map[string]*routev3.RouteConfiguration, map[string]digest) {
	t.Helper()
	msgs := map[string]*routev3.RouteConfiguration{}
	sums := map[string]digest{}
	for _, rc := range snap.RouteConfigurations() {
		sum, err := digestRoutes(rc)
		if err != nil {
			t.Fatal(err)
		}
		msgs[rc.GetName()], sums[rc.GetName()] = rc, sum
	}
	return msgs, sums
}

// TestWeightChangeTouchesOnlyItsServiceRoutes: a proxyless gRPC client
// subscribes to its service's route configuration only, so a weight change
// of one service must change that one and the shared one, and leave every
// other service's the very same message with the same content, nothing for
// an xDS cache to encode or send.
func TestWeightChangeTouchesOnlyItsServiceRoutes(t *testing.T) {
	services, desired := world(6, 4)
	var b Builder
	before := mustBuildWith(t, &b, services, desired)
	desired["svc-00002"] = policy.Weights{"v1": 5000, "v2": 5000}
	after := mustBuildWith(t, &b, services, desired)
	fresh := mustBuild(t, services, desired)
	if after.Version != fresh.Version {
		t.Fatalf("Builder gives version %s, Build gives %s", after.Version, fresh.Version)
	}
	checkServiceRoutes(t, after.Resources)

	msgs0, sums0 := routesByName(t, before)
	msgs1, sums1 := routesByName(t, after)
	changed := []string{RouteConfigName, ServiceRouteConfigName("svc-00002")}
	for name, rc := range msgs1 {
		switch {
		case slices.Contains(changed, name) && sums1[name] == sums0[name]:
			t.Errorf("route configuration %q did not change", name)
		case !slices.Contains(changed, name) && (rc != msgs0[name] || sums1[name] != sums0[name]):
			t.Errorf("route configuration %q changed with another service's weights", name)
		}
	}
	for i, l := range after.APIListeners.All() {
		if l != before.APIListeners.At(i) {
			t.Errorf("API listener %q changed with a weight", l.GetName())
		}
	}
}

// TestBridgeKeepsUntouchedServiceRoutes: a bridge withholds weight only in
// the route configurations of the service whose new cluster is not warm
// yet; another service's stays the message next has.
func TestBridgeKeepsUntouchedServiceRoutes(t *testing.T) {
	greeterV1 := inst("g1", "v1", 9101, discovery.Passing)
	greeterV2 := inst("g2", "v2", 9201, discovery.Passing)
	other := discovery.Instance{ID: "o1", Address: "10.0.0.2", Port: 9301, Version: "v1", Health: discovery.Passing}
	build := func(routing policy.Routing, greeter ...discovery.Instance) *Snapshot {
		m, err := discovery.NewModel([]discovery.Service{{Name: "greeter", Instances: greeter}, {Name: "other", Instances: []discovery.Instance{other}}})
		if err != nil {
			t.Fatal(err)
		}
		s, err := Build(Input{Model: m, Routing: policy.TableOf(map[string]policy.Routing{"greeter": routing})})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	prev := build(policy.Routing{Weights: policy.Weights{"v1": 10000}}, greeterV1)
	next := build(policy.Routing{Weights: policy.Weights{"v1": 5000, "v2": 5000}}, greeterV1, greeterV2)
	bridge, err := Bridge(prev, next, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bridge == next {
		t.Fatal("no bridge, want one")
	}
	checkServiceRoutes(t, bridge.Resources)
	nextRoutes, _ := routesByName(t, next)
	bridged, _ := routesByName(t, bridge)
	if bridged[ServiceRouteConfigName("other")] != nextRoutes[ServiceRouteConfigName("other")] {
		t.Error(`the bridge copied service "other"'s route configuration, which it leaves as it is`)
	}
	for _, name := range []string{RouteConfigName, ServiceRouteConfigName("greeter")} {
		if proto.Equal(bridged[name], nextRoutes[name]) {
			t.Errorf("the bridge's %q routes to greeter/v2 before it is warm", name)
		}
	}
}
