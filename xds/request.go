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
	count, total, restLen := 0, 0, 0
	err := walkRequest(b, func(field, name []byte, isName bool) error {
		if !isName {
			restLen += len(field)
			return nil
		}
		if !utf8.Valid(name) {
			return errInvalidUTF8
		}
		count, total = count+1, total+len(name)
		return nil
	})
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
	_ = walkRequest(b, func(field, name []byte, isName bool) error { // b parsed above
		if isName {
			from := all.Len()
			all.Write(name)
			names = append(names, all.String()[from:])
		} else {
			rest = append(rest, field...)
		}
		return nil
	})
	if err := proto.Unmarshal(rest, req); err != nil {
		return err
	}
	req.ResourceNames = names
	return nil
}

// walkRequest calls f with each field of b in order: its whole encoding,
// and, when it is a resource name (field 3 of the bytes wire type; one of
// another type is left to proto.Unmarshal, as it would be), its value. It
// returns the error of the first field that does not parse, or f's.
func walkRequest(b []byte, f func(field, name []byte, isName bool) error) error {
	for i := 0; i < len(b); {
		num, typ, n := protowire.ConsumeTag(b[i:])
		if n < 0 {
			return protowire.ParseError(n)
		}
		m := protowire.ConsumeFieldValue(num, typ, b[i+n:])
		if m < 0 {
			return protowire.ParseError(m)
		}
		isName := num == resourceNamesField && typ == protowire.BytesType
		var name []byte
		if isName {
			name, _ = protowire.ConsumeBytes(b[i+n:])
		}
		if err := f(b[i:i+n+m], name, isName); err != nil {
			return err
		}
		i += n + m
	}
	return nil
}
