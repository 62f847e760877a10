package xds

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weir-mesh/weir/snapshot"
)

// Cache is weir's xDS cache. One prepared snapshot serves every proxy of a
// class, whatever its node id, so memory does not grow with the fleet.
//
// Unlike go-control-plane's SnapshotCache it answers named subscriptions with
// exactly the names it has (a gRPC client asking for one listener gets it, and
// a request for unknown names still gets an answer), it never re-sends content
// a client already has (so a NACK does not start a resend storm), and it
// answers the first request of every stream, which is how a reconnecting
// client learns it is up to date.
//
// Nothing is served until the first SetSnapshot: a proxy that connects early
// waits rather than being handed an empty world.
type Cache struct {
	prepMu sync.Mutex // serialises SetSnapshot's preparation
	memo   marshalMemo

	mu      sync.Mutex
	current *prepared // nil until the first SetSnapshot
	sotw    map[*sotwWatch]struct{}
	delta   map[*deltaWatch]struct{}
}

var _ cachev3.Cache = (*Cache)(nil)

// NewCache returns an empty Cache.
func NewCache() *Cache {
	return &Cache{sotw: make(map[*sotwWatch]struct{}), delta: make(map[*deltaWatch]struct{})}
}

// SetSnapshot makes s the current snapshot and answers every open watch whose
// view of the resources changed.
func (c *Cache) SetSnapshot(s *snapshot.Snapshot) error {
	c.prepMu.Lock()
	p, err := prepare(s, &c.memo)
	c.prepMu.Unlock()
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	concerns := newConcern(c.current, p)
	c.current = p
	// Answer in make-before-break order — clusters, endpoints, listeners,
	// routes — so that on every ADS stream a route never arrives before the
	// cluster it names.
	sotw := slices.SortedFunc(maps.Keys(c.sotw), func(a, b *sotwWatch) int {
		return cmp.Compare(pushOrder(a.req.GetTypeUrl()), pushOrder(b.req.GetTypeUrl()))
	})
	for _, w := range sotw {
		if !concerns.watch(w.req.GetTypeUrl(), w.req.GetNode(), w.sub) {
			continue
		}
		if resp := sotwResponse(p, w.req, w.sub); resp != nil {
			w.ch <- resp
			delete(c.sotw, w)
		}
	}
	delta := slices.SortedFunc(maps.Keys(c.delta), func(a, b *deltaWatch) int {
		return cmp.Compare(pushOrder(a.req.GetTypeUrl()), pushOrder(b.req.GetTypeUrl()))
	})
	for _, w := range delta {
		if !concerns.watch(w.req.GetTypeUrl(), w.req.GetNode(), w.sub) {
			continue
		}
		if resp := deltaResponse(p, w.req, w.sub); resp != nil {
			w.ch <- resp
			delete(c.delta, w)
		}
	}
	return nil
}

// concern tells which open watches a new snapshot may concern. An open
// watch was judged against the previous snapshot and needed no answer; it
// still needs none when nothing it subscribes to changed: for a wildcard,
// nothing of its type for its class; for names, none of those names'
// resources (changed, added or removed). So a weight change re-judges the
// route watches of Envoys and of the changed service's gRPC clients, not
// every stream's.
type concern struct {
	prev, next *prepared
	changed    map[concernKey]map[string]bool // names whose resource differs, by type and class
}

type concernKey struct {
	typeURL string
	class   Class
}

// newConcern compares next with prev; nil prev concerns every watch.
func newConcern(prev, next *prepared) *concern {
	return &concern{prev: prev, next: next, changed: map[concernKey]map[string]bool{}}
}

// watch reports whether a watch of typeURL from node, subscribed as sub,
// must be judged again.
func (c *concern) watch(typeURL string, node *corev3.Node, sub cachev3.Subscription) bool {
	if c.prev == nil {
		return true
	}
	class := ClassOf(node)
	before, after := c.prev.typeSet(typeURL, class), c.next.typeSet(typeURL, class)
	if before.versionOrNone() == after.versionOrNone() {
		return false
	}
	if sub.IsWildcard() {
		return true
	}
	key := concernKey{typeURL, class}
	changed, ok := c.changed[key]
	if !ok {
		changed = changedNames(before, after)
		c.changed[key] = changed
	}
	for name := range sub.SubscribedResources() {
		if changed[name] {
			return true
		}
	}
	return false
}

