package snapshot

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"slices"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weir-mesh/weir/envoy"
	"github.com/weir-mesh/weir/policy"
)

// entry is one resource with the key it is hashed and reported under.
type entry struct {
	typeURL, name string
	msg           resource
}

// entries returns every resource of r sorted by (type URL, name). The sort is
// stable, so sidecar listeners precede API listeners of the same name.
func entries(r Resources) []entry {
	var out []entry
	for c := range r.Clusters.Values() {
		out = append(out, entry{clusterType, c.GetName(), c})
	}
	for e := range r.Endpoints.Values() {
		out = append(out, entry{endpointType, e.GetClusterName(), e})
	}
	for _, rc := range r.RouteConfigurations() {
		out = append(out, entry{routeType, rc.GetName(), rc})
	}
	for l := range r.SidecarListeners.Values() {
		out = append(out, entry{listenerType, l.GetName(), l})
	}
	for l := range r.APIListeners.Values() {
		out = append(out, entry{listenerType, l.GetName(), l})
	}
	slices.SortStableFunc(out, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.typeURL, b.typeURL), cmp.Compare(a.name, b.name))
	})
	return out
}

// validate runs every resource's own validation, and checks what the
// validators leave open but weir's Envoys need: every cluster disables
// panic mode (see panicModeOff). It names each resource that fails.
func validate(r Resources) error {
	var errs []error
	for _, e := range entries(r) {
		if err := e.msg.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", e.typeURL, e.name, err))
		}
	}
	for c := range r.Clusters.Values() {
		if err := panicModeOff(c); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", clusterType, c.GetName(), err))
		}
	}
	return errors.Join(errs...)
}

// panicModeOff returns an error unless c sets healthy_panic_threshold to
// 0 %. Without it Envoy's threshold is 50 %: when fewer than half of a
// cluster's endpoints are HEALTHY, Envoy balances over all of them,
// DRAINING and UNHEALTHY ones included.
func panicModeOff(c *clusterv3.Cluster) error {
	p := c.GetCommonLbConfig().GetHealthyPanicThreshold()
	switch {
	case p == nil:
		return errors.New("common_lb_config.healthy_panic_threshold unset (Envoy's default 50 %), want 0 %")
	case p.GetValue() != 0:
		return fmt.Errorf("common_lb_config.healthy_panic_threshold %v %%, want 0 %%", p.GetValue())
	}
	return nil
}

// plainVersion is the version computed the plain way, with math/big for
// the sums: for each type URL in the order version takes them, the type
// URL (length-prefixed), how many resources have it and the sum modulo
// 2^256 of the sha256 of each one's deterministic encoding; then the
// sha256 of all that.
func plainVersion(t *testing.T, r Resources) string {
	t.Helper()
	count := map[string]uint64{}
	sum := map[string]*big.Int{}
	for _, e := range entries(r) {
		d := plainDigest(t, e.msg)
		if rc, ok := e.msg.(*routev3.RouteConfiguration); ok {
			d = plainRoutesDigest(t, rc)
		}
		if sum[e.typeURL] == nil {
			sum[e.typeURL] = new(big.Int)
		}
		sum[e.typeURL].Add(sum[e.typeURL], new(big.Int).SetBytes(d[:]))
		count[e.typeURL]++
	}
	var all []byte
	for _, typ := range []string{clusterType, endpointType, listenerType, routeType} {
		all = binary.BigEndian.AppendUint64(all, uint64(len(typ)))
		all = append(all, typ...)
		all = appendPlainSum(all, count[typ], sum[typ])
	}
	v := sha256.Sum256(all)
	return hex.EncodeToString(v[:])[:versionLen]
}

