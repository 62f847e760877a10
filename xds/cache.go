package xds

import (
	"context"
	"errors"
	"sync"

	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

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

	owed sync.Map // *cachev3.DeltaRequest → []string: see owe

	mu      sync.Mutex
	current *prepared // nil until the first SetSnapshot
	sotw    watchSet[*sotwWatch]
	delta   watchSet[*deltaWatch]
}

var _ cachev3.Cache = (*Cache)(nil)

// NewCache returns an empty Cache.
func NewCache() *Cache {
	return &Cache{sotw: newWatchSet[*sotwWatch](), delta: newWatchSet[*deltaWatch]()}
}

// SetSnapshot makes s the current snapshot and answers every open watch whose
// view of the resources changed. accepted, if not nil, runs once s has been
// found valid and before any stream can see it, so that whoever saw s can
// also see what accepted recorded (a publish counter, say).
func (c *Cache) SetSnapshot(s *snapshot.Snapshot, accepted func()) error {
	c.prepMu.Lock()
	p, err := prepare(s, &c.memo)
	c.prepMu.Unlock()
	if err != nil {
		return err
	}
	if accepted != nil {
		accepted()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	concerns := newConcern(c.current, p)
	c.current = p
	// Types are answered in push order — clusters, endpoints, listeners,
	// routes — so that on every ADS stream a route never arrives before the
	// cluster it names. A type the snapshot did not change is skipped
	// whole: a weight change visits route watches only.
	for order := range pushOrders {
		if !concerns.order(order) {
			continue
		}
		for w := range c.sotw[order] {
			if !concerns.watch(w.req.GetTypeUrl(), w.class, w.sub) {
				continue
			}
			if resp := sotwResponse(p, w.req, w.sub, &w.named); resp != nil {
				w.ch <- resp
				delete(c.sotw[order], w)
			}
		}
		for w := range c.delta[order] {
			if !concerns.watch(w.req.GetTypeUrl(), w.class, w.sub) {
				continue
			}
			if resp := deltaAnswer(p, w.req, w.sub, w.owed); resp != nil {
				w.ch <- resp
				delete(c.delta[order], w)
			}
		}
	}
	return nil
}

// pushOrders is the number of ranks pushOrder gives.
const pushOrders = 5

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

// watchSet holds open watches by the push order of their type.
type watchSet[W comparable] [pushOrders]map[W]struct{}

func newWatchSet[W comparable]() watchSet[W] {
	var s watchSet[W]
	for i := range s {
		s[i] = make(map[W]struct{})
	}
	return s
}

func (s *watchSet[W]) len() int {
	n := 0
	for _, m := range s {
		n += len(m)
	}
	return n
}

// VersionFor returns the version_info a proxy of class subscribed to names
// of typeURL (or to all of them, when wildcard) would be sent from the
// current snapshot; "" before the first snapshot. A proxy that ACKed this
// version is up to date.
func (c *Cache) VersionFor(typeURL string, class Class, names []string, wildcard bool) string {
	return c.snapshot().versionFor(typeURL, class, names, wildcard)
}

// Versions returns the version of the snapshot being served ("" before the
// first), and a VersionFunc and a NeedsFunc that answer from that very
// snapshot, whatever lands meanwhile: a look at the fleet judges every
// proxy against one snapshot, and knows which.
func (c *Cache) Versions() (string, VersionFunc, NeedsFunc) {
	p := c.snapshot()
	version := ""
	if p != nil {
		version = p.version
	}
	return version, p.versionFor, p.needs
}

// watches returns how many requests are held open.
func (c *Cache) watches() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sotw.len() + c.delta.len()
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
	req   *cachev3.Request
	sub   cachev3.Subscription
	ch    chan cachev3.Response
	class Class
	order int        // pushOrder of the request's type
	named namedWhole // of sub (see sotwResponse)
}

type deltaWatch struct {
	req   *cachev3.DeltaRequest
	sub   cachev3.Subscription
	ch    chan cachev3.DeltaResponse
	class Class
	order int      // pushOrder of the request's type
	owed  []string // see deltaAnswer
}

// CreateWatch answers a state-of-the-world request now if the client's view
// is out of date, or else when a later snapshot changes it. The answer is
// worked out without holding the cache's lock, so that streams do not wait
// for each other; only registering the watch takes it.
func (c *Cache) CreateWatch(req *cachev3.Request, sub cachev3.Subscription, ch chan cachev3.Response) (func(), error) {
	w := &sotwWatch{req: req, sub: sub, ch: ch, class: ClassOf(req.GetNode()), order: pushOrder(req.GetTypeUrl())}
	for {
		p := c.snapshot()
		if p != nil {
			if resp := sotwResponse(p, req, sub, &w.named); resp != nil {
				ch <- resp
				return func() {}, nil
			}
		}
		if c.register(p, func() { c.sotw[w.order][w] = struct{}{} }) {
			return func() { c.cancelSotw(w) }, nil
		}
	}
}

// CreateDeltaWatch is CreateWatch for the incremental protocol.
func (c *Cache) CreateDeltaWatch(req *cachev3.DeltaRequest, sub cachev3.Subscription, ch chan cachev3.DeltaResponse) (func(), error) {
	var owed []string
	if names, ok := c.owed.LoadAndDelete(req); ok {
		owed = names.([]string)
	}
	for {
		p := c.snapshot()
		if p != nil {
			if resp := deltaAnswer(p, req, sub, owed); resp != nil {
				ch <- resp
				return func() {}, nil
			}
		}
		w := &deltaWatch{req: req, sub: sub, ch: ch, class: ClassOf(req.GetNode()), order: pushOrder(req.GetTypeUrl()), owed: owed}
		if c.register(p, func() { c.delta[w.order][w] = struct{}{} }) {
			return func() { c.cancelDelta(w) }, nil
		}
	}
}

// owe records that the stream of req, a delta request, is owed names (see
// deltaOwed), for the watch about to be created for req (see deltaAnswer).
// The Tracker calls it from the request's callback, which go-control-plane
// runs on the stream just before CreateDeltaWatch for the same request,
// which takes it.
func (c *Cache) owe(req *cachev3.DeltaRequest, names []string) {
	c.owed.Store(req, names)
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
	delete(c.sotw[w.order], w)
}

func (c *Cache) cancelDelta(w *deltaWatch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.delta[w.order], w)
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
	return sotwResponse(c.current, req, sub, nil), nil
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
