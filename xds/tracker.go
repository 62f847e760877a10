package xds

import (
	"cmp"
	"context"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"
	"unique"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc/peer"
)

// TypeStatus is what one proxy was sent of one resource type, and what it did
// with it.
type TypeStatus struct {
	// Names are the resources subscribed to, sorted; Wildcard means all.
	Names    []string
	Wildcard bool
	// named is set once the stream named resources for this type: from
	// then on an empty list means nothing, not everything (the legacy
	// wildcard rule go-control-plane follows).
	named     bool
	Sent      string // version_info of the last response on the stream
	SentNonce string
	SentAt    time.Time
	Acked     string // last version the proxy reported as applied
	AckedAt   time.Time
	// LastNack is the most recent rejection; it stays after later ACKs, so an
	// operator can still see what went wrong.
	LastNack *Nack
	// selection stands for the type, Wildcard and Names: statuses
	// subscribed alike share it, so a look at the fleet works out the
	// version each distinct subscription should hold once, not per proxy.
	selection unique.Handle[string]
}

// subscribed reports whether the status subscribes to anything.
func (st TypeStatus) subscribed() bool { return st.Wildcard || len(st.Names) > 0 }

// Nack is a rejected response.
type Nack struct {
	Version string
	Error   string
	At      time.Time
}

// Proxy is the status of one connected xDS stream.
type Proxy struct {
	StreamID    int64
	NodeID      string
	Cluster     string
	UserAgent   string
	Class       Class
	Address     string
	Delta       bool
	ConnectedAt time.Time
	Types       map[string]TypeStatus // by type URL

	// changes counts the changes to the status, so that a look at the
	// fleet can tell that judged is still true.
	changes uint64
	judged  judgement
	// owed is, by type (see Proxy.deltaOwed), what a delta stream may be
	// owed after NACKs; nil for a state-of-the-world stream.
	owed *[owedTypes]deltaOwed
	// defaultType is the type of a per-type xDS service's stream, whose
	// requests may leave theirs out; "" for ADS.
	defaultType string
}

// Tracker records, per stream and resource type, the versions sent, ACKed and
// NACKed. It implements go-control-plane's server callbacks; every callback
// records and returns without blocking.
type Tracker struct {
	logger  *slog.Logger
	metrics *Metrics
	now     func() time.Time

	onNack func(node, typeURL, err string) // see OnNack
	// onDeltaOwed is told the names a delta stream is owed (see
	// deltaOwed) before the server watches for its request: Cache.owe.
	onDeltaOwed func(req *discoveryv3.DeltaDiscoveryRequest, names []string)

	mu      sync.Mutex
	proxies map[streamKey]*Proxy
	changed chan struct{} // signalled after every ACK, NACK and disconnect
}

var _ serverv3.Callbacks = (*Tracker)(nil)

// NewTracker returns a Tracker that logs NACKs to logger and counts into m.
func NewTracker(logger *slog.Logger, m *Metrics) *Tracker {
	return &Tracker{logger: logger, metrics: m, now: time.Now, proxies: make(map[streamKey]*Proxy), changed: make(chan struct{}, 1)}
}

// Proxies returns a copy of every connected proxy's status, sorted by node id,
// stream id, and state of the world before delta.
func (t *Tracker) Proxies() []Proxy {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Proxy, 0, len(t.proxies))
	for _, p := range t.proxies {
		c := *p
		c.Types = maps.Clone(p.Types)
		c.owed = nil // the tracker's own
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Proxy) int {
		return cmp.Or(cmp.Compare(a.NodeID, b.NodeID), cmp.Compare(a.StreamID, b.StreamID), compareBool(a.Delta, b.Delta))
	})
	return out
}

// compareBool orders false before true.
func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	default:
		return -1
	}
}

// VersionFunc returns the version a proxy of class subscribed to names (or
// to everything, when wildcard) should hold; Cache.VersionFor is one.
type VersionFunc func(typeURL string, class Class, names []string, wildcard bool) string

// OnNack sets a function called, outside the tracker's lock, for every
// NACK. Set it before serving.
func (t *Tracker) OnNack(f func(node, typeURL, err string)) { t.onNack = f }

// Changed is signalled after ACKs, NACKs and disconnects, so a caller
// waiting on Pending knows when to look again.
func (t *Tracker) Changed() <-chan struct{} { return t.changed }

