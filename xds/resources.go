package xds

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"iter"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weir-mesh/weir/snapshot"
)

// Class is a kind of proxy. Every proxy of a class is served from the same
// prepared resources; only listeners differ between classes.
type Class int

const (
	// Envoy sidecars subscribe to LDS and CDS by wildcard and receive the
	// outbound HTTP listener.
	Envoy Class = iota
	// GRPC is a proxyless gRPC client: it subscribes to everything by name and
	// receives one api_listener per service.
	GRPC
)

func (c Class) String() string {
	if c == Envoy {
		return "envoy"
	}
	return "grpc"
}

// ClassOf tells an Envoy from a proxyless gRPC client by the user agent its
// node reports (Envoy sends "envoy"; gRPC libraries send "gRPC Go",
// "gRPC Java", "grpc-node-js" and so on).
func ClassOf(node *corev3.Node) Class {
	if strings.EqualFold(node.GetUserAgentName(), "envoy") {
		return Envoy
	}
	return GRPC
}

// entry is one resource, marshalled once and shared by every response that
// carries it.
type entry struct {
	name   string
	hash   string // content hash: of the marshalled bytes, or RouteConfigName's (see sharedEntry)
	any    *anypb.Any
	digest entryDigest // of name and hash, for selectionSum
}

// newEntry returns the entry of the resource named name whose content hash
// is hash, marshalled as any.
func newEntry(name, hash string, any *anypb.Any) entry {
	return entry{name: name, hash: hash, any: any, digest: digestOf(name, hash)}
}

// typeSet is every resource of one type for one class, sorted by name.
type typeSet struct {
	version string       // sum.version(): of the names and hashes of all entries
	sum     selectionSum // of entries
	entries snapshot.List[entry]
	index   map[string]int
}

// lookup returns the entry named name; a nil set has none.
func (ts *typeSet) lookup(name string) (entry, bool) {
	if ts == nil {
		return entry{}, false
	}
	i, ok := ts.index[name]
	if !ok {
		return entry{}, false
	}
	return ts.entries.At(i), true
}

// all returns the entries, sorted by name; a nil set has none.
func (ts *typeSet) all() snapshot.List[entry] {
	if ts == nil {
		return snapshot.List[entry]{}
	}
	return ts.entries
}

// hashes returns the content hash of every entry, by name.
func (ts *typeSet) hashes() map[string]string {
	out := make(map[string]string, ts.entries.Len())
	for e := range ts.entries.Values() {
		out[e.name] = e.hash
	}
	return out
}

// versionOrNone returns the set's version, "" for a nil set (a type not
// served).
func (ts *typeSet) versionOrNone() string {
	if ts == nil {
		return ""
	}
	return ts.version
}

// prepared is a snapshot ready to serve: marshalled, hashed and indexed.
type prepared struct {
	version string
	types   map[string]*typeSet // shared types, by type URL
	lds     [2]*typeSet         // listeners, by Class
	// recent holds the type sets of the last rememberedSnapshots
	// snapshots, this one's included, by version: what a stream holds of a
	// full selection (see returnedBy).
	recent map[string]*typeSet
	// resources are the snapshot's, for what holding some of them needs
	// (see needs).
	resources snapshot.Resources
}

// rememberedSnapshots is how many snapshots' type sets prepared.recent
// holds. A stream last sent an older full selection is sent all of it
// again rather than only what changed.
const rememberedSnapshots = 8

// sets returns p's type sets.
func (p *prepared) sets() []*typeSet {
	out := []*typeSet{p.lds[Envoy], p.lds[GRPC]}
	for _, ts := range p.types {
		out = append(out, ts)
	}
	return out
}

func (p *prepared) typeSet(typeURL string, class Class) *typeSet {
	if typeURL == resourcev3.ListenerType {
		return p.lds[class]
	}
	return p.types[typeURL]
}

// servedTypeSet is typeSet, but for a type weir serves nothing of it
// returns noTypeSet rather than nil.
func (p *prepared) servedTypeSet(typeURL string, class Class) *typeSet {
	if ts := p.typeSet(typeURL, class); ts != nil {
		return ts
	}
	return noTypeSet
}

// noTypeSet is the type set of a type weir serves nothing of: empty, with
// the version of an empty selection, which a client subscribed to it, even
// by wildcard, is sent and holds. It is only read.
var noTypeSet = &typeSet{version: selectionSum{}.version()}

// versionFor is Cache.VersionFor from p; "" from a nil p.
func (p *prepared) versionFor(typeURL string, class Class, names []string, wildcard bool) string {
	if p == nil {
		return ""
	}
	ts := p.servedTypeSet(typeURL, class)
	if wildcard {
		return ts.version
	}
	return versionOf(ts, selectNamed(ts, names), false)
}

// NeedsFunc returns, sorted, the names of the type that follows typeURL
// (see nextType) that a proxy subscribed to names of typeURL (or to all of
// them, when wildcard) must also subscribe to before it can use what it
// holds: the clusters its routes name, the EDS names of its clusters.
type NeedsFunc func(typeURL string, names []string, wildcard bool) []string

// nextType is, for a type whose resources name resources of another, that
// other type: routes name clusters, EDS clusters name their endpoints.
var nextType = map[string]string{
	resourcev3.RouteType:   resourcev3.ClusterType,
	resourcev3.ClusterType: resourcev3.EndpointType,
}

// needs is a NeedsFunc from p; nil from a nil p. A wildcard route
// subscription, which no client weir serves makes, needs nothing.
func (p *prepared) needs(typeURL string, names []string, wildcard bool) []string {
	switch {
	case p == nil:
		return nil
	case typeURL == resourcev3.RouteType && !wildcard:
		return snapshot.ClustersOfRoutes(p.resources, names)
	case typeURL == resourcev3.ClusterType:
		return snapshot.EDSNames(p.resources, names, wildcard)
	}
	return nil
}

// entryDigest is the digest of an entry's name and content hash.
type entryDigest [2]uint64

func digestOf(name, hash string) entryDigest {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write([]byte(hash))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return entryDigest{binary.LittleEndian.Uint64(sum[:8]), binary.LittleEndian.Uint64(sum[8:16])}
}

// selectionSum adds up the digests of a selection of entries of one type:
// a sum, so that a type set's version follows a change of a few entries
// without hashing the others again, and one that does not depend on the
// order the entries are added in. Its zero value is the empty selection.
type selectionSum struct {
	lanes [2]uint64
	n     int
}

func (s *selectionSum) add(e *entry) {
	s.lanes[0] += e.digest[0]
	s.lanes[1] += e.digest[1]
	s.n++
}

func (s *selectionSum) remove(e *entry) {
	s.lanes[0] -= e.digest[0]
	s.lanes[1] -= e.digest[1]
	s.n--
}

// version returns the version_info of a response carrying the selection:
// a hash of its entries' names and contents. A proxy that ACKed it holds
// exactly that content, whichever subset of a type it asked for, so
// comparing it with the version of what it would be sent now tells
// whether it is up to date.
func (s selectionSum) version() string {
	var buf [24]byte
	binary.LittleEndian.PutUint64(buf[0:], s.lanes[0])
	binary.LittleEndian.PutUint64(buf[8:], s.lanes[1])
	binary.LittleEndian.PutUint64(buf[16:], uint64(s.n))
	sum := sha256.Sum256(buf[:])
	return hex.EncodeToString(sum[:8])
}

// selectionVersion returns the version of the selection of entries (see
// selectionSum.version).
func selectionVersion(entries iter.Seq[entry]) string {
	var s selectionSum
	for e := range entries {
		s.add(&e)
	}
	return s.version()
}

func shortHash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
