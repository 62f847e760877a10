package envoy

import (
	"fmt"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/proto"
)

// strictMarshaler is what go-control-plane generates for every Envoy
// message with vtprotobuf, compiled in with -tags vtprotobuf (which the
// Makefile sets): an encoder without reflection that writes fields in
// field-number order.
type strictMarshaler interface {
	SizeVT() int
	MarshalToSizedBufferVTStrict([]byte) (int, error)
}

// deterministic is protobuf's own deterministic encoding, the fallback.
var deterministic = proto.MarshalOptions{Deterministic: true}

// AppendDeterministic appends an encoding of m to b that is the same every
// time for the same m, as content hashes need.
//
// Built with -tags vtprotobuf it is go-control-plane's generated strict
// encoding, which takes about a quarter of the time of protobuf's
// reflective one (snapshot's BenchmarkEncode). It writes fields in
// field-number order and map entries in iteration order, so it is
// deterministic for messages whose maps have at most one entry, as every
// map weir builds has (TestEncodingIsDeterministic). Without the tag it is
// protobuf's deterministic encoding, which writes oneof fields last: the
// same message encodes to other bytes, so a resource's hash (and a
// snapshot's version) depends on how weir was built, and is stable for one
// build.
func AppendDeterministic(b []byte, m proto.Message) ([]byte, error) {
	vt, ok := m.(strictMarshaler)
	if !ok {
		return deterministic.MarshalAppend(b, m)
	}
	n := vt.SizeVT()
	start := len(b)
	b = slices.Grow(b, n)[:start+n]
	written, err := vt.MarshalToSizedBufferVTStrict(b[start:])
	if err == nil && written != n {
		err = fmt.Errorf("encoded %d bytes of %s, sized %d: was it changed meanwhile?", written, m.ProtoReflect().Descriptor().FullName(), n)
	}
	if err != nil {
		return b[:start], err
	}
	return b, nil
}

// GeneratedEncoders reports whether weir was built with -tags vtprotobuf,
// so that AppendDeterministic uses go-control-plane's generated encoders.
func GeneratedEncoders() bool {
	_, ok := any(&clusterv3.Cluster{}).(strictMarshaler)
	return ok
}
