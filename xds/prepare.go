package xds

import (
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync/atomic"

	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weir-mesh/weir/envoy"
	"github.com/weir-mesh/weir/snapshot"
)

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
	p := &prepared{version: s.Version, types: make(map[string]*typeSet), resources: s.Resources}
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
	entries, err := entriesOf(typeURL, head, msgs, old, last, marshalled)
	if err != nil {
		return memoList{}, err
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

// entriesOf returns head, unless nil, and the entries of msgs: last's,
// which was prepared from old, for the messages it holds, else marshalled
// (counted in marshalled).
func entriesOf[M message](typeURL string, head *entry, msgs, old snapshot.List[M], last *memoList, marshalled *atomic.Uint64) ([]entry, error) {
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
				return nil, err
			}
		}
		entries = append(entries, e)
	}
	return entries, nil
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
