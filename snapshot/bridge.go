package snapshot

import (
	"cmp"
	"fmt"
	"iter"
	"slices"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weir-mesh/weir/envoy"
	"github.com/weir-mesh/weir/policy"
)

// Bridge returns the snapshot to serve between prev and next so that no
// proxy ever routes to a cluster it does not have (make before break):
//
//   - A cluster that next routes traffic to but that no route of prev even
//     names is new to the clients: the bridge withholds its weight (keeping
//     prev's routing where nothing else is left, but for the clusters next
//     serves no endpoints of: with none left, next's routing) and names it
//     in its warming route (see envoy.WarmingRoute) instead, so that
//     clients set it up before any traffic depends on it. A match route to
//     such a cluster is left out of the bridge: its requests follow the
//     catch-all route meanwhile, as they did under prev. A sticky
//     service's combined cluster (see StickyVersion) is new in the same
//     way when stickiness is turned on.
//   - A cluster that prev names but routes no traffic to and serves no
//     endpoints of (every instance draining or critical), and that next
//     routes traffic to with serving endpoints, is withheld alike: the
//     bridge serves its endpoints, and its traffic waits until clients
//     have them.
//   - A cluster that prev or the bridge routes traffic to, and that next
//     would remove or leave without serving endpoints, stays with prev's
//     endpoints until proxies apply routes that no longer use it.
//
// Serving Bridge(prev, next), waiting for proxies to apply its routes, and
// repeating reaches next in at most three steps; Bridge returns next itself
// when no bridge is needed.
//
// stillRouted, unless nil, returns the clusters that proxies may still
// route to although prev does not — those of earlier snapshots not every
// proxy has applied yet — which the bridge keeps as well. Bridge calls it
// only when next removes a cluster or leaves one without serving endpoints.
func Bridge(prev, next *Snapshot, stillRouted func() []string) (*Snapshot, error) {
	return BridgeFrom(prev, next, stillRouted, nil)
}

// BridgeFrom is Bridge from a prev that proxies may not all have applied
// yet. earlier, unless nil, returns the snapshots served before prev that
// some proxy may still hold instead (nil once every proxy holds prev), and
// whether they are all of them (false when older ones are no longer
// known). A proxy that holds one of those has set up only the clusters its
// routes name: a cluster that prev names in a virtual host without
// routing traffic to it — one that prev's warming route warms — is set up
// only if each of them names it in that virtual host too, and is
// otherwise as new as one prev does not name at all, so the bridge
// withholds its traffic and warms it. earlier is asked only when a changed
// route gives traffic to such a cluster.
func BridgeFrom(prev, next *Snapshot, stillRouted func() []string, earlier func() ([]*Snapshot, bool)) (*Snapshot, error) {
	bridged := next.Resources
	withheld, err := withholdNew(&bridged, prev.Resources, earlier)
	if err != nil {
		return nil, fmt.Errorf("snapshot: bridge: %w", err)
	}
	leaving := func() []string {
		var still []string
		if stillRouted != nil {
			still = stillRouted()
		}
		return slices.Concat(RoutedClusters(prev.Resources), RoutedClusters(bridged), still)
	}
	kept := keepLeaving(&bridged, prev.Resources, leaving, func() []string { return RoutedClusters(next.Resources) })
	if withheld+kept == 0 {
		return next, nil
	}
	if err := Consistent(bridged); err != nil {
		return nil, fmt.Errorf("snapshot: bridge is inconsistent: %w", err)
	}
	version, err := contentVersion(bridged)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return &Snapshot{Resources: bridged, Version: version, Report: next.Report}, nil
}

