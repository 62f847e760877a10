package xds

import (
	"fmt"
	"iter"
	"sync/atomic"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weir-mesh/weir/envoy"
	"github.com/weir-mesh/weir/snapshot"
)

// virtualHostsField is the number of a RouteConfiguration's virtual_hosts.
var virtualHostsField = (&routev3.RouteConfiguration{}).ProtoReflect().Descriptor().Fields().ByName("virtual_hosts").Number()

// sharedMemo remembers how the last snapshot's RouteConfigName (see
// snapshot.SharedRoutes) was encoded: each of its virtual hosts, and the
// entry made of them.
type sharedMemo struct {
	routes    *snapshot.SharedRoutes
	encodings snapshot.List[[]byte] // of routes.Hosts(), in order
	entry     entry
}

// sharedEntry returns the entry of s (nil for a nil s) and the memo that
// follows last with it. A virtual host that last encoded is not encoded
// again: the entry is its route configuration's other fields, encoded,
// followed by every virtual host's encoding as a virtual_hosts field. That
// is the route configuration encoded whole while its other fields are
// numbered below virtual_hosts, as a Builder's (its name) are; a field
// numbered above would come first rather than last, which parsers take
// in any order. Its content hash is s's, which its builder keeps up to
// date with each virtual host's digest, rather than a hash of every byte;
// s's with the same virtual hosts in another order has the same hash, and
// keeps serving the last entry's bytes, which Envoy matches alike.
// marshalled counts it as one resource marshalled.
func sharedEntry(s *snapshot.SharedRoutes, last sharedMemo, marshalled *atomic.Uint64) (*entry, sharedMemo, error) {
	if s == nil {
		return nil, sharedMemo{}, nil
	}
	if s == last.routes {
		return &last.entry, last, nil
	}
	encodings, err := hostEncodings(s, last)
	if err != nil {
		return nil, last, err
	}
	rest := s.RestEncoding()
	size := len(rest)
	for b := range encodings.Values() {
		size += protowire.SizeTag(virtualHostsField) + protowire.SizeBytes(len(b))
	}
	value := append(make([]byte, 0, size), rest...)
	for b := range encodings.Values() {
		value = protowire.AppendTag(value, virtualHostsField, protowire.BytesType)
		value = protowire.AppendBytes(value, b)
	}
	marshalled.Add(1)
	e := newEntry(s.Name(), s.ContentHash(), &anypb.Any{TypeUrl: resourcev3.RouteType, Value: value})
	return &e, sharedMemo{routes: s, encodings: encodings, entry: e}, nil
}

// hostEncodings returns the encoding of each of s's virtual hosts, taking
// last's for the virtual hosts it encoded: by place when the virtual
// hosts that differ from last's are of the same services (a weight or
// port change), else by virtual host (services came or went).
func hostEncodings(s *snapshot.SharedRoutes, last sharedMemo) (snapshot.List[[]byte], error) {
	hosts, lastHosts := s.Hosts(), last.routes.Hosts()
	if changes, ok := snapshot.Changed(hosts, lastHosts); ok && last.routes != nil && sameNamesAt(hosts, lastHosts, changes) {
		encodings := last.encodings
		for i := range changes {
			b, err := encodeHost(s, hosts.At(i))
			if err != nil {
				return snapshot.List[[]byte]{}, err
			}
			encodings = encodings.Set(i, b)
		}
		return encodings, nil
	}
	known := make(map[*routev3.VirtualHost][]byte, lastHosts.Len())
	for i, vh := range lastHosts.All() {
		known[vh] = last.encodings.At(i)
	}
	all := make([][]byte, 0, hosts.Len())
	for vh := range hosts.Values() {
		b, ok := known[vh]
		if !ok {
			var err error
			if b, err = encodeHost(s, vh); err != nil {
				return snapshot.List[[]byte]{}, err
			}
		}
		all = append(all, b)
	}
	return snapshot.ListOf(all...), nil
}

// encodeHost returns vh, a virtual host of s, encoded.
func encodeHost(s *snapshot.SharedRoutes, vh *routev3.VirtualHost) ([]byte, error) {
	b, err := envoy.AppendDeterministic(nil, vh)
	if err != nil {
		return nil, fmt.Errorf("marshal %s %q: virtual host %q: %w", resourcev3.RouteType, s.Name(), vh.GetName(), err)
	}
	return b, nil
}

// sameNamesAt reports whether the virtual hosts of hosts at the indexes
// changes yields have the names of lastHosts' there.
func sameNamesAt(hosts, lastHosts snapshot.List[*routev3.VirtualHost], changes iter.Seq[int]) bool {
	for i := range changes {
		if hosts.At(i).GetName() != lastHosts.At(i).GetName() {
			return false
		}
	}
	return true
}

// sameEntry reports whether a and b are both nil, or entries of one name
// and content.
func sameEntry(a, b *entry) bool {
	return a == nil && b == nil || a != nil && b != nil && a.name == b.name && a.hash == b.hash
}

// sameName reports whether a and b are both nil, or entries of one name.
func sameName(a, b *entry) bool {
	return a == nil && b == nil || a != nil && b != nil && a.name == b.name
}

// headLen returns how many entries head is: 0 if nil, else 1.
func headLen(head *entry) int {
	if head == nil {
		return 0
	}
	return 1
}
