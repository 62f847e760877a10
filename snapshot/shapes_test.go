package snapshot

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weir-mesh/weir/envoy"
)

// TestClusterShapesAgreeWithTheValidator: once a cluster of each kind has
// been validated, clusterShapes judges every other cluster like it but
// for its name as its validator does. It fails if go-control-plane's
// validator gains a rule on a cluster's name that clusterShapes does not
// know.
func TestClusterShapesAgreeWithTheValidator(t *testing.T) {
	names := []string{"", "a", "svc/v1", "svc/*", "\xff\xfe", "with space", "nul\x00byte", "line\nbreak", strings.Repeat("long", 4096)}
	for _, kind := range []struct {
		name string
		make func(string) *clusterv3.Cluster
	}{{"round robin", envoy.Cluster}, {"ring hash", envoy.RingHashCluster}} {
		var shapes clusterShapes
		if err := validateCluster(&shapes, kind.make("first/v1")); err != nil {
			t.Fatalf("%s: the first cluster: %v", kind.name, err)
		}
		for _, name := range names {
			c := kind.make(name)
			enc, err := envoy.AppendDeterministic(nil, c)
			if err != nil {
				// A Builder never validates what it cannot encode (see
				// hashResource): protobuf's reflective encoding, without
				// -tags vtprotobuf, refuses a name that is not UTF-8.
				t.Logf("%s cluster named %.20q: not encoded: %v", kind.name, name, err)
				continue
			}
			want := c.ValidateAll()
			got := shapes.validate(c, enc)
			if (got == nil) != (want == nil) {
				t.Errorf("%s cluster named %.20q: clusterShapes says %v, its validator %v", kind.name, name, got, want)
			}
		}
	}
}

// TestClusterShapesValidateOtherClusters: a cluster that differs from the
// valid ones in more than its name is validated field by field, and an
// invalid one is not remembered as valid.
func TestClusterShapesValidateOtherClusters(t *testing.T) {
	var shapes clusterShapes
	if err := validateCluster(&shapes, envoy.Cluster("svc/v1")); err != nil {
		t.Fatal(err)
	}
	bad := envoy.Cluster("svc/v2")
	bad.ConnectTimeout = durationpb.New(-1) // the validator wants it positive
	for range 2 {
		if err := validateCluster(&shapes, bad); err == nil {
			t.Fatal("a cluster with a negative connect timeout passed, like a valid one but for more than its name")
		}
	}
	if len(shapes.valid) != 1 {
		t.Errorf("%d shapes remembered, want the valid cluster's alone", len(shapes.valid))
	}
}

// validateCluster validates c through shapes, as a Builder does.
func validateCluster(shapes *clusterShapes, c *clusterv3.Cluster) error {
	enc, err := envoy.AppendDeterministic(nil, c)
	if err != nil {
		return err
	}
	return shapes.validate(c, enc)
}