// withholdNew replaces r's routes, Outbound's and Routes', with copies in
// which clusters that proxies have not set up (those no route of prev
// names; see also BridgeFrom) get no traffic. A match route to such a
// cluster is dropped (its requests follow the catch-all route, as they
// did in prev). A catch-all route left with no cluster takes
// prev's catch-all route of the same virtual host instead; a virtual host
// that prev did not have is new, and nothing routes to it yet. A route
// configuration or virtual host with nothing to withhold stays the very
// message it was, so that a service's own route configuration (see
// ServiceRouteConfigName) that a change does not touch is neither encoded
// nor sent again. It returns how many routes it changed, or the error of a
// virtual host it could not encode.
//
// Only what prev did not serve is looked at: a route configuration or
// virtual host that prev served as the very same message names no cluster
// prev does not, and the lists of a Builder's snapshots tell which
// messages are new (see Changed), so a change of one service costs a look
// at its routes, not at every route.
func withholdNew(r *Resources, prev Resources, earlier func() ([]*Snapshot, bool)) (int, error) {
	w := &withholder{prev: prev, next: r.Endpoints, earlier: earlier}
	changed := 0
	routes := r.Routes
	for i := range changedFrom(r.Routes, prev.Routes) {
		out, n := w.withholdIn(r.Routes.At(i))
		if n == 0 {
			continue
		}
		routes, changed = routes.Set(i, out), changed+n
	}
	r.Routes = routes
	if r.Outbound == nil || r.Outbound == prev.Outbound {
		return changed, nil
	}
	hosts, at, n := w.withholdInHosts(r.Outbound.Name(), r.Outbound.Hosts(), prev.Outbound.Hosts())
	if n == 0 {
		return changed, nil
	}
	var buf []byte
	out, err := r.Outbound.withHosts(&buf, hosts, slices.Values(at))
	if err != nil {
		return 0, err
	}
	r.Outbound = out
	return changed + n, nil
}

// withholder finds what prev served, building its indexes only when a
// new message needs them.
type withholder struct {
	prev       Resources
	next       List[*endpointv3.ClusterLoadAssignment]    // next's endpoints
	prevVhosts map[string]map[string]*routev3.VirtualHost // by route configuration, then by name
	known      []string                                   // ReferencedClusters(prev), once needed
	mainRoutes map[string]*routev3.Route                  // mainRoutes(prev), once needed
	// earlier returns the snapshots proxies may hold instead of prev (see
	// BridgeFrom); held and complete are what it returned, once asked.
	earlier  func() ([]*Snapshot, bool)
	asked    bool
	held     []*Snapshot
	complete bool
}

// withholdIn returns rc, or a copy of it with the routes withhold changes,
// and how many it changed. The copy shares the virtual hosts it does not
// change.
func (w *withholder) withholdIn(rc *routev3.RouteConfiguration) (*routev3.RouteConfiguration, int) {
	prevRC := w.prevRC(rc.GetName())
	if rc == prevRC {
		return rc, 0
	}
	hosts, _, changed := w.withholdInHosts(rc.GetName(), ListOf(rc.GetVirtualHosts()...), ListOf(prevRC.GetVirtualHosts()...))
	if changed == 0 {
		return rc, 0
	}
	out := withoutVirtualHosts(rc)
	out.VirtualHosts = hosts.Slice()
	return out, changed
}

// withholdInHosts returns hosts, the virtual hosts of the route
// configuration named rc, with copies in place of those in which withhold
// changes routes, the indexes of those, and how many routes it changed.
// prevHosts are prev's virtual hosts of rc.
func (w *withholder) withholdInHosts(rc string, hosts, prevHosts List[*routev3.VirtualHost]) (List[*routev3.VirtualHost], []int, int) {
	var at []int
	changed := 0
	out := hosts
	for i := range changedFrom(hosts, prevHosts) {
		vh := hosts.At(i)
		prevVH := w.prevVhost(rc, prevHosts, i, vh.GetName())
		if vh == prevVH || !w.namesUnknown(rc, vh, prevVH) {
			continue
		}
		withheld, n := w.withholdInHost(rc, vh, prevVH)
		if n == 0 {
			continue
		}
		out, at, changed = out.Set(i, withheld), append(at, i), changed+n
	}
	return out, at, changed
}

// withholdInHost returns a copy of vh with the routes withhold changes,
// and how many it changed. vh is a virtual host of the route
// configuration named rc; prevVH is prev's virtual host of that name, if
// it had one.
func (w *withholder) withholdInHost(rc string, vh, prevVH *routev3.VirtualHost) (*routev3.VirtualHost, int) {
	out := proto.Clone(vh).(*routev3.VirtualHost)
	prevMain := w.stillServing(w.prevMainRoute(vh.GetName(), prevVH))
	kept := make([]*routev3.Route, 0, len(out.GetRoutes()))
	changed := 0
	known := func(c string) bool { return w.setUp(rc, prevVH, c) }
	for _, route := range out.GetRoutes() {
		r, withheld := withhold(route, known, prevMain)
		if withheld {
			changed++
		}
		if r != nil {
			kept = append(kept, r)
		}
	}
	out.Routes = warmed(kept, namedClusters(vh))
	return out, changed
}

