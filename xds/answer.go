package xds

import (
	"maps"
	"slices"
	"strings"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weir-mesh/weir/snapshot"
)

// What a watch is answered with: the selection a subscription covers, its
// version, and whether the client already holds it.

// absent is the version recorded for a name a stream asked for that does
// not exist.
const absent = ""

// sotwResponse returns the response a state-of-the-world watch needs, or nil
// when the client already holds exactly what it would be sent. The first
// request of a stream (no response nonce) is always answered.
//
// named, unless nil, is the watch's memory of a type set its subscription
// names whole (see namedWhole).
func sotwResponse(p *prepared, req *cachev3.Request, sub cachev3.Subscription, named *namedWhole) cachev3.Response {
	ts := p.servedTypeSet(req.GetTypeUrl(), ClassOf(req.GetNode()))
	selected := selectEntries(ts, sub, named)
	version := versionOf(ts, selected, sub.IsWildcard())
	returned := returnedBy(ts, selected, sub, version)
	held := sub.ReturnedResources()
	if !needsAnswer(req, version, p.sameContent(returned, held)) {
		return nil
	}
	var anys []*anypb.Any
	if incremental(req) && req.GetVersionInfo() == heldVersion(held) {
		anys = p.changedAnys(selected, held)
	} else {
		anys = make([]*anypb.Any, 0, selected.Len())
		for e := range selected.Values() {
			anys = append(anys, e.any)
		}
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

// What a stream was last sent of a type is kept with its subscription, as
// go-control-plane's returned resources: name → content hash, and absent
// for a name asked for and not found, so that a name added later, found
// or not, changes what the stream holds and is answered. An Envoy holds
// every cluster and every cluster's endpoints; a map of them per stream
// would be most of what the stream costs. So a full selection — every
// entry of the type, by wildcard or by naming each of them — is kept as
// one name (its first entry's: a named subscription names it, so it stays
// when go-control-plane drops names no longer subscribed, and a wildcard's
// are never dropped) mapped to fullSelection and the version, which
// identifies the content; sameContent compares the two forms.
const fullSelection = "\x00all:"

// returnedBy returns what a response of version carrying selected from ts
// to sub will have sent, as kept with the subscription.
func returnedBy(ts *typeSet, selected snapshot.List[entry], sub cachev3.Subscription, version string) map[string]string {
	names := sub.SubscribedResources()
	full := sub.IsWildcard() || selected.Len() == ts.entries.Len() && len(names) == selected.Len()
	if full && selected.Len() > 0 {
		return map[string]string{selected.At(0).name: fullSelection + version}
	}
	returned := make(map[string]string, selected.Len())
	for e := range selected.Values() {
		returned[e.name] = e.hash
	}
	if !sub.IsWildcard() {
		for name := range names {
			if _, ok := returned[name]; !ok {
				returned[name] = absent
			}
		}
	}
	return returned
}

// changedAnys returns the resources of selected whose content differs
// from what held (see returnedBy) says the client holds. When held is a
// full selection of a type set as long as selected, only the parts of
// selected that share no node with it are looked at (see
// snapshot.Changed): where selected follows it, as the cache's type sets
// follow each other, that is one change's entries — for an Envoy's
// endpoints, one change's assignments rather than the catalog's.
func (p *prepared) changedAnys(selected snapshot.List[entry], held map[string]string) []*anypb.Any {
	var anys []*anypb.Any
	holds := p.heldHash(held)
	add := func(e entry) {
		if holds(e.name) != e.hash {
			anys = append(anys, e.any)
		}
	}
	if was := p.recent[fullVersion(held)]; was != nil {
		if changes, ok := snapshot.Changed(selected, was.entries); ok {
			for i := range changes {
				add(selected.At(i))
			}
			return anys
		}
	}
	for e := range selected.Values() {
		add(e)
	}
	return anys
}

// heldHash returns a function telling the content hash of the resource
// named name that a stream holds, given what it was last sent (see
// returnedBy); "" when it holds none, or when its full selection is too
// old for the cache to remember its content.
func (p *prepared) heldHash(held map[string]string) func(name string) string {
	if version := fullVersion(held); version != "" {
		ts := p.recent[version]
		return func(name string) string {
			e, _ := ts.lookup(name)
			return e.hash
		}
	}
	return func(name string) string { return held[name] }
}

// incremental reports whether a state-of-the-world response to req may
// leave out the resources the client already holds. For routes and
// endpoints it may: unlike listeners and clusters, a resource missing from
// such a response is not removed but kept as it was (the xDS protocol's
// SotW rules; Envoy and grpc-go follow them). So a change to one service's
// endpoints sends one ClusterLoadAssignment to each Envoy, not all of them.
// The client must hold what it was last sent, which the caller checks too
// (see heldVersion). The first request of a stream and a NACK get
// everything.
func incremental(req *cachev3.Request) bool {
	switch req.GetTypeUrl() {
	case resourcev3.EndpointType, resourcev3.RouteType:
		return req.GetResponseNonce() != "" && req.GetErrorDetail() == nil
	}
	return false
}

// heldVersion returns the version_info of the response that sent held (see
// returnedBy), which a client reports while it holds what it was last
// sent. After a NACK it reports an older one, the last it accepted, in its
// later requests too: they carry no error, but the client holds less than
// held says.
func heldVersion(held map[string]string) string {
	if version := fullVersion(held); version != "" {
		return version
	}
	var sent selectionSum
	for name, hash := range held {
		if hash != absent {
			e := newEntry(name, hash, nil)
			sent.add(&e)
		}
	}
	return sent.version()
}

// versionOf returns the version of a selection from ts. A selection of
// every entry (a wildcard, or an Envoy naming every cluster in EDS) is the
// whole sorted set, whose version is computed once per snapshot. An empty
// selection is hashed like any other: a type weir does not serve has no
// version of its own, and a named subscription to it must still get one.
func versionOf(ts *typeSet, selected snapshot.List[entry], wildcard bool) string {
	if wildcard || selected.Len() > 0 && selected.Len() == ts.entries.Len() {
		return ts.version
	}
	return selectionVersion(selected.Values())
}

// needsAnswer reports whether a state-of-the-world request must be answered
// with version, given whether the stream was last sent the very content it
// would be sent now (same). The first request of a stream is always
// answered. After a NACK only new content is sent — re-sending what was
// rejected would start a resend storm. Otherwise the client is answered
// when the version it reports is not the one it should hold (content
// changed, or names were dropped from its subscription) or when it asks
// for names it was not told about.
func needsAnswer(req *cachev3.Request, version string, same bool) bool {
	switch {
	case req.GetResponseNonce() == "":
		return true
	case req.GetErrorDetail() != nil:
		return !same
	default:
		return req.GetVersionInfo() != version || !same
	}
}

// sameContent reports whether want and held (see returnedBy) stand for the
// same resources, whichever form each is kept in: a full selection is kept
// as its version, and the same resources named one by one are the same
// content. A full selection too old to remember is not.
func (p *prepared) sameContent(want, held map[string]string) bool {
	if maps.Equal(want, held) {
		return true
	}
	wantFull, heldFull := fullVersion(want), fullVersion(held)
	switch {
	case wantFull == "" && heldFull == "", wantFull != "" && heldFull != "":
		return false // the same form, and not equal
	case wantFull != "":
		ts := p.recent[wantFull]
		return ts != nil && maps.Equal(ts.hashes(), held)
	default:
		ts := p.recent[heldFull]
		return ts != nil && maps.Equal(want, ts.hashes())
	}
}

// fullVersion returns the version of the full selection returned stands
// for, "" when it lists resources one by one.
func fullVersion(returned map[string]string) string {
	if len(returned) != 1 {
		return ""
	}
	for _, v := range returned {
		if version, ok := strings.CutPrefix(v, fullSelection); ok {
			return version
		}
	}
	return ""
}

// deltaAnswer returns the incremental response a delta watch needs (see
// deltaResponse), or nil. owed are the names the stream is owed after
// NACKs (see deltaOwed), whose resources it holds at versions weir does
// not know. They do not make an answer on their own, as re-sending what was
// just rejected would start a resend storm: a watch is answered once the
// client's selection changes or it asks for something, and then the answer
// sends the owed names' resources again, or removes them again, with the
// change. A client that ACKs it holds what its version says, as over the
// state of the world.
func deltaAnswer(p *prepared, req *cachev3.DeltaRequest, sub cachev3.Subscription, owed []string) cachev3.DeltaResponse {
	resp := deltaResponse(p, req, sub, nil)
	if resp == nil || len(owed) == 0 {
		return resp
	}
	return deltaResponse(p, req, sub, owed)
}

// unknownHeld stands, among the versions a client holds, for one weir does
// not know: no resource has it, so the resource is sent, or, if it no
// longer exists, reported removed.
const unknownHeld = "?"

// deltaResponse returns the incremental response a watch needs: resources
// whose content the client lacks, names it holds that no longer exist, and
// names it newly asked for that do not exist. The client holds what sub
// returned, but for the names in unknown (see unknownHeld). It returns nil
// when there is nothing to say, except that the first request of a stream
// is always answered.
func deltaResponse(p *prepared, req *cachev3.DeltaRequest, sub cachev3.Subscription, unknown []string) cachev3.DeltaResponse {
	ts := p.servedTypeSet(req.GetTypeUrl(), ClassOf(req.GetNode()))
	known := sub.ReturnedResources()
	if len(unknown) > 0 {
		known = maps.Clone(known)
		for _, name := range unknown {
			known[name] = unknownHeld
		}
	}
	next := make(map[string]string)
	var changed []*discoveryv3.Resource
	selected := selectEntries(ts, sub, nil)
	heldSelected := 0 // names known holds that are selected
	for e := range selected.Values() {
		next[e.name] = e.hash
		version, held := known[e.name]
		if held {
			heldSelected++
		}
		if version != e.hash {
			changed = append(changed, &discoveryv3.Resource{Name: e.name, Version: e.hash, Resource: e.any})
		}
	}
	removed := missingNames(ts, sub, known, next, heldSelected == len(known), selected.Len())
	// A request that unsubscribes is answered even with nothing to send:
	// the client's ACK of the answer's version, that of its smaller
	// selection, tells that it holds what it should.
	// A NACK is not: the answer would carry, unchanged, what it rejected.
	unsubscribes := len(req.GetResourceNamesUnsubscribe()) > 0 && req.GetErrorDetail() == nil
	if len(changed) == 0 && len(removed) == 0 && req.GetResponseNonce() != "" && !unsubscribes {
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
// missing name in next as absent. allHeldSelected tells that every name
// known holds is among the selected entries, which exist, and selected is
// how many entries the subscription selected: when the client holds only
// what exists, or a named subscription found every name it asks for, the
// names need not be looked up one by one — for an Envoy's endpoints, as
// many as the catalog has clusters, per stream and change.
func missingNames(ts *typeSet, sub cachev3.Subscription, known, next map[string]string, allHeldSelected bool, selected int) []string {
	var removed []string
	if !allHeldSelected {
		for name, version := range known {
			if _, ok := ts.lookup(name); !ok && version != absent {
				removed = append(removed, name)
			}
		}
	}
	if names := sub.SubscribedResources(); sub.IsWildcard() || len(names) != selected {
		for name := range names {
			if _, ok := ts.lookup(name); ok {
				continue
			}
			next[name] = absent
			if _, told := known[name]; !told {
				removed = append(removed, name)
			}
		}
	}
	slices.Sort(removed)
	return slices.Compact(removed)
}
