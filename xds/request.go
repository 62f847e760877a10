package xds

import (
	"errors"
	"strings"
	"unicode/utf8"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Unmarshal decodes a message as gRPC's proto codec does, but a
// DiscoveryRequest through decodeRequest.
func (c responseCodec) Unmarshal(data mem.BufferSlice, v any) error {
	req, ok := v.(*discoveryv3.DiscoveryRequest)
	if !ok {
		return c.CodecV2.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return decodeRequest(buf.ReadOnlyData(), req)
}

// resourceNamesField is DiscoveryRequest.resource_names' field number.
const resourceNamesField = 3

var errInvalidUTF8 = errors.New("xds: DiscoveryRequest.resource_names contains invalid UTF-8")

// decodeRequest decodes b into req as proto.Unmarshal does, but its
// resource names share one string rather than take an allocation each. A
// state-of-the-world client repeats every name it subscribes to with each
// request: an Envoy's endpoint subscription names two clusters per
// service, and every stream's requests name them again.
func decodeRequest(b []byte, req *discoveryv3.DiscoveryRequest) error {
	count, total, restLen, err := measureRequest(b)
	if err != nil {
		return err
	}
	rest := make([]byte, 0, restLen) // every other field, in order
	var names []string
	var all strings.Builder
	if count > 0 {
		names = make([]string, 0, count)
		// Grown once to hold every name, all never moves its bytes: the
		// substrings taken as it fills stay valid, and share them.
		all.Grow(total)
	}
	for i := 0; i < len(b); {
		num, typ, n := protowire.ConsumeTag(b[i:])
		m := protowire.ConsumeFieldValue(num, typ, b[i+n:])
		if isName(num, typ) {
			v, _ := protowire.ConsumeBytes(b[i+n:])
			from := all.Len()
			all.Write(v)
			names = append(names, all.String()[from:])
		} else {
			rest = append(rest, b[i:i+n+m]...)
		}
		i += n + m
	}
	if err := proto.Unmarshal(rest, req); err != nil {
		return err
	}
	req.ResourceNames = names
	return nil
}

// measureRequest checks that b's fields parse and that its resource names
// are UTF-8, and returns how many names it holds, their length in all, and
// the length of its other fields.
func measureRequest(b []byte) (count, total, restLen int, err error) {
	for i := 0; i < len(b); {
		num, typ, n := protowire.ConsumeTag(b[i:])
		if n < 0 {
			return 0, 0, 0, protowire.ParseError(n)
		}
		m := protowire.ConsumeFieldValue(num, typ, b[i+n:])
		if m < 0 {
			return 0, 0, 0, protowire.ParseError(m)
		}
		if isName(num, typ) {
			v, _ := protowire.ConsumeBytes(b[i+n:])
			if !utf8.Valid(v) {
				return 0, 0, 0, errInvalidUTF8
			}
			count, total = count+1, total+len(v)
		} else {
			restLen += n + m
		}
		i += n + m
	}
	return count, total, restLen, nil
}

// isName reports whether a field is a resource name; one of another wire
// type is left to proto.Unmarshal, as it would be.
func isName(num protowire.Number, typ protowire.Type) bool {
	return num == resourceNamesField && typ == protowire.BytesType
}