func (t *Tracker) signal() {
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

// streamKey names a stream. go-control-plane numbers its state-of-the-world
// and its delta streams apart, each from 1: the first stream of each has
// id 1.
type streamKey struct {
	id    int64
	delta bool
}

func (t *Tracker) open(ctx context.Context, key streamKey, typeURL string) {
	p := &Proxy{StreamID: key.id, Delta: key.delta, ConnectedAt: t.now(), Types: make(map[string]TypeStatus), defaultType: typeURL}
	if key.delta {
		p.owed = new([owedTypes]deltaOwed)
	}
	if pr, ok := peer.FromContext(ctx); ok && pr.Addr != nil {
		p.Address = pr.Addr.String()
	}
	t.mu.Lock()
	t.proxies[key] = p
	t.mu.Unlock()
	t.metrics.ConnectedStreams.Inc()
}

func (t *Tracker) closed(key streamKey) {
	t.mu.Lock()
	p, ok := t.proxies[key]
	delete(t.proxies, key)
	t.mu.Unlock()
	if ok {
		t.metrics.ConnectedStreams.Dec()
		t.logger.Info("proxy disconnected", "node", p.NodeID, "stream", key.id, "delta", key.delta)
		t.signal()
	}
}

// request records an ACK or NACK carried by a request. nonce is the response
// it answers ("" for the first request of a type on a stream); version is the
// version the client reports as applied. On a delta stream, it returns the
// names the stream is owed (see deltaOwed), and a stream that is owed names
// has not applied the version it ACKs; a NACK of a response older than the
// last is recorded too, as the client holds less than the newer response
// assumed.
func (t *Tracker) request(key streamKey, node *corev3.Node, typeURL, nonce, version string, errDetail string, subscribe func(st *TypeStatus, first bool)) (owed []string) {
	var afterUnlock func()
	t.mu.Lock()
	defer func() {
		t.mu.Unlock()
		if afterUnlock != nil {
			afterUnlock()
		}
	}()
	p, ok := t.proxies[key]
	if !ok {
		return nil
	}
	p.changes++
	typeURL = cmp.Or(typeURL, p.defaultType)
	st, seen := p.Types[typeURL]
	resubscribe(&st, typeURL, !seen, subscribe)
	p.Types[typeURL] = st
	var answered string // the version of the delta response nonce names
	if o := p.deltaOwed(typeURL); o != nil {
		owed, answered = o.after(nonce, errDetail != "", st)
	}
	if node != nil && p.NodeID == "" {
		p.NodeID, p.Cluster, p.UserAgent, p.Class = node.GetId(), node.GetCluster(), node.GetUserAgentName(), ClassOf(node)
		t.logger.Info("proxy connected", "node", p.NodeID, "stream", key.id, "delta", key.delta, "class", p.Class.String(), "address", p.Address)
	}
	switch {
	case nonce == "":
		// A new subscription; a reconnecting client reports what it holds.
		if version != "" {
			st.Acked, st.AckedAt = version, t.now()
		}
	case nonce != st.SentNonce && (errDetail == "" || answered == ""):
		return owed // answers an older response; a newer one is in flight
	case errDetail != "":
		afterUnlock = t.nacked(p, &st, typeURL, cmp.Or(answered, st.Sent), errDetail)
	case len(owed) == 0:
		st.Acked, st.AckedAt = st.Sent, t.now()
	}
	p.Types[typeURL] = st
	t.signal()
	return owed
}

// nacked records in st, p's status of typeURL, that p rejected version,
// and returns what to call once the tracker's lock is released.
func (t *Tracker) nacked(p *Proxy, st *TypeStatus, typeURL, version, errDetail string) (afterUnlock func()) {
	st.LastNack = &Nack{Version: version, Error: errDetail, At: t.now()}
	t.metrics.Nacks.WithLabelValues(typeLabel(typeURL)).Inc()
	t.logger.Warn("proxy rejected config", "node", p.NodeID, "stream", p.StreamID, "delta", p.Delta, "type", shortType(typeURL),
		"version", version, "error", errDetail)
	if t.onNack == nil {
		return nil
	}
	node := p.NodeID
	return func() { t.onNack(node, typeURL, errDetail) }
}

// response records a response sent on stream key; delta is the response
// itself over delta xDS, nil over state of the world.
func (t *Tracker) response(key streamKey, typeURL, version, nonce string, delta *discoveryv3.DeltaDiscoveryResponse) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.proxies[key]
	if !ok {
		return
	}
	typeURL = cmp.Or(typeURL, p.defaultType)
	if o := p.deltaOwed(typeURL); o != nil && delta != nil {
		o.sent(delta)
	}
	p.changes++
	st := p.Types[typeURL]
	st.Sent, st.SentNonce, st.SentAt = version, nonce, t.now()
	p.Types[typeURL] = st
	t.metrics.Responses.WithLabelValues(typeLabel(typeURL)).Inc()
}

// OnStreamOpen implements serverv3.Callbacks.
func (t *Tracker) OnStreamOpen(ctx context.Context, id int64, typeURL string) error {
	t.open(ctx, streamKey{id, false}, typeURL)
	return nil
}

// OnStreamClosed implements serverv3.Callbacks.
func (t *Tracker) OnStreamClosed(id int64, _ *corev3.Node) { t.closed(streamKey{id, false}) }

// OnDeltaStreamOpen implements serverv3.Callbacks.
func (t *Tracker) OnDeltaStreamOpen(ctx context.Context, id int64, typeURL string) error {
	t.open(ctx, streamKey{id, true}, typeURL)
	return nil
}

// OnDeltaStreamClosed implements serverv3.Callbacks.
func (t *Tracker) OnDeltaStreamClosed(id int64, _ *corev3.Node) { t.closed(streamKey{id, true}) }

