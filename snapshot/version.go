package snapshot

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
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

// routesDigest returns the digest of a route configuration whose fields
// other than virtual_hosts encode as rest and whose virtual hosts' digests
// add up to vhosts: the sha256 of rest followed by vhosts' count and sum
// (see digestSum.append). It is not the digest of the route configuration's
// encoding, but like it, it stands for its name and content, but for the
// order of its virtual hosts, which the sum leaves out: a Builder lists
// them by name, and Envoy picks a virtual host by domain, which no two
// share (see Consistent), whatever their order. A Builder so changes
// RouteConfigName's digest by subtracting a changed virtual host's and
// adding its new one, rather than hashing every service's virtual host
// again (which was a sixth of an incremental build at 20,000 services).
// It appends to rest, which must be scratch space or have no room to
// spare (see slices.Clip): bytes shared with a message others read must
// not be written past their end.
func routesDigest(rest []byte, vhosts digestSum) digest {
	return sha256.Sum256(vhosts.append(rest))
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

// typeSums are, per resource type the version covers, how many resources
// a snapshot has and the sum of their digests. The listeners' count the
// sidecar and API listeners alike.
type typeSums struct {
	clusters, endpoints, listeners, routes digestSum
}

// digestAll returns the sums of the digests of every resource of r.
func digestAll(r Resources) (typeSums, error) {
	var s typeSums
	var errs []error
	var buf []byte
	add := func(typ, name string, m proto.Message, to *digestSum) {
		sum, b, err := digestOf(m, buf)
		buf = b
		if err != nil {
			errs = append(errs, fmt.Errorf("marshal %s %q: %w", typ, name, err))
			return
		}
		to.add(&sum)
	}
	for c := range r.Clusters.Values() {
		add(clusterType, c.GetName(), c, &s.clusters)
	}
	for e := range r.Endpoints.Values() {
		add(endpointType, e.GetClusterName(), e, &s.endpoints)
	}
	for _, listeners := range []List[*listenerv3.Listener]{r.SidecarListeners, r.APIListeners} {
		for l := range listeners.Values() {
			add(listenerType, l.GetName(), l, &s.listeners)
		}
	}
	for _, rc := range r.RouteConfigurations() {
		sum, err := digestRoutes(rc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.routes.add(&sum)
	}
	return s, errors.Join(errs...)
}

// digestRoutes returns the digest of rc (see routesDigest).
func digestRoutes(rc *routev3.RouteConfiguration) (digest, error) {
	_, rest, vhosts, err := routesParts(rc)
	if err != nil {
		return digest{}, err
	}
	return routesDigest(rest, vhosts), nil
}

// routesParts returns rc without its virtual hosts, that encoded (with no
// room to spare: see routesDigest), and the sum of its virtual hosts'
// digests.
func routesParts(rc *routev3.RouteConfiguration) (*routev3.RouteConfiguration, []byte, digestSum, error) {
	var vhosts digestSum
	var buf []byte
	for _, vh := range rc.GetVirtualHosts() {
		sum, err := hostDigest(&buf, rc.GetName(), vh)
		if err != nil {
			return nil, nil, digestSum{}, err
		}
		vhosts.add(&sum)
	}
	rest := withoutVirtualHosts(rc)
	enc, err := envoy.AppendDeterministic(nil, rest)
	if err != nil {
		return nil, nil, digestSum{}, fmt.Errorf("marshal %s %q: %w", routeType, rc.GetName(), err)
	}
	return rest, slices.Clip(enc), vhosts, nil
}

// contentVersion returns the version of r (see version).
func contentVersion(r Resources) (string, error) {
	s, err := digestAll(r)
	if err != nil {
		return "", err
	}
	return s.version(), nil
}

// version returns the content version of the resources whose digests add
// up to s: sha256 over, for each resource type in a fixed order, its type
// URL, how many resources it has and the sum of their digests (read as
// 256-bit big-endian numbers, modulo 2^256). Every resource's encoding
// holds its name, so its digest stands for its name and content alike; a
// sum does not depend on the order of the resources, so equal resources give
// an equal version whatever order they were built in, and a Builder keeps
// the sums of its last build and changes them by what it rebuilt rather
// than adding up every resource's digest again. A sum of digests tells
// apart the sets a control plane builds, not sets made to collide on
// purpose (a generalised birthday search finds those): the version keys
// pushes and ACKs, it authenticates nothing.
func (s typeSums) version() string {
	var b []byte
	for _, t := range []struct {
		typeURL string
		sum     digestSum
	}{
		{clusterType, s.clusters},
		{endpointType, s.endpoints},
		{listenerType, s.listeners},
		{routeType, s.routes},
	} {
		b = binary.BigEndian.AppendUint64(b, uint64(len(t.typeURL)))
		b = append(b, t.typeURL...)
		b = t.sum.append(b)
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

func (s *digestSum) add(d *digest) {
	var carry uint64
	for i := len(s.limbs) - 1; i >= 0; i-- {
		s.limbs[i], carry = bits.Add64(s.limbs[i], binary.BigEndian.Uint64(d[8*i:]), carry)
	}
	s.n++
}

// sub takes d, which was added, out of s.
func (s *digestSum) sub(d *digest) {
	var borrow uint64
	for i := len(s.limbs) - 1; i >= 0; i-- {
		s.limbs[i], borrow = bits.Sub64(s.limbs[i], binary.BigEndian.Uint64(d[8*i:]), borrow)
	}
	s.n--
}

// swap takes old, which was added, out of s and adds new.
func (s *digestSum) swap(old, new *digest) {
	s.sub(old)
	s.add(new)
}

// append appends the count and the sum to b.
func (s *digestSum) append(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, s.n)
	for _, l := range s.limbs {
		b = binary.BigEndian.AppendUint64(b, l)
	}
	return b
}
