package snapshot

import (
	"maps"
	"slices"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weir-mesh/weir/envoy"
	"github.com/weir-mesh/weir/policy"
)

// matchRoutePrefix starts the name of every match route; the bridge tells
// match routes from the catch-all route by it.
const matchRoutePrefix = "match-"

// matchRoutes returns a route per match of svc, in order, named after its
// position in the policy ("match-0", ...) so that leaving one out does not
// rename the others. A match to a version without serving endpoints is left
// out, and recorded in report: its requests fall through to the split
// rather than fail.
func matchRoutes(svc string, matches []policy.MatchRoute, bv byVersion, report *serviceReport) []*routev3.Route {
	routes := make([]*routev3.Route, 0, len(matches)+2) // and the catch-all and warming routes
	for i, m := range matches {
		if len(servingEndpoints(bv.endpoints(m.Version))) == 0 {
			report.unservedMatches = append(report.unservedMatches, m.Version)
			continue
		}
		headers := make([]*routev3.HeaderMatcher, len(m.Conditions))
		for j, c := range m.Conditions {
			headers[j] = headerMatcher(c)
		}
		routes = append(routes, envoy.ClusterRoute(matchRoutePrefix+strconv.Itoa(i), ClusterName(svc, m.Version), headers, nil))
	}
	slices.Sort(report.unservedMatches)
	report.unservedMatches = slices.Compact(report.unservedMatches)
	return routes
}

// headerMatcher turns one policy condition into a header matcher; a cookie
// condition matches the cookie header (see envoy.CookieHeaderMatcher: never
// true for proxyless gRPC clients, which send no cookies).
func headerMatcher(c policy.Match) *routev3.HeaderMatcher {
	kind, value := envoy.MatchExact, c.Exact
	switch {
	case c.Prefix != "":
		kind, value = envoy.MatchPrefix, c.Prefix
	case c.Regex != "":
		kind, value = envoy.MatchRegex, c.Regex
	}
	if c.Cookie != "" {
		return envoy.CookieHeaderMatcher(c.Cookie, kind, value)
	}
	return envoy.HeaderMatcher(c.Header, kind, value)
}

// A sticky service routes its catch-all traffic to one combined RING_HASH
// cluster holding the serving endpoints of every version with a share,
// hashed by the sticky header or cookie, rather than to weighted clusters:
//
//   - grpc-go picks a weighted cluster at random per request, so a user
//     would change version from one call to the next;
//   - WeightedCluster.header_name, which lets Envoy pick the cluster from a
//     header, is Envoy-only (grpc-go ignores it) and wants the header to
//     hold a number, not a user ID.
//
// A ring hash is supported by both, keeps one user value on one endpoint
// (so on one version) on every client that has the same snapshot, and moves
// only a small part of the users when weights or endpoints change. Endpoint
// weights make each version's share of the ring its share of the traffic.
// The versions' own clusters stay: match routes and the warming route use
// them.

// endpointWeightScale spreads a version's weight (hundredths of a percent)
// over its endpoints without losing much to integer division; the largest
// locality sum, about Full*endpointWeightScale = 10^7, is far below the
// uint32 limit Envoy sets on it.
const endpointWeightScale = 1000

// stickyEndpoints returns the serving endpoints of every version with a
// non-zero weight, in version order, each weighted
// max(1, weight*endpointWeightScale/servingEndpointsOfItsVersion).
// Draining endpoints are left out: a hash must not land on them. An
// address:port that two versions list counts once, for the first version
// (grpc-go NACKs an assignment that lists one address twice).
func stickyEndpoints(byVersion map[string][]envoy.Endpoint, weights policy.Weights) []envoy.Endpoint {
	var out []envoy.Endpoint
	seen := make(map[string]bool)
	for _, v := range slices.Sorted(maps.Keys(weights)) {
		serving := servingEndpoints(byVersion[v])
		if weights[v] == 0 || len(serving) == 0 {
			continue
		}
		each := max(1, uint32(uint64(weights[v])*endpointWeightScale/uint64(len(serving))))
		for _, e := range serving {
			key := e.Address + "|" + strconv.FormatUint(uint64(e.Port), 10)
			if seen[key] {
				continue
			}
			seen[key] = true
			e.Weight = each
			out = append(out, e)
		}
	}
	return out
}

// servingEndpoints returns the endpoints that take new requests.
func servingEndpoints(eps []envoy.Endpoint) []envoy.Endpoint {
	var out []envoy.Endpoint
	for _, e := range eps {
		if e.Health == corev3.HealthStatus_HEALTHY {
			out = append(out, e)
		}
	}
	return out
}

// hashPolicy hashes by the sticky header, or by the sticky cookie (which
// only Envoy can: gRPC has no cookies, so proxyless gRPC clients split such
// a service at random per request).
func hashPolicy(s policy.Sticky) []*routev3.RouteAction_HashPolicy {
	switch {
	case s.Header != "":
		return []*routev3.RouteAction_HashPolicy{envoy.HeaderHashPolicy(s.Header)}
	case s.Cookie != "":
		return []*routev3.RouteAction_HashPolicy{envoy.CookieHashPolicy(s.Cookie)}
	default:
		return nil
	}
}
