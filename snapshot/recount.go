package snapshot

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// recount checks the consistency of r, the resources built from built
// (services sorted by name, which differ from the last build's by ch) and
// sidecar (see Consistent), and brings b's ledger from the last build's
// resources to them. It counts only what changed (see ledgerChange). If r
// is not consistent, it leaves the ledger as it was and returns why, as
// Consistent would. Should the ledger find a fault that Consistent does
// not, it is dropped, to be counted anew on the next build, and recounted
// is true: a bug, reported rather than left to refuse every build.
func (b *Builder) recount(r Resources, built List[*builtService], ch serviceChanges, sidecar *listenerv3.Listener) (recounted bool, err error) {
	c := b.ledgerChange(built, ch, sidecar)
	last := b.ledger
	if c.anew {
		b.ledger = ledger{}
	}
	// What is taken away was counted consistent, so it has no errors of
	// its own to count again.
	visitGone := func(v visit) []error { return visitChanges(c.gone, c.goneSidecar, v, false) }
	visitCame := func(v visit) []error { return visitChanges(c.came, c.cameSidecar, v, true) }
	b.ledger.count(-1, r, visitGone)
	b.ledger.count(1, r, visitCame)
	if c.anew && b.ledger.ok() || !c.anew && b.ledger.recheck(visitGone) && b.ledger.recheck(visitCame) {
		return false, nil
	}
	if c.anew {
		b.ledger = last
	} else {
		b.ledger.count(-1, r, visitCame)
		b.ledger.count(1, r, visitGone)
		b.ledger.recheck(visitCame) // forgets names only the new resources had
		b.ledger.broken = 0         // as it was: every count it holds is consistent
	}
	if err := Consistent(r); err != nil {
		return false, err
	}
	b.ledger = ledger{}
	return true, nil
}

// ledgerChange is what a build takes from and adds to a Builder's ledger.
type ledgerChange struct {
	gone, came               []*builtService
	goneSidecar, cameSidecar *listenerv3.Listener // nil if the sidecar listener is unchanged
	anew                     bool                 // whether to count from nothing: came and cameSidecar are everything
}

// ledgerChange returns what changes from the last build to one of built
// (whose services differ from the last build's by ch) and sidecar: the
// services whose builtService is new or gone and, if it is new, the
// sidecar listener. The first build counts everything anew.
func (b *Builder) ledgerChange(built List[*builtService], ch serviceChanges, sidecar *listenerv3.Listener) ledgerChange {
	if b.ledger.tallies[0] == nil {
		return ledgerChange{came: built.Slice(), cameSidecar: sidecar, anew: true}
	}
	c := ledgerChange{gone: ch.gone, came: ch.came}
	if sidecar != b.sidecar.msg {
		c.goneSidecar, c.cameSidecar = b.sidecar.msg, sidecar
	}
	return c
}

// visitChanges visits services and, unless nil, sidecar, as visitResources
// would visit them within a snapshot, and returns the errors of those
// wrong on their own if check is set.
func visitChanges(services []*builtService, sidecar *listenerv3.Listener, v visit, check bool) []error {
	var errs []error
	for _, bs := range services {
		errs = append(errs, visitService(bs, v, check)...)
	}
	if sidecar != nil {
		errs = append(errs, visitListener(sidecar, sidecarName, connectionManagers, v)...)
	}
	return errs
}

// visitService visits what bs adds to a snapshot: its clusters,
// assignments, API listener, route configuration and scopes.
func visitService(bs *builtService, v visit, check bool) []error {
	for _, c := range bs.clusters {
		visitCluster(c.msg, v)
	}
	for _, e := range bs.endpoints {
		visitAssignment(e.msg, v)
	}
	for _, sc := range bs.scopes {
		visitScope(sc.msg, v)
	}
	hcms := func(*listenerv3.Listener) ([]*hcmv3.HttpConnectionManager, error) { return bs.hcms, nil }
	errs := visitListener(bs.listener.msg, apiName, hcms, v)
	visitRouteConfiguration(bs.routes.msg, v)
	if !check {
		return nil
	}
	return append(errs, duplicateDomains(bs.routes.msg)...)
}
