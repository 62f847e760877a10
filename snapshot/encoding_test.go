package snapshot

import (
	"bytes"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weir-mesh/weir/envoy"
)

// TestEncodingIsDeterministic pins what envoy.AppendDeterministic's
// generated encoders need to be deterministic: no map with more than one
// entry, in any resource of any golden input or in a message one of their
// Anys holds. A second entry would make hashes, and so versions, change
// from one build of the same input to the next.
func TestEncodingIsDeterministic(t *testing.T) {
	services, desired := world(20, 4)
	snaps := []*Snapshot{mustBuild(t, services, desired)}
	for _, in := range goldenInputs(t) {
		snaps = append(snaps, buildInput(t, in))
	}
	for _, snap := range snaps {
		for _, e := range entries(snap.Resources) {
			for _, field := range crowdedMaps(t, e.msg.ProtoReflect(), e.name) {
				t.Errorf("%s: map %s has more than one entry", e.typeURL, field)
			}
			first, err := envoy.AppendDeterministic(nil, e.msg)
			if err != nil {
				t.Fatal(err)
			}
			again, err := envoy.AppendDeterministic(nil, e.msg)
			if err != nil || !bytes.Equal(first, again) {
				t.Errorf("%s %q encodes differently the second time (%v)", e.typeURL, e.name, err)
			}
		}
	}
}

// crowdedMaps returns the paths of the map fields with more than one entry
// in m, in the messages it holds and in those its Anys hold.
func crowdedMaps(t *testing.T, m protoreflect.Message, path string) []string {
	t.Helper()
	var out []string
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		at := path + "." + string(fd.Name())
		switch {
		case fd.IsMap():
			if v.Map().Len() > 1 {
				out = append(out, at)
			}
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
					out = append(out, crowdedMaps(t, mv.Message(), at+"["+k.String()+"]")...)
					return true
				})
			}
		case fd.IsList() && fd.Message() != nil:
			for i := range v.List().Len() {
				out = append(out, crowdedMaps(t, v.List().Get(i).Message(), fmt.Sprintf("%s[%d]", at, i))...)
			}
		case fd.Message() != nil:
			out = append(out, crowdedMaps(t, v.Message(), at)...)
		}
		return true
	})
	if a, ok := m.Interface().(*anypb.Any); ok {
		held, err := a.UnmarshalNew()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, crowdedMaps(t, held.ProtoReflect(), path+"("+a.GetTypeUrl()+")")...)
	}
	return out
}

// BenchmarkEncode encodes every resource of a 5,000-service snapshot once,
// with envoy.AppendDeterministic (the generated encoders when built with
// -tags vtprotobuf) and with protobuf's reflective deterministic encoding.
func BenchmarkEncode(b *testing.B) {
	services, desired := world(5000, 10)
	snap := mustBuild(b, services, desired)
	all := entries(snap.Resources)
	reflective := proto.MarshalOptions{Deterministic: true}
	encoders := []struct {
		name   string
		encode func([]byte, proto.Message) ([]byte, error)
	}{
		{"AppendDeterministic", envoy.AppendDeterministic},
		{"reflective", reflective.MarshalAppend},
	}
	for _, enc := range encoders {
		b.Run(enc.name, func(b *testing.B) {
			var buf []byte
			for b.Loop() {
				for _, e := range all {
					var err error
					if buf, err = enc.encode(buf[:0], e.msg); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