// plainDigest is the sha256 of m's deterministic encoding.
func plainDigest(t *testing.T, m proto.Message) [sha256.Size]byte {
	t.Helper()
	b, err := envoy.AppendDeterministic(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// plainRoutesDigest is the digest of rc computed the plain way: the
// sha256 of its encoding without virtual hosts followed by how many it has
// and the sum modulo 2^256 of their digests.
func plainRoutesDigest(t *testing.T, rc *routev3.RouteConfiguration) [sha256.Size]byte {
	t.Helper()
	sum := new(big.Int)
	for _, vh := range rc.GetVirtualHosts() {
		d := plainDigest(t, vh)
		sum.Add(sum, new(big.Int).SetBytes(d[:]))
	}
	without := proto.Clone(rc).(*routev3.RouteConfiguration)
	without.VirtualHosts = nil
	rest, err := envoy.AppendDeterministic(nil, without)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(appendPlainSum(rest, uint64(len(rc.GetVirtualHosts())), sum))
}

// appendPlainSum appends count and sum modulo 2^256 (nil for 0), 32 bytes
// big-endian, to b.
func appendPlainSum(b []byte, count uint64, sum *big.Int) []byte {
	s := new(big.Int)
	if sum != nil {
		s.Mod(sum, new(big.Int).Lsh(big.NewInt(1), 256))
	}
	b = binary.BigEndian.AppendUint64(b, count)
	return append(b, s.FillBytes(make([]byte, 32))...)
}

// TestVersionIsPlainVersion pins that the memoised digests (virtual hosts
// encoded one by one, digests merged rather than sorted) add up to the
// plain computation, for Build, a Builder and Bridge.
func TestVersionIsPlainVersion(t *testing.T) {
	for _, in := range goldenInputs(t) {
		snap := buildInput(t, in)
		if want := plainVersion(t, snap.Resources); snap.Version != want {
			t.Errorf("%s: Version = %s, want %s", in, snap.Version, want)
		}
		if got, err := contentVersion(snap.Resources); err != nil || got != snap.Version {
			t.Errorf("%s: contentVersion = %s, %v; want %s", in, got, err, snap.Version)
		}
	}
	services, desired := world(50, 6)
	var b Builder
	for step := range 3 {
		services = withPort(services, step, uint32(7000+step))
		snap := mustBuildWith(t, &b, services, desired)
		if want := plainVersion(t, snap.Resources); snap.Version != want {
			t.Errorf("step %d: Builder's Version = %s, want %s", step, snap.Version, want)
		}
	}
}

// TestRoutingEqualComparesEveryField fails when policy.Routing or
// policy.MatchRoute gain a field, which routingEqual must then compare.
func TestRoutingEqualComparesEveryField(t *testing.T) {
	if n := reflect.TypeFor[policy.Routing]().NumField(); n != 3 {
		t.Errorf("policy.Routing has %d fields; routingEqual compares 3", n)
	}
	if n := reflect.TypeFor[policy.MatchRoute]().NumField(); n != 2 {
		t.Errorf("policy.MatchRoute has %d fields; routingEqual compares 2", n)
	}
	base := policy.Routing{
		Weights: policy.Weights{"v1": 9000, "v2": 1000},
		Matches: []policy.MatchRoute{{Version: "v2", Conditions: []policy.Match{{Header: "x-canary", Exact: "1"}}}},
		Sticky:  &policy.Sticky{Header: "x-user"},
	}
	if !routingEqual(base, base) {
		t.Error("routingEqual(base, base) = false")
	}
	changes := []func(*policy.Routing){
		func(r *policy.Routing) { r.Weights = policy.Weights{"v1": 10000} },
		func(r *policy.Routing) { r.Matches[0].Version = "v1" },
		func(r *policy.Routing) { r.Matches[0].Conditions[0].Exact = "2" },
		func(r *policy.Routing) { r.Sticky = &policy.Sticky{Cookie: "user"} },
		func(r *policy.Routing) { r.Sticky = nil },
	}
	for i, change := range changes {
		r := base
		r.Matches = []policy.MatchRoute{{Version: "v2", Conditions: []policy.Match{{Header: "x-canary", Exact: "1"}}}}
		change(&r)
		if routingEqual(base, r) {
			t.Errorf("change %d: routingEqual = true", i)
		}
	}
}
