package snapshot

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// recount checks the consistency of r, the resources built from built
// (services sorted by name, which differ from the last build's by ch),
// routes and sidecar (see Consistent), and
// brings b's ledger from the last build's resources to them. It counts
// only what changed (see ledgerChange). If r is not consistent, it leaves
// the ledger as it was and returns why, as Consistent would. Should the
// ledger find a fault that Consistent does not, it is dropped, to be
// counted anew on the next build, and recounted is true: a bug, reported
// rather than left to refuse every build.
func (b *Builder) recount(r Resources, built List[*builtService], ch serviceChanges, routes *SharedRoutes, sidecar *listenerv3.Listener) (recounted bool, err error) {
	c := b.ledgerChange(built, ch, routes, sidecar)
	last := b.ledger
	if c.anew {
		b.ledger = ledger{}
	}
	// What is taken away was counted consistent, so it has no errors of
	// its own to count again.
	visitGone := func(v visit) []error { return visitChanges(c.gone, c.goneFrame, v, false, c.counted) }
	visitCame := func(v visit) []error { return visitChanges(c.came, c.cameFrame, v, true, c.counted) }
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
	gone, came           []*builtService
	goneFrame, cameFrame *frame // nil if the frame is unchanged
	counted              bool   // whether RouteConfigName's domains are counted (see visitDomains)
	anew                 bool   // whether to count from nothing: came and cameFrame are everything
}

// ledgerChange returns what changes from the last build to one of built
// (whose services differ from the last build's by ch), routes and
// sidecar: the services whose builtService is new or gone and, if the
// shared route configuration or the sidecar listener is new, the frame.
// The first build, and one whose shared route configuration crosses
// between one virtual host and more (which decides whether its domains are
// counted), count everything anew.
func (b *Builder) ledgerChange(built List[*builtService], ch serviceChanges, routes *SharedRoutes, sidecar *listenerv3.Listener) ledgerChange {
	c := ledgerChange{counted: routes.Hosts().Len() > 1}
	c.anew = b.ledger.tallies[0] == nil || c.counted != (b.routes.Hosts().Len() > 1)
	if c.anew {
		c.came = built.Slice()
		c.cameFrame = &frame{routes, sidecar}
		return c
	}
	c.gone, c.came = ch.gone, ch.came
	if routes != b.routes || sidecar != b.sidecar.msg {
		c.goneFrame = &frame{b.routes, b.sidecar.msg}
		c.cameFrame = &frame{routes, sidecar}
	}
	return c
}

// frame is what a snapshot has besides its services' resources.
type frame struct {
	routes  *SharedRoutes // every service's virtual host (RouteConfigName)
	sidecar *listenerv3.Listener
}

// visitChanges visits services and, unless nil, f, as visitResources would
// visit them within a snapshot, and returns the errors of those wrong on
// their own if check is set. counted is whether the ledger counts the
// services' domains within RouteConfigName.
func visitChanges(services []*builtService, f *frame, v visit, check, counted bool) []error {
	var errs []error
	for _, bs := range services {
		errs = append(errs, visitService(bs, v, check, counted)...)
	}
	if f != nil {
		errs = append(errs, visitFrame(f, v, check, counted)...)
	}
	return errs
}

// visitService visits what bs adds to a snapshot: its clusters,
// assignments, API listener and route configuration, and its virtual host
// within RouteConfigName, which wants its clusters only once, as
// visitResources counts them.
func visitService(bs *builtService, v visit, check, counted bool) []error {
	for _, c := range bs.clusters {
		visitCluster(c.msg, v)
	}
	for _, e := range bs.endpoints {
		visitAssignment(e.msg, v)
	}
	hcms := func(*listenerv3.Listener) ([]*hcmv3.HttpConnectionManager, error) { return bs.hcms, nil }
	errs := visitListener(bs.listener.msg, apiName, hcms, v)
	// Its own route configuration wants bs.vhost's clusters for
	// RouteConfigName too.
	errs = append(errs, visitRoutes(bs.routes.msg.GetName(), bs.routes.msg.GetVirtualHosts(), v, nil)...)
	if counted {
		visitDomains(RouteConfigName, bs.vhost, v)
	}
	if !check {
		return nil
	}
	return errs
}

// visitFrame visits f's sidecar listener and its route configuration, but
// not its virtual hosts, which visitService visits with their services.
// If its domains are not counted, they are checked on their own.
func visitFrame(f *frame, v visit, check, counted bool) []error {
	errs := visitListener(f.sidecar, sidecarName, connectionManagers, v)
	v(key{kind: routesName, name: f.routes.Name()}, false, origin{noun: nouns[routesName], name: f.routes.Name()})
	if !check {
		return nil
	}
	if counted {
		return errs
	}
	for vh := range f.routes.Hosts().Values() { // one at most
		errs = append(errs, duplicateDomains(f.routes.Name(), vh)...)
	}
	return errs
}
