package xds

import (
	"slices"
	"unique"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// Looking at the whole fleet: which proxies have applied what they should
// hold. The publisher looks after ACKs from thousands of proxies, so a look
// costs one version per distinct subscription, not one per proxy, and
// allocates per proxy only when it has to list them.

// pendingTypes are the types whose application moves a bridge on: a gRPC
// client ACKs routes before it has fetched the clusters they name, so its
// clusters and endpoints count too.
var pendingTypes = []string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.RouteType}

// fleetStatus is one look at the connected proxies.
type fleetStatus struct {
	// pending counts the proxies that have not applied the clusters,
	// endpoints or routes they should hold; nodes lists their node ids,
	// sorted and without repeats, when the look was asked to list them.
	pending int
	nodes   []string
	// synced of total proxies hold, for every type they subscribe to, the
	// version they should.
	synced, total int
}

// judgement is what a look at the fleet found of one proxy: whether it is
// in sync and whether it is pending, as of the proxy's changes-th change
// and the snapshot whose version is epoch.
type judgement struct {
	epoch           string
	changes         uint64
	synced, pending bool
}

// fleet looks at every connected proxy against the versions current says
// they should hold, and, unless needs is nil, the subscriptions what they
// hold needs (see versionMemo.covered). It lists pending node ids only
// when list is set. epoch names the versions current gives (the
// snapshot's version): a proxy that has not changed since a look with the
// same epoch is judged as it was then, which most proxies are while ACKs
// of a push come in. An empty epoch judges every proxy afresh.
func (t *Tracker) fleet(current VersionFunc, needs NeedsFunc, epoch string, list bool) fleetStatus {
	memo := newVersionMemo(current)
	memo.needs = needs
	var f fleetStatus
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range t.proxies {
		if len(p.Types) == 0 {
			continue
		}
		f.total++
		j := p.judged
		if epoch == "" || j.epoch != epoch || j.changes != p.changes {
			j = judgement{epoch: epoch, changes: p.changes}
			j.synced, j.pending = memo.look(p)
			p.judged = j
		}
		synced, pending := j.synced, j.pending
		if synced {
			f.synced++
		}
		if pending {
			f.pending++
			if list {
				f.nodes = append(f.nodes, p.NodeID)
			}
		}
	}
	slices.Sort(f.nodes)
	f.nodes = slices.Compact(f.nodes)
	return f
}

// Pending returns, sorted, the node ids of connected proxies subscribed to
// typeURL that have not applied the version current says they should hold.
// A proxy that NACKed the last version it was sent is not waited for.
func (t *Tracker) Pending(typeURL string, current VersionFunc) []string {
	memo := newVersionMemo(current)
	t.mu.Lock()
	defer t.mu.Unlock()
	var pending []string
	for _, p := range t.proxies {
		if memo.awaited(typeURL, p) {
			pending = append(pending, p.NodeID)
		}
	}
	slices.Sort(pending)
	return pending
}

// versionMemo remembers, for one look at the fleet, the version each
// distinct subscription should hold: thousands of proxies subscribe alike,
// and working out a version hashes every name subscribed to.
type versionMemo struct {
	current  VersionFunc
	versions map[memoKey]string
	needs    NeedsFunc         // nil: nothing is needed
	covers   map[coverKey]bool // see covered
}

// coverKey is a subscription of one type and one of the type that follows
// it (see nextType).
type coverKey struct{ held, next unique.Handle[string] }

type memoKey struct {
	selection unique.Handle[string] // type, wildcard and names
	class     Class
}

func newVersionMemo(current VersionFunc) *versionMemo {
	return &versionMemo{current: current, versions: make(map[memoKey]string)}
}

// version returns the version a proxy of class with status st of typeURL
// should hold.
func (m *versionMemo) version(typeURL string, class Class, st TypeStatus) string {
	k := memoKey{st.selection, class}
	v, ok := m.versions[k]
	if !ok {
		v = m.current(typeURL, class, st.Names, st.Wildcard)
		m.versions[k] = v
	}
	return v
}

// look reports whether p is in sync — it holds, for every type it
// subscribes to, the version it should — and whether it is pending: it has
// not applied the clusters, endpoints or routes it should hold.
func (m *versionMemo) look(p *Proxy) (synced, pending bool) {
	synced = true
	for typeURL, st := range p.Types {
		if !st.subscribed() {
			continue // subscribed to nothing
		}
		holds := st.Sent != "" && st.Acked == m.version(typeURL, p.Class, st) && m.covered(p, typeURL, st)
		synced = synced && holds
		pending = pending || (!holds && awaits(st) && slices.Contains(pendingTypes, typeURL))
	}
	return synced, pending
}

// covered reports whether p subscribes to everything that what it holds of
// typeURL, subscribed as st, names in the type that follows (see
// nextType): the clusters of its routes, the endpoints of its clusters. A
// gRPC client ACKs routes before it subscribes to the clusters they name,
// and clusters before their endpoints, and it routes as before until it
// has them all: were it counted as holding the routes meanwhile, a bridge
// would move on before the client set up the clusters it warms, and its
// first RPCs to them would fail. A proxy that does not subscribe to the
// following type at all, or does by wildcard, is covered.
func (m *versionMemo) covered(p *Proxy, typeURL string, st TypeStatus) bool {
	next, ok := nextType[typeURL]
	if !ok || m.needs == nil {
		return true
	}
	ns, ok := p.Types[next]
	if !ok || !ns.subscribed() || ns.Wildcard {
		return true
	}
	k := coverKey{st.selection, ns.selection}
	c, ok := m.covers[k]
	if !ok {
		c = sortedSubset(m.needs(typeURL, st.Names, st.Wildcard), ns.Names)
		if m.covers == nil {
			m.covers = make(map[coverKey]bool)
		}
		m.covers[k] = c
	}
	return c
}

// sortedSubset reports whether every one of sub is in set; both are sorted.
func sortedSubset(sub, set []string) bool {
	for _, s := range sub {
		i, found := slices.BinarySearch(set, s)
		if !found {
			return false
		}
		set = set[i+1:]
	}
	return true
}

// awaited reports whether p is subscribed to typeURL and has not applied
// the version it should hold.
func (m *versionMemo) awaited(typeURL string, p *Proxy) bool {
	st, ok := p.Types[typeURL]
	return ok && st.subscribed() && awaits(st) && st.Acked != m.version(typeURL, p.Class, st)
}

// awaits reports whether st, if it does not hold what it should, is waited
// for: it was sent a version, and did not reject it (a proxy that NACKed
// will not ACK).
func awaits(st TypeStatus) bool {
	return st.Sent != "" && (st.LastNack == nil || st.LastNack.Version != st.Sent)
}