// namedClusters returns, sorted, every cluster a route of vh names.
func namedClusters(vh *routev3.VirtualHost) []string {
	var named []string
	for _, route := range vh.GetRoutes() {
		eachCluster(route, func(c string, _ uint32) { named = append(named, c) })
	}
	slices.Sort(named)
	return slices.Compact(named)
}

// warmed returns routes with their warming route naming those of named
// that the other routes no longer name: the clusters a bridge withholds
// traffic from stay named, so that clients set them up (or keep them)
// before the next snapshot routes to them.
func warmed(routes []*routev3.Route, named []string) []*routev3.Route {
	routes = slices.DeleteFunc(routes, func(r *routev3.Route) bool { return r.GetName() == envoy.WarmingRouteName })
	if warming := unrouted(named, routes); len(warming) > 0 {
		routes = append(routes, envoy.WarmingRoute(warming))
	}
	return routes
}

// namesUnknown reports whether a route of vh, a virtual host of the route
// configuration named rc, other than the warming route names a cluster
// that proxies have not set up (see setUp). prevVH is prev's virtual host
// of that name.
func (w *withholder) namesUnknown(rc string, vh, prevVH *routev3.VirtualHost) bool {
	for _, route := range vh.GetRoutes() {
		if route.GetName() == envoy.WarmingRouteName {
			continue
		}
		unknown := false
		eachCluster(route, func(c string, _ uint32) {
			unknown = unknown || !w.setUp(rc, prevVH, c)
		})
		if unknown {
			return true
		}
	}
	return false
}

// setUp reports whether proxies have set up cluster, for a virtual host of
// the route configuration named rc whose prev is prevVH: prevVH routes
// traffic to it (a bridge gave it traffic only once they had), or a route
// of prev names it and so does, in that virtual host, every earlier
// snapshot a proxy may hold instead (see BridgeFrom). A cluster that next
// serves endpoints of is set up only with serving endpoints too: one whose
// every instance was draining or critical, which no route gave traffic,
// gets its endpoints back before its traffic, or a gRPC client that
// applies the routes first fails calls to it ("no targets to pick
// from"). When next serves none of its endpoints either, traffic to it
// fails alike with or without a bridge (see policy.Spread), and waiting
// for endpoints that do not come would never reach next. prevVH, which
// names most of the clusters vh does, is looked at first; endpoints and
// earlier snapshots only for a cluster prevVH names without routing
// traffic to it.
func (w *withholder) setUp(rc string, prevVH *routev3.VirtualHost, cluster string) bool {
	if routesTo(prevVH, cluster) {
		return true
	}
	here := namesCluster(prevVH, cluster)
	if !here && !w.isKnown(cluster) {
		return false
	}
	needsServing := serves(w.next, cluster)
	if needsServing && !serves(w.prev.Endpoints, cluster) {
		return false
	}
	held, complete := w.earlierHeld()
	if len(held) == 0 && complete {
		return true
	}
	if !here || !complete {
		return false
	}
	for _, s := range held {
		if !namesCluster(s.virtualHost(rc, prevVH.GetName()), cluster) || needsServing && !serves(s.Endpoints, cluster) {
			return false
		}
	}
	return true
}

// serves reports whether endpoints, sorted by cluster name, have an
// assignment of cluster with an endpoint that takes new requests.
func serves(endpoints List[*endpointv3.ClusterLoadAssignment], cluster string) bool {
	cla, ok := named(endpoints, cluster, (*endpointv3.ClusterLoadAssignment).GetClusterName)
	return ok && hasServing(cla)
}

// earlierHeld returns what earlier does, asking it once; none without it.
func (w *withholder) earlierHeld() ([]*Snapshot, bool) {
	if !w.asked {
		w.asked, w.complete = true, true
		if w.earlier != nil {
			w.held, w.complete = w.earlier()
		}
	}
	return w.held, w.complete
}

// namesCluster reports whether a route of vh (nil: none) names cluster.
func namesCluster(vh *routev3.VirtualHost, cluster string) bool {
	return slices.ContainsFunc(vh.GetRoutes(), func(r *routev3.Route) bool { return routeNamesCluster(r, cluster) })
}

// routesTo reports whether a route of vh (nil: none) other than the
// warming route sends cluster a share of traffic.
func routesTo(vh *routev3.VirtualHost, cluster string) bool {
	for _, route := range vh.GetRoutes() {
		if route.GetName() == envoy.WarmingRouteName {
			continue
		}
		routed := false
		eachCluster(route, func(c string, weight uint32) { routed = routed || c == cluster && weight > 0 })
		if routed {
			return true
		}
	}
	return false
}