// changedNames returns the names whose resource differs between two sets
// of one type: changed, added or removed.
func changedNames(before, after *typeSet) map[string]bool {
	out := map[string]bool{}
	for _, e := range after.all() {
		if old, ok := before.lookup(e.name); !ok || old.hash != e.hash {
			out[e.name] = true
		}
	}
	for _, e := range before.all() {
		if _, ok := after.lookup(e.name); !ok {
			out[e.name] = true
		}
	}
	return out
}

// pushOrder ranks resource types in the order a push answers them.
func pushOrder(typeURL string) int {
	switch typeURL {
	case resourcev3.ClusterType:
		return 0
	case resourcev3.EndpointType:
		return 1
	case resourcev3.ListenerType:
		return 2
	case resourcev3.RouteType:
		return 3
	default:
		return 4
	}
}

// VersionFor returns the version_info a proxy of class subscribed to names
// of typeURL (or to all of them, when wildcard) would be sent from the
// current snapshot; "" before the first snapshot. A proxy that ACKed this
// version is up to date.
func (c *Cache) VersionFor(typeURL string, class Class, names []string, wildcard bool) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.current == nil {
		return ""
	}
	ts := c.current.typeSet(typeURL, class)
	if ts == nil {
		ts = &typeSet{}
	}
	if wildcard {
		return ts.version
	}
	return versionOf(ts, selectNamed(ts, names), false)
}

// watches returns how many requests are held open.
func (c *Cache) watches() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sotw) + len(c.delta)
}

// Marshalled returns how many resources the cache has marshalled since it
// started: each resource once, however many proxies receive it, and not
// again in a later snapshot that reuses it.
func (c *Cache) Marshalled() uint64 { return c.memo.marshalled.Load() }

// Version returns the version of the current snapshot, "" before the first.
func (c *Cache) Version() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.current == nil {
		return ""
	}
	return c.current.version
}

type sotwWatch struct {
	req *cachev3.Request
	sub cachev3.Subscription
	ch  chan cachev3.Response
}

type deltaWatch struct {
	req *cachev3.DeltaRequest
	sub cachev3.Subscription
	ch  chan cachev3.DeltaResponse
}

// CreateWatch answers a state-of-the-world request now if the client's view
// is out of date, or else when a later snapshot changes it. The answer is
// worked out without holding the cache's lock, so that streams do not wait
// for each other; only registering the watch takes it.
func (c *Cache) CreateWatch(req *cachev3.Request, sub cachev3.Subscription, ch chan cachev3.Response) (func(), error) {
	for {
		p := c.snapshot()
		if p != nil {
			if resp := sotwResponse(p, req, sub); resp != nil {
				ch <- resp
				return func() {}, nil
			}
		}
		w := &sotwWatch{req: req, sub: sub, ch: ch}
		if c.register(p, func() { c.sotw[w] = struct{}{} }) {
			return func() { c.cancelSotw(w) }, nil
		}
	}
}

// CreateDeltaWatch is CreateWatch for the incremental protocol.
func (c *Cache) CreateDeltaWatch(req *cachev3.DeltaRequest, sub cachev3.Subscription, ch chan cachev3.DeltaResponse) (func(), error) {
	for {
		p := c.snapshot()
		if p != nil {
			if resp := deltaResponse(p, req, sub); resp != nil {
				ch <- resp
				return func() {}, nil
			}
		}
		w := &deltaWatch{req: req, sub: sub, ch: ch}
		if c.register(p, func() { c.delta[w] = struct{}{} }) {
			return func() { c.cancelDelta(w) }, nil
		}
	}
}

// snapshot returns the prepared snapshot being served, nil before the first.
func (c *Cache) snapshot() *prepared {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.current
}

// register runs add (which records a watch) if p is still the snapshot
// being served, and reports whether it did. If a snapshot landed since p
// was read, the watch was judged against stale content: the caller looks
// again rather than miss the change.
func (c *Cache) register(p *prepared, add func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.current != p {
		return false
	}
	add()
	return true
}

