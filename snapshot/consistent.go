package snapshot

import (
	"errors"
	"fmt"
	"slices"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// Consistent reports, as an error naming each missing or repeated resource
// and who refers to it, whether r can be served as it is: every route
// configuration a listener uses (in a filter chain or an api_listener) is
// Outbound or in Routes, every cluster a route uses is in Clusters, every
// EDS cluster has its ClusterLoadAssignment and every assignment its
// cluster, and no name appears twice within one kind. Clients wait ~15 s
// for a name that is never served and NACK a response that repeats one.
// Envoy also rejects a route configuration that lists a domain in two
// virtual hosts (services "a" and "a.service.consul" would), so that is
// checked too. A route configuration that no listener uses is no error, as
// an unused cluster is none: a client only fetches what it is referred to.
func Consistent(r Resources) error {
	var l ledger
	l.count(1, r, func(v visit) []error {
		return visitResources(r, v, make(map[*routev3.VirtualHost]bool, r.Routes.Len()))
	})
	if l.ok() {
		return nil
	}
	return errors.Join(l.explain(func(v visit) []error { return visitResources(r, v, nil) })...)
}

// connectionManagers returns the HTTP connection managers of l: from its
// filter chains, its default filter chain and its api_listener.
// go-control-plane's Snapshot.Consistent looks only at filter chains.
func connectionManagers(l *listenerv3.Listener) ([]*hcmv3.HttpConnectionManager, error) {
	configs := []*anypb.Any{l.GetApiListener().GetApiListener()}
	chains := append([]*listenerv3.FilterChain{l.GetDefaultFilterChain()}, l.GetFilterChains()...)
	for _, fc := range chains {
		for _, f := range fc.GetFilters() {
			configs = append(configs, f.GetTypedConfig())
		}
	}
	var out []*hcmv3.HttpConnectionManager
	for _, a := range configs {
		if a == nil || !a.MessageIs((*hcmv3.HttpConnectionManager)(nil)) {
			continue
		}
		hcm := new(hcmv3.HttpConnectionManager)
		if err := a.UnmarshalTo(hcm); err != nil {
			return nil, fmt.Errorf("decode http connection manager: %w", err)
		}
		out = append(out, hcm)
	}
	return out, nil
}

// duplicateDomains reports the domains that vh, the one virtual host of
// route configuration rc, lists more than once, as Envoy would reject it.
// Those of a route configuration with several virtual hosts are counted
// in the ledger instead (see visitDomains).
func duplicateDomains(rc string, vh *routev3.VirtualHost) []error {
	domains := vh.GetDomains()
	var errs []error
	var seen map[string]bool // made only for many domains
	if len(domains) > fewDomains {
		seen = make(map[string]bool, len(domains))
	}
	for i, d := range domains {
		twice := seen[d]
		if seen == nil {
			twice = slices.Contains(domains[:i], d)
		} else {
			seen[d] = true
		}
		if twice {
			errs = append(errs, domainTwice(rc, d, vh.GetName(), vh.GetName()))
		}
	}
	return errs
}

// fewDomains is how many domains a virtual host may have for
// duplicateDomains to compare each with every other rather than make a map:
// a service's own route configuration has one virtual host, with a few.
const fewDomains = 16

func domainTwice(rc, domain, first, second string) error {
	return fmt.Errorf("route configuration %q: domain %q is in virtual hosts %q and %q", rc, domain, first, second)
}