// isKnown reports whether a route of prev names cluster.
func (w *withholder) isKnown(cluster string) bool {
	if w.known == nil {
		w.known = ReferencedClusters(w.prev)
	}
	_, found := slices.BinarySearch(w.known, cluster)
	return found
}

// prevRC returns prev's route configuration named name, or nil.
func (w *withholder) prevRC(name string) *routev3.RouteConfiguration {
	rc, _ := named(w.prev.Routes, name, (*routev3.RouteConfiguration).GetName)
	return rc
}

// prevVhost returns prev's virtual host named name of the route
// configuration rc, whose virtual hosts in prev were prevHosts, or nil; it
// is mostly at index i, where the new one is.
func (w *withholder) prevVhost(rc string, prevHosts List[*routev3.VirtualHost], i int, name string) *routev3.VirtualHost {
	if i < prevHosts.Len() && prevHosts.At(i).GetName() == name {
		return prevHosts.At(i)
	}
	if w.prevVhosts == nil {
		w.prevVhosts = map[string]map[string]*routev3.VirtualHost{}
	}
	if w.prevVhosts[rc] == nil {
		w.prevVhosts[rc] = byName(prevHosts.Slice(), (*routev3.VirtualHost).GetName)
	}
	return w.prevVhosts[rc][name]
}

// prevMainRoute returns prev's catch-all route of the virtual host named
// vhost: that of prevVH, prev's in the same route configuration, or else
// of any route configuration of prev; nil if prev has none. (A build puts
// the very same virtual host in RouteConfigName and in its service's own,
// and a bridge withholds both alike, so prev's copies agree.)
func (w *withholder) prevMainRoute(vhost string, prevVH *routev3.VirtualHost) *routev3.Route {
	if prevVH != nil {
		if main := mainRoute(prevVH); main != nil {
			return main
		}
	}
	if w.mainRoutes == nil {
		w.mainRoutes = mainRoutes(w.prev)
	}
	return w.mainRoutes[vhost]
}

// stillServing returns main, prev's catch-all route of a virtual host,
// without the clusters next serves no endpoint of: versions gone critical,
// draining or deregistered, which keepLeaving keeps with prev's endpoints
// as if they still served. It returns main itself when it loses none, and
// nil when it loses all: the bridge then routes as next does, to clusters
// clients may not have set up yet, which at worst delays requests, rather
// than to versions that cannot answer them. A sticky service's combined
// cluster that next removes is not lost: stickiness was turned off.
func (w *withholder) stillServing(main *routev3.Route) *routev3.Route {
	down := func(c string) bool {
		if cla, ok := named(w.next, c, (*endpointv3.ClusterLoadAssignment).GetClusterName); ok {
			return !hasServing(cla)
		}
		return !strings.HasSuffix(c, "/"+StickyVersion) // a version deregistered
	}
	if c := main.GetRoute().GetCluster(); c != "" && down(c) {
		return nil
	}
	wc := main.GetRoute().GetWeightedClusters()
	if !slices.ContainsFunc(wc.GetClusters(), func(cw *routev3.WeightedCluster_ClusterWeight) bool { return down(cw.GetName()) }) {
		return main
	}
	out := proto.Clone(main).(*routev3.Route)
	kept := slices.DeleteFunc(out.GetRoute().GetWeightedClusters().GetClusters(),
		func(cw *routev3.WeightedCluster_ClusterWeight) bool { return down(cw.GetName()) })
	if len(kept) == 0 {
		return nil
	}
	out.GetRoute().GetWeightedClusters().Clusters = kept
	return out
}

// withhold returns route without traffic to clusters that are not known:
// with fewer weighted clusters (changed in place: route is a clone),
// replaced by prevMain, or nil when it is a match route to drop. withheld
// reports whether it changed anything.
func withhold(route *routev3.Route, known func(string) bool, prevMain *routev3.Route) (out *routev3.Route, withheld bool) {
	if route.GetName() == envoy.WarmingRouteName {
		return route, false
	}
	action := route.GetRoute()
	if c := action.GetCluster(); c != "" {
		switch {
		case known(c):
			return route, false
		case isMatchRoute(route):
			return nil, true
		case prevMain != nil:
			return prevMain, true
		default:
			return route, false
		}
	}
	wc := action.GetWeightedClusters()
	kept := knownOnly(wc.GetClusters(), known)
	switch {
	case len(kept) == len(wc.GetClusters()):
		return route, false
	case len(kept) > 0:
		wc.Clusters = kept
		return route, true
	case prevMain != nil:
		return prevMain, true
	default:
		return route, false
	}
}

