package admin

import (
	"context"
	"maps"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/weir-mesh/weir/policy/admin/v1"
)

// Sync verdicts, from best to worst.
const (
	Synced = "SYNCED" // holds what it should hold now
	Stale  = "STALE"  // has not (yet) applied what it should hold now
	Nacked = "NACKED" // rejected the last version it was sent
)

var verdictRank = map[string]int{Synced: 0, Stale: 1, Nacked: 2}

// ListProxies implements adminv1.AdminServiceServer.
func (s *Server) ListProxies(context.Context, *adminv1.ListProxiesRequest) (*adminv1.ListProxiesResponse, error) {
	out := &adminv1.ListProxiesResponse{}
	if s.cfg.Fleet == nil {
		return out, nil
	}
	for _, p := range s.cfg.Fleet.Proxies() {
		out.Proxies = append(out.Proxies, s.proxy(p))
	}
	return out, nil
}

// proxy renders p with a verdict per type and overall: the worst of its
// types; a proxy that subscribed to nothing yet is STALE.
func (s *Server) proxy(p Proxy) *adminv1.Proxy {
	out := &adminv1.Proxy{NodeId: p.NodeID, Cluster: p.Cluster, Address: p.Address, Kind: p.Kind,
		ConnectedSince: timestamppb.New(p.ConnectedAt), Verdict: Stale}
	subscribed := false
	for _, typeURL := range slices.Sorted(maps.Keys(p.Types)) {
		st := p.Types[typeURL]
		ts := &adminv1.TypeStatus{Type: shortType(typeURL), VersionSent: st.Sent, VersionAcked: st.Acked,
			Verdict: s.verdict(p.Kind, typeURL, st)}
		if st.Nack != nil {
			ts.LastNackError, ts.LastNackVersion = st.Nack.Error, st.Nack.Version
		}
		out.Types = append(out.Types, ts)
		if !st.Wildcard && len(st.Names) == 0 {
			continue // subscribed to nothing: holds nothing, owes nothing
		}
		if !subscribed || verdictRank[ts.Verdict] > verdictRank[out.Verdict] {
			out.Verdict = ts.Verdict
		}
		subscribed = true
	}
	return out
}

// verdict judges one type of one proxy.
func (s *Server) verdict(kind, typeURL string, st TypeState) string {
	switch {
	case !st.Wildcard && len(st.Names) == 0:
		return Synced
	case st.Nack != nil && st.Sent != "" && st.Nack.Version == st.Sent:
		return Nacked
	case st.Sent != "" && st.Acked == s.cfg.Fleet.VersionFor(typeURL, kind, st.Names, st.Wildcard):
		return Synced
	}
	return Stale
}

// appliedFraction is the fraction of connected proxies that hold what they
// should now, as the publisher counts it (see Fleet); 1 without a fleet,
// where none are connected.
func (s *Server) appliedFraction() float64 {
	if s.cfg.Fleet == nil {
		return 1
	}
	return s.cfg.Fleet.AppliedFraction()
}

// shortType turns a type URL into its message name, such as "Cluster".
func shortType(typeURL string) string {
	return typeURL[strings.LastIndex(typeURL, ".")+1:]
}