func (c *Cache) cancelSotw(w *sotwWatch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.sotw, w)
}

func (c *Cache) cancelDelta(w *deltaWatch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.delta, w)
}

// ErrNotReady is returned by Fetch before the first snapshot.
var ErrNotReady = errors.New("xds: no snapshot published yet")

// Fetch answers a REST request with the current resources.
func (c *Cache) Fetch(_ context.Context, req *cachev3.Request) (cachev3.Response, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.current == nil {
		return nil, ErrNotReady
	}
	sub := fetchSubscription{names: req.GetResourceNames(), wildcard: len(req.GetResourceNames()) == 0}
	return sotwResponse(c.current, req, sub), nil
}

// absent is the version recorded for a name a stream asked for that does
// not exist.
const absent = ""

// sotwResponse returns the response a state-of-the-world watch needs, or nil
// when the client already holds exactly what it would be sent. The first
// request of a stream (no response nonce) is always answered.
func sotwResponse(p *prepared, req *cachev3.Request, sub cachev3.Subscription) cachev3.Response {
	ts := p.typeSet(req.GetTypeUrl(), ClassOf(req.GetNode()))
	if ts == nil {
		ts = &typeSet{} // a type weir does not serve: answer with nothing
	}
	selected := selectEntries(ts, sub)
	returned := make(map[string]string, len(selected))
	for _, e := range selected {
		returned[e.name] = e.hash
	}
	if !sub.IsWildcard() {
		// Remember the names asked for and not found, so that a name
		// added later, found or not, changes what the stream holds and is
		// answered.
		for name := range sub.SubscribedResources() {
			if _, ok := returned[name]; !ok {
				returned[name] = absent
			}
		}
	}
	version := versionOf(ts, selected, sub.IsWildcard())
	held := sub.ReturnedResources()
	if !needsAnswer(req, version, returned, held) {
		return nil
	}
	onlyChanged := incremental(req)
	anys := make([]*anypb.Any, 0, len(selected))
	for _, e := range selected {
		if onlyChanged && held[e.name] == e.hash {
			continue
		}
		anys = append(anys, e.any)
	}
	return &cachev3.PassthroughResponse{
		Request:           req,
		ReturnedResources: returned,
		DiscoveryResponse: &discoveryv3.DiscoveryResponse{
			VersionInfo: version,
			TypeUrl:     req.GetTypeUrl(),
			Resources:   anys,
		},
	}
}

// incremental reports whether a state-of-the-world response to req may
// leave out the resources the client already holds. For routes and
// endpoints it may: unlike listeners and clusters, a resource missing from
// such a response is not removed but kept as it was (the xDS protocol's
// SotW rules; Envoy and grpc-go follow them). So a change to one service's
// endpoints sends one ClusterLoadAssignment to each Envoy, not all of them.
// The client must hold what it was last sent: req ACKs it. The first
// request of a stream and a NACK get everything.
func incremental(req *cachev3.Request) bool {
	switch req.GetTypeUrl() {
	case resourcev3.EndpointType, resourcev3.RouteType:
		return req.GetResponseNonce() != "" && req.GetErrorDetail() == nil
	}
	return false
}

// versionOf returns the version of a selection from ts. A selection of
// every entry (a wildcard, or an Envoy naming every cluster in EDS) is the
// whole sorted set, whose version is computed once per snapshot.
func versionOf(ts *typeSet, selected []entry, wildcard bool) string {
	if wildcard || len(selected) == len(ts.entries) {
		return ts.version
	}
	return selectionVersion(selected)
}

// needsAnswer reports whether a state-of-the-world request must be answered
// with version, whose resources are want, given what the stream was last
// sent (held). The first request of a stream is always answered. After a
// NACK only new content is sent — re-sending what was rejected would start
// a resend storm. Otherwise the client is answered when the version it
// reports is not the one it should hold (content changed, or names were
// dropped from its subscription) or when it asks for names it was not told
// about.
func needsAnswer(req *cachev3.Request, version string, want, held map[string]string) bool {
	switch {
	case req.GetResponseNonce() == "":
		return true
	case req.GetErrorDetail() != nil:
		return !maps.Equal(want, held)
	default:
		return req.GetVersionInfo() != version || !maps.Equal(want, held)
	}
}

