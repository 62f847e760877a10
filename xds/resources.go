package xds

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weir-mesh/weir/envoy"
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
	hash   string // content hash of the marshalled bytes
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

// versionFor is Cache.VersionFor from p; "" from a nil p.
func (p *prepared) versionFor(typeURL string, class Class, names []string, wildcard bool) string {
	if p == nil {
		return ""
	}
	ts := p.typeSet(typeURL, class)
	if ts == nil {
		ts = &typeSet{}
	}
	if wildcard {
		return ts.version
	}
	return versionOf(ts, selectNamed(ts, names), false)
}

// marshalMemo remembers, for each list of the last snapshot prepared, its
// messages and their entries: a resource the snapshot builder reused (an
// unchanged service's) is the same message, and is not marshalled again;
// a list the builder reused whole (no resource of its type changed) is
// the same type set; and in a list the builder changed in a few places
// (see snapshot.Changed), only those are looked at. It also remembers the
// type sets of the last rememberedSnapshots snapshots (see
// prepared.recent).
type marshalMemo struct {
	lists      [memoLists]memoList
	shared     sharedMemo    // of the last snapshot's RouteConfigName
	marshalled atomic.Uint64 // resources marshalled since start
	recent     [][]*typeSet  // of the last rememberedSnapshots snapshots, oldest first
}

// The lists of a snapshot, as marshalMemo remembers them.
const (
	memoClusters = iota
	memoEndpoints
	memoRoutes
	memoSidecarListeners
	memoAPIListeners
	memoLists
)

// memoList is one list of resources as last prepared.
type memoList struct {
	list any    // the snapshot.List of the snapshot's messages
	head *entry // the entry set lists before list's, if any
	set  *typeSet
	// entries are head's, if any, then those of list's resources, in
	// list's order; sorted tells whether that is name order, as a
	// snapshot's lists are, and then they are set's entries too.
	entries snapshot.List[entry]
	sorted  bool
}

// prepare marshals every resource of s that memo does not already hold,
// makes memo hold exactly s's resources, and adds s's type sets to the
// recent ones memo remembers. When it fails, memo is as it was.
func prepare(s *snapshot.Snapshot, memo *marshalMemo) (*prepared, error) {
	p := &prepared{version: s.Version, types: make(map[string]*typeSet)}
	lists := memo.lists
	var errs [memoLists + 1]error
	shared, sharedMemo, sharedErr := sharedEntry(s.Outbound, memo.shared, &memo.marshalled)
	errs[memoLists] = sharedErr
	p.types[resourcev3.ClusterType], errs[memoClusters] = prepareList(resourcev3.ClusterType, nil, s.Clusters, &lists[memoClusters], &memo.marshalled)
	p.types[resourcev3.EndpointType], errs[memoEndpoints] = prepareList(resourcev3.EndpointType, nil, s.Endpoints, &lists[memoEndpoints], &memo.marshalled)
	if sharedErr == nil {
		p.types[resourcev3.RouteType], errs[memoRoutes] = prepareList(resourcev3.RouteType, shared, s.Routes, &lists[memoRoutes], &memo.marshalled)
	}
	p.lds[Envoy], errs[memoSidecarListeners] = prepareList(resourcev3.ListenerType, nil, s.SidecarListeners, &lists[memoSidecarListeners], &memo.marshalled)
	p.lds[GRPC], errs[memoAPIListeners] = prepareList(resourcev3.ListenerType, nil, s.APIListeners, &lists[memoAPIListeners], &memo.marshalled)
	if err := errors.Join(errs[:]...); err != nil {
		return nil, err
	}
	memo.lists, memo.shared = lists, sharedMemo
	// A fresh slice each time: sliding along one array would keep the
	// dropped snapshots' type sets reachable until it grew.
	memo.recent = append(slices.Clone(memo.recent[max(0, len(memo.recent)-rememberedSnapshots+1):]), p.sets())
	p.recent = make(map[string]*typeSet)
	for _, sets := range memo.recent {
		for _, ts := range sets {
			p.recent[ts.version] = ts
		}
	}
	return p, nil
}

// message is a resource of a snapshot.
type message interface {
	proto.Message
	comparable
}

// prepareList returns the type set of head, unless nil, and msgs: that of
// last, the list as prepared last time, if msgs is the Same list it was
// prepared from and head the same entry, else a new one, which last then
// becomes. marshalled counts the resources marshalled.
func prepareList[M message](typeURL string, head *entry, msgs snapshot.List[M], last *memoList, marshalled *atomic.Uint64) (*typeSet, error) {
	old, _ := last.list.(snapshot.List[M])
	if last.set != nil && old.Same(msgs) && sameEntry(head, last.head) {
		return last.set, nil
	}
	next, err := listOf(typeURL, head, msgs, old, last, marshalled)
	if err != nil {
		return nil, err
	}
	*last = next
	return next.set, nil
}

