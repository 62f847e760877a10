package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
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
	name string
	hash string // content hash of the marshalled bytes
	any  *anypb.Any
}

// typeSet is every resource of one type for one class, sorted by name.
type typeSet struct {
	version string // hash over the names and hashes of all entries
	entries []entry
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
	return ts.entries[i], true
}

// all returns the entries, sorted by name; a nil set has none.
func (ts *typeSet) all() []entry {
	if ts == nil {
		return nil
	}
	return ts.entries
}

// hashes returns the content hash of every entry, by name.
func (ts *typeSet) hashes() map[string]string {
	out := make(map[string]string, len(ts.entries))
	for _, e := range ts.entries {
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
// and a list the builder reused whole (no resource of its type changed) is
// the same type set. It also remembers the type sets
// of the last rememberedSnapshots snapshots (see prepared.recent).
type marshalMemo struct {
	lists      [memoLists]memoList
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
	list any // the very slice: held, so that no other list can have its address
	set  *typeSet
	// entries are those of list's resources, in list's order; sorted
	// tells whether that is name order, as a snapshot's lists are, and
	// then they are set's entries too.
	entries []entry
	sorted  bool
}

// sameList reports whether a and b are the same slice: the same array
// and length. Snapshot lists are never changed once made, so the same
// slice holds the same resources.
func sameList(a, b any) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	return va.IsValid() && vb.IsValid() && va.Type() == vb.Type() &&
		va.Pointer() == vb.Pointer() && va.Len() == vb.Len()
}

// prepare marshals every resource of s that memo does not already hold,
// makes memo hold exactly s's resources, and adds s's type sets to the
// recent ones memo remembers. When it fails, memo is as it was.
func prepare(s *snapshot.Snapshot, memo *marshalMemo) (*prepared, error) {
	p := &prepared{version: s.Version, types: make(map[string]*typeSet)}
	lists := memo.lists
	var errs [memoLists]error
	p.types[resourcev3.ClusterType], errs[memoClusters] = prepareList(resourcev3.ClusterType, s.Clusters, &lists[memoClusters], &memo.marshalled)
	p.types[resourcev3.EndpointType], errs[memoEndpoints] = prepareList(resourcev3.EndpointType, s.Endpoints, &lists[memoEndpoints], &memo.marshalled)
	p.types[resourcev3.RouteType], errs[memoRoutes] = prepareList(resourcev3.RouteType, s.Routes, &lists[memoRoutes], &memo.marshalled)
	p.lds[Envoy], errs[memoSidecarListeners] = prepareList(resourcev3.ListenerType, s.SidecarListeners, &lists[memoSidecarListeners], &memo.marshalled)
	p.lds[GRPC], errs[memoAPIListeners] = prepareList(resourcev3.ListenerType, s.APIListeners, &lists[memoAPIListeners], &memo.marshalled)
	if err := errors.Join(errs[:]...); err != nil {
		return nil, err
	}
	memo.lists = lists
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

// prepareList returns the type set of msgs: that of last, the list as
// prepared last time, if msgs is the very list it was prepared from, else
// a new one, which last then becomes. marshalled counts the resources
// marshalled.
func prepareList[M proto.Message](typeURL string, msgs []M, last *memoList, marshalled *atomic.Uint64) (*typeSet, error) {
	if last.set != nil && sameList(last.list, msgs) {
		return last.set, nil
	}
	next, err := listOf(typeURL, msgs, last, marshalled)
	if err != nil {
		return nil, err
	}
	*last = next
	return next.set, nil
}

// listOf returns msgs prepared, taking from last the entries of the
// messages it holds: by position when msgs lists by name what last listed
// by name, with the same names in the same places (an endpoint change),
// else by message. Only messages last does not hold are marshalled
// (counted in marshalled).
func listOf[M proto.Message](typeURL string, msgs []M, last *memoList, marshalled *atomic.Uint64) (memoList, error) {
	old, _ := last.list.([]M)
	if last.sorted && len(old) == len(msgs) {
		if l, ok, err := patchedList(typeURL, msgs, old, last, marshalled); ok || err != nil {
			return l, err
		}
	}
	known := make(map[proto.Message]entry, len(old))
	for i, m := range old {
		known[m] = last.entries[i]
	}
	l := memoList{list: msgs, entries: make([]entry, len(msgs)), set: &typeSet{index: make(map[string]int, len(msgs))}}
	for i, m := range msgs {
		e, ok := known[m]
		if !ok {
			var err error
			if e, err = marshalEntry(typeURL, m, marshalled); err != nil {
				return memoList{}, err
			}
		}
		l.entries[i] = e
	}
	byName := func(a, b entry) int { return strings.Compare(a.name, b.name) }
	l.sorted = slices.IsSortedFunc(l.entries, byName)
	l.set.entries = l.entries
	if !l.sorted {
		l.set.entries = slices.SortedFunc(slices.Values(l.entries), byName)
	}
	for i, e := range l.set.entries {
		if i > 0 && l.set.entries[i-1].name == e.name {
			return memoList{}, fmt.Errorf("%s %q appears twice", typeURL, e.name)
		}
		l.set.index[e.name] = i
	}
	l.set.version = selectionVersion(l.set.entries)
	return l, nil
}

// patchedList returns msgs prepared from last, whose list old has as many
// messages and was in name order: each message that is old's at its
// place keeps its entry, and the others must have the name old's had
// there, so that the names, their order and the index stay. It reports
// false when one has another name.
func patchedList[M proto.Message](typeURL string, msgs, old []M, last *memoList, marshalled *atomic.Uint64) (memoList, bool, error) {
	var entries []entry
	for i, m := range msgs {
		if any(m) == any(old[i]) {
			continue
		}
		if cachev3.GetResourceName(m) != last.entries[i].name {
			return memoList{}, false, nil
		}
		e, err := marshalEntry(typeURL, m, marshalled)
		if err != nil {
			return memoList{}, false, err
		}
		if entries == nil {
			entries = slices.Clone(last.entries)
		}
		entries[i] = e
	}
	if entries == nil { // the same messages in a new slice: the same set
		return memoList{list: msgs, set: last.set, entries: last.entries, sorted: true}, true, nil
	}
	set := &typeSet{entries: entries, index: last.set.index, version: selectionVersion(entries)}
	return memoList{list: msgs, set: set, entries: entries, sorted: true}, true, nil
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
	return entry{name: name, hash: shortHash(b), any: &anypb.Any{TypeUrl: typeURL, Value: b}}, nil
}

// selectionVersion is the version_info of a response carrying entries
// (sorted by name): a hash of their names and contents. A proxy that ACKed
// it holds exactly that content, whichever subset of a type it asked for,
// so comparing it with the version of what it would be sent now tells
// whether it is up to date.
func selectionVersion(entries []entry) string {
	size := 0
	for _, e := range entries {
		size += len(e.name) + len(e.hash) + 2
	}
	buf := make([]byte, 0, size)
	for _, e := range entries {
		buf = append(append(append(append(buf, e.name...), 0), e.hash...), 0)
	}
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:8])
}

func shortHash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
