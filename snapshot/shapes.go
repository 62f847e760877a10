package snapshot

import (
	"bytes"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/encoding/protowire"
)

// clusterShapes validates clusters, remembering the shapes of those that
// were valid: a shape is a cluster's encoding without its name. Every
// cluster weir builds has one of two shapes, envoy.Cluster's and
// envoy.RingHashCluster's, and validating each field by field was 8 % of
// a full build's time (BenchmarkBuild's profile). A cluster whose shape is
// one that was valid is valid if its name is: the validator's one rule on
// a cluster's name is that it is not empty
// (TestClusterShapesAgreeWithTheValidator). An encoding stands for the
// message's content exactly, so equal shapes are equal clusters but for
// their names. Its zero value is ready for use.
type clusterShapes struct {
	valid [][]byte // shapes of valid clusters, at most maxClusterShapes
}

// maxClusterShapes bounds what clusterShapes remembers: a build has two
// shapes, one for each kind of cluster; the bound stops clusters unlike
// weir's from growing the list without end.
const maxClusterShapes = 8

// clusterNameField is the field number of a cluster's name.
const clusterNameField = 1

// validate returns c.ValidateAll(), looking only at c's name if its shape,
// taken from enc, c's deterministic encoding, is one that was valid.
func (s *clusterShapes) validate(c *clusterv3.Cluster, enc []byte) error {
	shape := withoutName(enc)
	if c.GetName() != "" && slices.ContainsFunc(s.valid, func(v []byte) bool { return bytes.Equal(v, shape) }) {
		return nil
	}
	if err := c.ValidateAll(); err != nil {
		return err
	}
	if len(s.valid) < maxClusterShapes {
		s.valid = append(s.valid, bytes.Clone(shape))
	}
	return nil
}

// withoutName returns enc, a cluster's deterministic encoding, without
// the name it begins with, if it begins with one. It then stands for every
// cluster like it but for its name. Should the name not come first, it is
// part of what is returned: that cluster's shape then matches only itself.
func withoutName(enc []byte) []byte {
	num, typ, n := protowire.ConsumeTag(enc)
	if n < 0 || num != clusterNameField || typ != protowire.BytesType {
		return enc
	}
	m := protowire.ConsumeFieldValue(num, typ, enc[n:])
	if m < 0 {
		return enc
	}
	return enc[n+m:]
}