// listOf returns head, unless nil, and msgs prepared, taking from last,
// which was prepared from old, the entries of the messages it holds: by
// position when msgs and old are lists of one length, the messages msgs
// changed have the names old's had there (an endpoint or weight change),
// and head has the name of last's, else by message. Only messages last
// does not hold are marshalled (counted in marshalled).
func listOf[M message](typeURL string, head *entry, msgs, old snapshot.List[M], last *memoList, marshalled *atomic.Uint64) (memoList, error) {
	if last.sorted && sameName(head, last.head) {
		if changes, ok := snapshot.Changed(msgs, old); ok {
			if l, ok, err := patchedList(typeURL, head, msgs, changes, last, marshalled); ok || err != nil {
				return l, err
			}
		}
	}
	known := make(map[M]entry, old.Len())
	lastEntries := last.entries.Slice()[headLen(last.head):]
	for i, m := range old.All() {
		known[m] = lastEntries[i]
	}
	entries := make([]entry, 0, headLen(head)+msgs.Len())
	if head != nil {
		entries = append(entries, *head)
	}
	for m := range msgs.Values() {
		e, ok := known[m]
		if !ok {
			var err error
			if e, err = marshalEntry(typeURL, m, marshalled); err != nil {
				return memoList{}, err
			}
		}
		entries = append(entries, e)
	}
	byName := func(a, b entry) int { return strings.Compare(a.name, b.name) }
	l := memoList{list: msgs, head: head, entries: snapshot.ListOf(entries...), sorted: slices.IsSortedFunc(entries, byName)}
	if !l.sorted {
		slices.SortFunc(entries, byName)
	}
	set := &typeSet{entries: l.entries, index: make(map[string]int, len(entries))}
	if !l.sorted {
		set.entries = snapshot.ListOf(entries...)
	}
	for i, e := range entries {
		if i > 0 && entries[i-1].name == e.name {
			return memoList{}, fmt.Errorf("%s %q appears twice", typeURL, e.name)
		}
		set.index[e.name] = i
		set.sum.add(&e)
	}
	set.version = set.sum.version()
	l.set = set
	return l, nil
}

// patchedList returns head, unless nil, and msgs prepared from last, a
// list in name order of as many messages after a head of the same name,
// which differs from it at the indexes changes yields: the messages there
// must have the names last's had, so that the names, their order and the
// index stay, and only they are marshalled; one that marshals as before
// keeps its entry. It reports false, having marshalled nothing, when one
// has another name.
func patchedList[M message](typeURL string, head *entry, msgs snapshot.List[M], changes iter.Seq[int], last *memoList, marshalled *atomic.Uint64) (memoList, bool, error) {
	off := headLen(head)
	for i := range changes {
		if cachev3.GetResourceName(msgs.At(i)) != last.entries.At(off+i).name {
			return memoList{}, false, nil
		}
	}
	entries, sum := last.entries, last.set.sum
	if head != nil && !sameEntry(head, last.head) {
		was := entries.At(0)
		entries = entries.Set(0, *head)
		sum.remove(&was)
		sum.add(head)
	}
	for i := range changes {
		m, was := msgs.At(i), entries.At(off+i)
		e, err := marshalEntry(typeURL, m, marshalled)
		if err != nil {
			return memoList{}, false, err
		}
		if e.hash == was.hash {
			continue // a new message with the same content: the entry stays, and no stream is sent it again
		}
		entries = entries.Set(off+i, e)
		sum.remove(&was)
		sum.add(&e)
	}
	if entries.Same(last.entries) { // the same messages in a new list: the same set
		return memoList{list: msgs, head: head, set: last.set, entries: last.entries, sorted: true}, true, nil
	}
	set := &typeSet{entries: entries, index: last.set.index, sum: sum, version: sum.version()}
	return memoList{list: msgs, head: head, set: set, entries: entries, sorted: true}, true, nil
}

// marshalEntry returns m marshalled as an entry of type typeURL, counted
// in marshalled.
func marshalEntry(typeURL string, m proto.Message, marshalled *atomic.Uint64) (entry, error) {
	name := cachev3.GetResourceName(m)
	b, err := envoy.AppendDeterministic(nil, m)
	if err != nil {
		return entry{}, fmt.Errorf("marshal %s %q: %w", typeURL, name, err)
	}
	marshalled.Add(1)
	return newEntry(name, shortHash(b), &anypb.Any{TypeUrl: typeURL, Value: b}), nil
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
