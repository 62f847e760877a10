package snapshot

import (
	"slices"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
)

// TestSharedRoutesFollowTheirHosts: a Builder's RouteConfigName, and one
// with a virtual host changed as a bridge changes it, each have the
// digest of their route configuration made whole and counted anew, and
// Message makes it whole.
func TestSharedRoutesFollowTheirHosts(t *testing.T) {
	services, desired := world(6, 2)
	var b Builder
	built := mustBuildWith(t, &b, services, desired).Outbound
	fresh := mustShared(t, built.Message())
	if built.digest != fresh.digest || built.ContentHash() != fresh.ContentHash() {
		t.Errorf("built digest %x, counted anew %x", built.digest, fresh.digest)
	}
	if got := built.Message(); len(got.GetVirtualHosts()) != 6 || !slices.Equal(got.GetVirtualHosts(), built.Hosts().Slice()) {
		t.Errorf("Message holds %d virtual hosts, want the 6 of Hosts", len(got.GetVirtualHosts()))
	}

	changed := proto.Clone(built.Hosts().At(2)).(*routev3.VirtualHost)
	changed.Domains = append(changed.Domains, "extra.example")
	var buf []byte
	withChanged, err := built.withHosts(&buf, built.Hosts().Set(2, changed), slices.Values([]int{2}))
	if err != nil {
		t.Fatal(err)
	}
	fresh = mustShared(t, withChanged.Message())
	if withChanged.digest != fresh.digest {
		t.Errorf("after a change: digest %x, counted anew %x", withChanged.digest, fresh.digest)
	}
	if withChanged.digest == built.digest || built.Hosts().At(2) == changed {
		t.Error("withHosts changed nothing, or changed the route configuration it was given")
	}
	if !proto.Equal(withChanged.Message().GetVirtualHosts()[2], changed) {
		t.Error("Message lacks the changed virtual host")
	}
}
