package snapshot

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/bits"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/weir-mesh/weir/envoy"
)

// versionLen is how many hex digits of the sha256 the Version keeps: 64 bits
// make an accidental collision between two pushes practically impossible.
const versionLen = 16

// resource is any generated Envoy message: all of them validate themselves.
type resource interface {
	proto.Message
	ValidateAll() error
}

// Type URLs of the resources, in the order the version hashes them.
var (
	clusterType  = typeURL(&clusterv3.Cluster{})
	endpointType = typeURL(&endpointv3.ClusterLoadAssignment{})
	listenerType = typeURL(&listenerv3.Listener{})
	routeType    = typeURL(&routev3.RouteConfiguration{})
)

func typeURL(m proto.Message) string {
	return "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName())
}

// virtualHostsField is the field of a RouteConfiguration that holds its
// virtual hosts.
var virtualHostsField = (&routev3.RouteConfiguration{}).ProtoReflect().Descriptor().Fields().ByName("virtual_hosts")

// digest is the sha256 of a resource's deterministic encoding.
type digest [sha256.Size]byte

// digestOf returns the digest of m's deterministic encoding. buf is scratch
// space, returned for the next call.
func digestOf(m proto.Message, buf []byte) (digest, []byte, error) {
	buf, err := envoy.AppendDeterministic(buf[:0], m)
	if err != nil {
		return digest{}, buf, err
	}
	return sha256.Sum256(buf), buf, nil
}

// virtualHostField returns vh encoded as a virtual_hosts field of a
// RouteConfiguration: a route configuration's encoding is its other fields'
// followed by these (see routesDigest), so a Builder need not encode the
// virtual hosts of unchanged services again. buf is scratch space for the
// encoding of vh alone.
func virtualHostField(vh *routev3.VirtualHost, buf *[]byte) ([]byte, error) {
	body, err := envoy.AppendDeterministic((*buf)[:0], vh)
	*buf = body
	if err != nil {
		return nil, err
	}
	num := virtualHostsField.Number()
	b := make([]byte, 0, protowire.SizeTag(num)+protowire.SizeBytes(len(body)))
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, body), nil
}

// routesDigest returns the digest of a route configuration encoded as rest,
// its fields other than virtual_hosts, followed by vhosts, the encodings of
// its virtual hosts (see virtualHostField). That is a valid encoding of it,
// and byte for byte envoy.AppendDeterministic's (with either encoder) while
// it sets no field numbered after virtual_hosts, as ours do not.
func routesDigest(rest []byte, vhosts [][]byte) digest {
	h := sha256.New()
	h.Write(rest)
	for _, vh := range vhosts {
		h.Write(vh)
	}
	var d digest
	h.Sum(d[:0])
	return d
}

// withoutVirtualHosts returns a route configuration like rc, sharing its
// field values, but without virtual hosts: rc itself must not change, as
// it may be served meanwhile.
func withoutVirtualHosts(rc *routev3.RouteConfiguration) *routev3.RouteConfiguration {
	src := rc.ProtoReflect()
	rest := src.New()
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd != virtualHostsField {
			rest.Set(fd, v)
		}
		return true
	})
	return rest.Interface().(*routev3.RouteConfiguration)
}

// digests holds the digest of every resource of a Resources, slice by
// slice, in the same order.
type digests struct {
	clusters, endpoints, routes, sidecar, api []digest
}

// digestAll returns the digest of every resource of r.
func digestAll(r Resources) (digests, error) {
	var d digests
	var err error
	var buf []byte
	add := func(typ, name string, m proto.Message, to *[]digest) {
		var sum digest
		if err == nil {
			if sum, buf, err = digestOf(m, buf); err != nil {
				err = fmt.Errorf("marshal %s %q: %w", typ, name, err)
			}
		}
		*to = append(*to, sum)
	}
	for _, c := range r.Clusters {
		add(clusterType, c.GetName(), c, &d.clusters)
	}
	for _, e := range r.Endpoints {
		add(endpointType, e.GetClusterName(), e, &d.endpoints)
	}
	for _, l := range r.SidecarListeners {
		add(listenerType, l.GetName(), l, &d.sidecar)
	}
	for _, l := range r.APIListeners {
		add(listenerType, l.GetName(), l, &d.api)
	}
	for _, rc := range r.Routes {
		sum, rcErr := digestRoutes(rc)
		err = cmp.Or(err, rcErr)
		d.routes = append(d.routes, sum)
	}
	return d, err
}

// digestRoutes returns the digest of rc as routesDigest computes it.
func digestRoutes(rc *routev3.RouteConfiguration) (digest, error) {
	vhosts := make([][]byte, len(rc.GetVirtualHosts()))
	var buf []byte
	for i, vh := range rc.GetVirtualHosts() {
		b, err := virtualHostField(vh, &buf)
		if err != nil {
			return digest{}, fmt.Errorf("marshal %s %q: %w", routeType, rc.GetName(), err)
		}
		vhosts[i] = b
	}
	rest, err := envoy.AppendDeterministic(nil, withoutVirtualHosts(rc))
	if err != nil {
		return digest{}, fmt.Errorf("marshal %s %q: %w", routeType, rc.GetName(), err)
	}
	return routesDigest(rest, vhosts), nil
}

// contentVersion returns the version of r (see version).
func contentVersion(r Resources) (string, error) {
	d, err := digestAll(r)
	if err != nil {
		return "", err
	}
	return version(d), nil
}

// version returns the content version of the resources whose digests are
// d: sha256 over, for each resource type in a fixed order, its type
// URL, how many resources it has and the sum of their digests (read as
// 256-bit big-endian numbers, modulo 2^256). Every resource's encoding
// holds its name, so its digest stands for its name and content alike; a
// sum does not depend on the order of the resources, so equal resources give
// an equal version whatever order they were built in, and the version costs
// one addition per resource rather than hashing every resource's entry
// again, which made it a fifth of an incremental build. A sum of digests
// tells apart the sets a control plane builds, not sets made to collide
// on purpose (a generalised birthday search finds those): the version keys
// pushes and ACKs, it authenticates nothing.
func version(d digests) string {
	listeners := sumOf(d.sidecar)
	listeners.addAll(d.api)
	var b []byte
	for _, t := range []struct {
		typeURL string
		sum     digestSum
	}{
		{clusterType, sumOf(d.clusters)},
		{endpointType, sumOf(d.endpoints)},
		{listenerType, listeners},
		{routeType, sumOf(d.routes)},
	} {
		b = t.sum.append(b, t.typeURL)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:versionLen]
}

// digestSum is how many digests were added and their sum modulo 2^256, in
// 64-bit limbs, most significant first. Its zero value is the empty sum.
type digestSum struct {
	n     uint64
	limbs [4]uint64
}

func sumOf(ds []digest) digestSum {
	var s digestSum
	s.addAll(ds)
	return s
}

func (s *digestSum) addAll(ds []digest) {
	for i := range ds {
		s.add(&ds[i])
	}
}

func (s *digestSum) add(d *digest) {
	var carry uint64
	for i := len(s.limbs) - 1; i >= 0; i-- {
		s.limbs[i], carry = bits.Add64(s.limbs[i], binary.BigEndian.Uint64(d[8*i:]), carry)
	}
	s.n++
}

// append appends typeURL, length-prefixed, the count and the sum to b.
func (s *digestSum) append(b []byte, typeURL string) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(len(typeURL)))
	b = append(b, typeURL...)
	b = binary.BigEndian.AppendUint64(b, s.n)
	for _, l := range s.limbs {
		b = binary.BigEndian.AppendUint64(b, l)
	}
	return b
}