// OnStreamRequest implements serverv3.Callbacks.
func (t *Tracker) OnStreamRequest(id int64, req *discoveryv3.DiscoveryRequest) error {
	t.request(streamKey{id, false}, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), req.GetVersionInfo(), req.GetErrorDetail().GetMessage(),
		func(st *TypeStatus, _ bool) { subscribeSotw(st, req.GetResourceNames()) })
	return nil
}

// resubscribe applies subscribe to st, the status of typeURL, and keeps its
// selection current. Most requests are ACKs that repeat the subscription:
// those keep the selection they have.
func resubscribe(st *TypeStatus, typeURL string, first bool, subscribe func(st *TypeStatus, first bool)) {
	wildcard, names := st.Wildcard, st.Names
	subscribe(st, first)
	if first || st.Wildcard != wildcard || !slices.Equal(st.Names, names) {
		st.selection = selectionOf(typeURL, st.Wildcard, st.Names)
	}
}

// selectionOf returns the handle of a subscription. Every part is length
// prefixed, so distinct subscriptions never share a handle.
func selectionOf(typeURL string, wildcard bool, names []string) unique.Handle[string] {
	b := appendPart(strconv.AppendBool(nil, wildcard), typeURL)
	for _, n := range names {
		b = appendPart(b, n)
	}
	return unique.Make(string(b))
}

func appendPart(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	return append(append(b, ':'), s...)
}

// subscribeSotw records a state-of-the-world subscription: every request
// carries the full list of names; "*", or no names before any were named,
// means all.
func subscribeSotw(st *TypeStatus, names []string) {
	if len(names) == 0 && !st.named {
		st.Wildcard = true // legacy wildcard: nothing named yet
		return
	}
	st.named = true
	if !st.Wildcard && slices.Equal(names, st.Names) {
		return // an ACK repeating the subscription, as most requests are
	}
	st.Wildcard = slices.Contains(names, wildcardName)
	st.Names = slices.Sorted(slices.Values(slices.DeleteFunc(slices.Clone(names), isWildcardName)))
}

// subscribeDelta applies an incremental subscription change; a first
// request without names subscribes to all.
func subscribeDelta(st *TypeStatus, first bool, subscribe, unsubscribe []string) {
	if first && len(subscribe) == 0 {
		st.Wildcard = true
	}
	names := make(map[string]bool, len(st.Names))
	for _, n := range st.Names {
		names[n] = true
	}
	for _, n := range subscribe {
		if n == wildcardName {
			st.Wildcard = true
		} else {
			names[n] = true
		}
	}
	for _, n := range unsubscribe {
		if n == wildcardName {
			st.Wildcard = false
		}
		delete(names, n)
	}
	st.Names = slices.Sorted(maps.Keys(names))
}

const wildcardName = "*"

func isWildcardName(n string) bool { return n == wildcardName }

// OnStreamResponse implements serverv3.Callbacks.
func (t *Tracker) OnStreamResponse(_ context.Context, id int64, req *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
	t.response(streamKey{id, false}, req.GetTypeUrl(), resp.GetVersionInfo(), resp.GetNonce(), nil)
}

// OnStreamDeltaRequest implements serverv3.Callbacks. Delta requests carry no
// version, so an ACK applies the version sent with the nonce it echoes. The
// names the stream is owed go to onDeltaOwed, as the server is about to
// watch for this request.
func (t *Tracker) OnStreamDeltaRequest(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
	owed := t.request(streamKey{id, true}, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), "", req.GetErrorDetail().GetMessage(),
		func(st *TypeStatus, first bool) {
			subscribeDelta(st, first, req.GetResourceNamesSubscribe(), req.GetResourceNamesUnsubscribe())
		})
	if len(owed) > 0 && t.onDeltaOwed != nil {
		t.onDeltaOwed(req, owed)
	}
	return nil
}

// OnStreamDeltaResponse implements serverv3.Callbacks.
func (t *Tracker) OnStreamDeltaResponse(id int64, req *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
	t.response(streamKey{id, true}, req.GetTypeUrl(), resp.GetSystemVersionInfo(), resp.GetNonce(), resp)
}

// OnFetchRequest implements serverv3.Callbacks.
func (t *Tracker) OnFetchRequest(context.Context, *discoveryv3.DiscoveryRequest) error { return nil }

// OnFetchResponse implements serverv3.Callbacks.
func (t *Tracker) OnFetchResponse(*discoveryv3.DiscoveryRequest, *discoveryv3.DiscoveryResponse) {}

// typeLabel turns a type URL into the label of the metrics counted by
// type: the short name of a type weir serves (orderTypes), such as
// "Cluster", or "other". A client may ask for any type, and is answered;
// were each made-up type a label, one client could add series without end.
func typeLabel(typeURL string) string {
	if !slices.Contains(orderTypes[:], typeURL) {
		return "other"
	}
	return shortType(typeURL)
}

// shortType turns a type URL into its message's short name, such as
// "Cluster".
func shortType(typeURL string) string {
	for i := len(typeURL) - 1; i >= 0; i-- {
		if typeURL[i] == '.' {
			return typeURL[i+1:]
		}
	}
	return typeURL
}