// selectEntries returns, sorted by name, the entries a subscription covers.
func selectEntries(ts *typeSet, sub cachev3.Subscription) []entry {
	if sub.IsWildcard() {
		return ts.entries
	}
	names := sub.SubscribedResources()
	if len(names) >= len(ts.entries)/4 {
		// Most of the type: filtering the sorted entries is cheaper than
		// sorting what was found.
		out := make([]entry, 0, min(len(names), len(ts.entries)))
		for _, e := range ts.entries {
			if _, ok := names[e.name]; ok {
				out = append(out, e)
			}
		}
		return out
	}
	out := make([]entry, 0, len(names))
	for name := range names {
		if e, ok := ts.lookup(name); ok {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	return out
}

// selectNamed returns, sorted by name, the entries of ts that names (in any
// order, perhaps repeated) asks for.
func selectNamed(ts *typeSet, names []string) []entry {
	if !slices.IsSorted(names) {
		names = slices.Sorted(slices.Values(names))
	}
	out := make([]entry, 0, len(names))
	for i, name := range names {
		if i > 0 && names[i-1] == name {
			continue
		}
		if e, ok := ts.lookup(name); ok {
			out = append(out, e)
		}
	}
	return out
}

// deltaResponse returns the incremental response a watch needs: resources
// whose content the client lacks, names it holds that no longer exist, and
// names it newly asked for that do not exist. It returns nil when there is
// nothing to say, except that the first request of a stream is always
// answered.
func deltaResponse(p *prepared, req *cachev3.DeltaRequest, sub cachev3.Subscription) cachev3.DeltaResponse {
	ts := p.typeSet(req.GetTypeUrl(), ClassOf(req.GetNode()))
	if ts == nil {
		ts = &typeSet{}
	}
	known := sub.ReturnedResources()
	next := make(map[string]string)
	var changed []*discoveryv3.Resource
	selected := selectEntries(ts, sub)
	for _, e := range selected {
		next[e.name] = e.hash
		if known[e.name] != e.hash {
			changed = append(changed, &discoveryv3.Resource{Name: e.name, Version: e.hash, Resource: e.any})
		}
	}
	removed := missingNames(ts, sub, known, next)
	if len(changed) == 0 && len(removed) == 0 && req.GetResponseNonce() != "" {
		return nil
	}
	return &cachev3.DeltaPassthroughResponse{
		DeltaRequest:   req,
		NextVersionMap: next,
		DeltaDiscoveryResponse: &discoveryv3.DeltaDiscoveryResponse{
			SystemVersionInfo: versionOf(ts, selected, sub.IsWildcard()),
			TypeUrl:           req.GetTypeUrl(),
			Resources:         changed,
			RemovedResources:  removed,
		},
	}
}

// missingNames returns, sorted, the names to report as removed: those the
// client holds that no longer exist, and those it asked for that do not
// exist and that it has not been told about. It records every subscribed
// missing name in next as absent.
func missingNames(ts *typeSet, sub cachev3.Subscription, known, next map[string]string) []string {
	var removed []string
	for name, version := range known {
		if _, ok := ts.lookup(name); !ok && version != absent {
			removed = append(removed, name)
		}
	}
	for name := range sub.SubscribedResources() {
		if _, ok := ts.lookup(name); ok {
			continue
		}
		next[name] = absent
		if _, told := known[name]; !told {
			removed = append(removed, name)
		}
	}
	slices.Sort(removed)
	return slices.Compact(removed)
}

// fetchSubscription adapts a list of names to a Subscription.
type fetchSubscription struct {
	names    []string
	wildcard bool
}

func (f fetchSubscription) ReturnedResources() map[string]string { return nil }
func (f fetchSubscription) IsWildcard() bool                     { return f.wildcard }
func (f fetchSubscription) SubscribedResources() map[string]struct{} {
	m := make(map[string]struct{}, len(f.names))
	for _, n := range f.names {
		m[n] = struct{}{}
	}
	return m
}
