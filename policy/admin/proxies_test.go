package admin

import (
	"testing"

	adminv1 "github.com/weir-mesh/weir/policy/admin/v1"
)

const routeType = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
const clusterType = "type.googleapis.com/envoy.config.cluster.v3.Cluster"

// fakeFleet serves fixed proxies; every type should hold version "v-now".
type fakeFleet []Proxy

func (f fakeFleet) Proxies() []Proxy { return f }
func (f fakeFleet) VersionFor(string, string, []string, bool) string {
	return "v-now"
}

// AppliedFraction is the fraction of the proxies with types that ACKed
// "v-now" for every type they subscribe to.
func (f fakeFleet) AppliedFraction() float64 {
	synced, total := 0, 0
	for _, p := range f {
		if len(p.Types) == 0 {
			continue
		}
		total++
		ok := true
		for _, st := range p.Types {
			ok = ok && (!st.Wildcard && len(st.Names) == 0 || st.Acked == "v-now")
		}
		if ok {
			synced++
		}
	}
	if total == 0 {
		return 1
	}
	return float64(synced) / float64(total)
}

func TestListProxies(t *testing.T) {
	names := []string{"weir_outbound"}
	fleet := fakeFleet{
		{NodeID: "synced", Kind: KindEnvoy, Cluster: "edge", Address: "10.0.0.1:5000", ConnectedAt: epoch, Types: map[string]TypeState{
			clusterType: {Wildcard: true, Sent: "v-now", Acked: "v-now"},
			// It NACKed an older version and ACKed since: the error stays, the verdict does not.
			routeType: {Names: names, Sent: "v-now", Acked: "v-now", Nack: &Nack{Version: "v-old", Error: "old trouble"}},
		}},
		{NodeID: "nacking", Kind: KindGRPC, Types: map[string]TypeState{
			clusterType: {Names: []string{"greeter/v1"}, Sent: "v-now", Acked: "v-now"},
			routeType:   {Names: names, Sent: "v-now", Acked: "v-old", Nack: &Nack{Version: "v-now", Error: "route rejected"}},
		}},
		{NodeID: "never-acked", Kind: KindGRPC, Types: map[string]TypeState{routeType: {Names: names, Sent: "v-now"}}},
		{NodeID: "just-connected", Kind: KindGRPC},
	}
	env := newEnv(t, Config{Fleet: fleet})
	resp, err := env.client.ListProxies(ctx(t), &adminv1.ListProxiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	verdicts := map[string]string{}
	for _, p := range resp.Proxies {
		verdicts[p.NodeId] = p.Verdict
	}
	want := map[string]string{"synced": Synced, "nacking": Nacked, "never-acked": Stale, "just-connected": Stale}
	for node, v := range want {
		if verdicts[node] != v {
			t.Errorf("%s: verdict %s, want %s", node, verdicts[node], v)
		}
	}
	synced, nacking := resp.Proxies[0], resp.Proxies[1]
	if synced.Kind != "envoy" || synced.Cluster != "edge" || synced.Address != "10.0.0.1:5000" || !synced.ConnectedSince.AsTime().Equal(epoch) {
		t.Errorf("synced proxy: %v", synced)
	}
	if len(synced.Types) != 2 || synced.Types[1].Type != "RouteConfiguration" || synced.Types[1].LastNackError != "old trouble" {
		t.Errorf("synced proxy's types: %v", synced.Types)
	}
	rt := nacking.Types[1]
	if rt.Verdict != Nacked || rt.LastNackError != "route rejected" || rt.LastNackVersion != "v-now" || rt.VersionAcked != "v-old" ||
		nacking.Types[0].Verdict != Synced {
		t.Errorf("nacking proxy's types: %v", nacking.Types)
	}
	r, err := env.client.GetRollout(ctx(t), &adminv1.GetRolloutRequest{Service: "greeter"})
	if err != nil || r.AppliedFraction != 1.0/3 {
		t.Errorf("applied fraction %v (%v), want 1/3 (a proxy that subscribed to nothing is not counted)", r.GetAppliedFraction(), err)
	}
}