func isMatchRoute(route *routev3.Route) bool {
	return strings.HasPrefix(route.GetName(), matchRoutePrefix)
}

func knownOnly(clusters []*routev3.WeightedCluster_ClusterWeight, known func(string) bool) []*routev3.WeightedCluster_ClusterWeight {
	var kept []*routev3.WeightedCluster_ClusterWeight
	for _, c := range clusters {
		if known(c.GetName()) {
			kept = append(kept, c)
		}
	}
	return kept
}

// mainRoutes returns the catch-all route of every virtual host (see
// mainRoute), by virtual host name.
func mainRoutes(r Resources) map[string]*routev3.Route {
	m := make(map[string]*routev3.Route)
	for vh := range r.virtualHosts() {
		if main := mainRoute(vh); main != nil {
			m[vh.GetName()] = main
		}
	}
	return m
}

// mainRoute returns vh's catch-all route: its last route that is neither a
// match route nor the warming route, or nil.
func mainRoute(vh *routev3.VirtualHost) *routev3.Route {
	var main *routev3.Route
	for _, route := range vh.GetRoutes() {
		if route.GetName() != envoy.WarmingRouteName && !isMatchRoute(route) {
			main = route
		}
	}
	return main
}

// keepLeaving adds back to r, with prev's endpoints, every cluster that
// leaving() names and routedNext() does not, and that r would remove or
// leave without serving endpoints, keeping r's clusters and assignments
// sorted. It returns how many it kept. It changes copies of r's lists
// only, made when it first changes them: a Builder's later snapshots
// share them, and a list the bridge does not change stays next's very
// slice (see the xDS cache's prepare). Only the clusters r removes or
// whose assignment it changes to one without serving endpoints are
// candidates; leaving and routedNext, which walk every route, are asked
// for only when there is one.
func keepLeaving(r *Resources, prev Resources, leaving, routedNext func() []string) int {
	candidates := leavingCandidates(*r, prev)
	if len(candidates) == 0 {
		return 0
	}
	stillRouted := slices.Clone(leaving())
	slices.Sort(stillRouted)
	routed := routedNext()
	var addedClusters []*clusterv3.Cluster
	var addedEndpoints []*endpointv3.ClusterLoadAssignment
	kept := 0
	for _, c := range candidates {
		if _, ok := slices.BinarySearch(stillRouted, c.name); !ok {
			continue
		}
		if _, ok := slices.BinarySearch(routed, c.name); ok {
			continue
		}
		if c.at < 0 {
			cluster, _ := named(prev.Clusters, c.name, (*clusterv3.Cluster).GetName)
			addedClusters, addedEndpoints = append(addedClusters, cluster), append(addedEndpoints, c.prev)
		} else {
			r.Endpoints = r.Endpoints.Set(c.at, c.prev)
		}
		kept++
	}
	if len(addedClusters) > 0 {
		clusters := append(r.Clusters.Slice(), addedClusters...)
		slices.SortFunc(clusters, func(a, b *clusterv3.Cluster) int { return cmp.Compare(a.GetName(), b.GetName()) })
		endpoints := append(r.Endpoints.Slice(), addedEndpoints...)
		slices.SortFunc(endpoints, func(a, b *endpointv3.ClusterLoadAssignment) int {
			return cmp.Compare(a.GetClusterName(), b.GetClusterName())
		})
		r.Clusters, r.Endpoints = ListOf(clusters...), ListOf(endpoints...)
	}
	return kept
}

// leavingCandidate is a cluster of prev that r removes (at < 0) or whose
// assignment, r's at index at, has no serving endpoints; prev is prev's
// assignment.
type leavingCandidate struct {
	name string
	at   int
	prev *endpointv3.ClusterLoadAssignment
}

// leavingCandidates returns, by name, the clusters with an assignment in
// prev that r has no cluster of, or whose assignment in r is another
// message without serving endpoints. Both lists of assignments are sorted
// by name: when the assignments that changed kept their names, only they
// are looked at (see changedCandidates), else one walk over both lists
// finds these.
func leavingCandidates(r, prev Resources) []leavingCandidate {
	if changes, ok := Changed(r.Endpoints, prev.Endpoints); ok {
		if out, ok := changedCandidates(r.Endpoints, prev.Endpoints, changes); ok {
			return out
		}
	}
	var out []leavingCandidate
	next := r.Endpoints
	at := 0
	for p := range prev.Endpoints.Values() {
		name := p.GetClusterName()
		for at < next.Len() && next.At(at).GetClusterName() < name {
			at++
		}
		switch {
		case at < next.Len() && next.At(at).GetClusterName() == name:
			if n := next.At(at); n != p && !hasServing(n) {
				out = append(out, leavingCandidate{name, at, p})
			}
		case !hasCluster(r.Clusters, name):
			out = append(out, leavingCandidate{name, -1, p})
		}
	}
	return out
}

// changedCandidates returns leavingCandidates of next and prev, lists of
// one length that differ only at the indexes changes yields, and true; or
// false when an assignment at one of them has another name than prev's,
// which may remove a cluster. With the same names everywhere, no cluster
// is removed, and only the changed assignments can have lost their
// serving endpoints.
func changedCandidates(next, prev List[*endpointv3.ClusterLoadAssignment], changes iter.Seq[int]) ([]leavingCandidate, bool) {
	var out []leavingCandidate
	for i := range changes {
		n, p := next.At(i), prev.At(i)
		if n.GetClusterName() != p.GetClusterName() {
			return nil, false
		}
		if !hasServing(n) {
			out = append(out, leavingCandidate{p.GetClusterName(), i, p})
		}
	}
	return out, true
}

// hasCluster reports whether clusters, sorted by name, has one named name.
func hasCluster(clusters List[*clusterv3.Cluster], name string) bool {
	_, found := named(clusters, name, (*clusterv3.Cluster).GetName)
	return found
}

// named returns the one of sorted, a list sorted by name, named name, and
// whether there is one.
func named[M any](sorted List[M], name string, nameOf func(M) string) (M, bool) {
	at, found := search(sorted, name, func(m M, n string) int { return cmp.Compare(nameOf(m), n) })
	if !found {
		var zero M
		return zero, false
	}
	return sorted.At(at), true
}

// RoutedClusters returns, sorted, the clusters that some route sends a
// share of traffic to: a weighted cluster with a non-zero weight, or the
// one cluster of a match route or a sticky catch-all route. The warming
// route sends none.
func RoutedClusters(r Resources) []string {
	return routeClusters(r, func(route *routev3.Route, weight uint32) bool {
		return route.GetName() != envoy.WarmingRouteName && weight > 0
	})
}

// ReferencedClusters returns, sorted, every cluster some route names,
// warming route included: the clusters proxyless gRPC clients have set up.
func ReferencedClusters(r Resources) []string {
	return routeClusters(r, func(*routev3.Route, uint32) bool { return true })
}

// routeClusters returns the clusters of routes for which include holds,
// given the cluster's weight; a route's one cluster has all its traffic.
func routeClusters(r Resources, include func(route *routev3.Route, weight uint32) bool) []string {
	var names []string
	for vh := range r.virtualHosts() {
		for _, route := range vh.GetRoutes() {
			eachCluster(route, func(c string, weight uint32) {
				if include(route, weight) {
					names = append(names, c)
				}
			})
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// eachCluster calls f with each cluster route names and its weight; a
// route's one cluster has all of its traffic.
func eachCluster(route *routev3.Route, f func(cluster string, weight uint32)) {
	if c := route.GetRoute().GetCluster(); c != "" {
		f(c, uint32(policy.Full))
	}
	for _, wc := range route.GetRoute().GetWeightedClusters().GetClusters() {
		f(wc.GetName(), wc.GetWeight().GetValue())
	}
}

// hasServing reports whether an assignment has an endpoint that takes new
// requests.
func hasServing(cla *endpointv3.ClusterLoadAssignment) bool {
	for _, locality := range cla.GetEndpoints() {
		for _, ep := range locality.GetLbEndpoints() {
			switch ep.GetHealthStatus() {
			case corev3.HealthStatus_HEALTHY, corev3.HealthStatus_UNKNOWN:
				return true
			}
		}
	}
	return false
}

func byName[T any](items []T, name func(T) string) map[string]T {
	m := make(map[string]T, len(items))
	for _, it := range items {
		m[name(it)] = it
	}
	return m
}
