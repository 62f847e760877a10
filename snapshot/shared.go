package snapshot

import (
	"encoding/hex"
	"fmt"
	"iter"
	"slices"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weir-mesh/weir/envoy"
)

// SharedRoutes is RouteConfigName, the route configuration that holds
// every service's virtual host, which the Envoy sidecar listener uses. Its
// virtual hosts are kept as a List, in service order, with the sum of
// their digests, so that a build that changes one service's virtual host
// costs that virtual host rather than a copy of every service's: Message
// makes the route configuration whole for whoever needs it so, and an xDS
// cache encodes it from its parts (RestEncoding and Hosts), encoding a
// virtual host only when it is new. A SharedRoutes is not changed once
// made.
type SharedRoutes struct {
	rest         *routev3.RouteConfiguration // every field but virtual_hosts; validated
	restEncoding []byte                      // rest's deterministic encoding, with no room to spare (see routesDigest)
	hosts        List[*routev3.VirtualHost]
	sum          digestSum // of hosts' digests
	digest       digest    // routesDigest(restEncoding, sum)
}

// sharedRoutes returns the route configuration named name that holds
// hosts, validated, whose digests add up to sum: last if it is the same,
// else a new one. The virtual hosts were validated and hashed with their
// services, so none is encoded again. buf is scratch space for encoding.
func sharedRoutes(buf *[]byte, last *SharedRoutes, name string, hosts List[*routev3.VirtualHost], sum digestSum) (*SharedRoutes, error) {
	rest := envoy.RouteConfiguration(name, nil)
	enc, err := envoy.AppendDeterministic((*buf)[:0], rest)
	*buf = enc
	if err != nil {
		return nil, fmt.Errorf("marshal %s %q: %w", routeType, name, err)
	}
	d := routesDigest(enc, sum)
	if last != nil && last.digest == d {
		return last, nil
	}
	if err := rest.ValidateAll(); err != nil {
		return nil, fmt.Errorf("%s %q: %w", routeType, name, err)
	}
	return &SharedRoutes{rest: rest, restEncoding: slices.Clip(slices.Clone(enc)), hosts: hosts, sum: sum, digest: d}, nil
}

// SharedRoutesOf returns rc as a SharedRoutes, validated: for tests and
// tools that make resources by hand.
func SharedRoutesOf(rc *routev3.RouteConfiguration) (*SharedRoutes, error) {
	rest, enc, sum, err := routesParts(rc)
	if err != nil {
		return nil, err
	}
	if err := rc.ValidateAll(); err != nil {
		return nil, fmt.Errorf("%s %q: %w", routeType, rc.GetName(), err)
	}
	hosts := ListOf(rc.GetVirtualHosts()...)
	return &SharedRoutes{rest: rest, restEncoding: enc, hosts: hosts, sum: sum, digest: routesDigest(enc, sum)}, nil
}

// withHosts returns s with hosts in place of its own, where they differ
// from s's at the indexes changes yields: the digests of s's virtual
// hosts there are taken out of the sum and those of hosts' added. buf is
// scratch space for encoding.
func (s *SharedRoutes) withHosts(buf *[]byte, hosts List[*routev3.VirtualHost], changes iter.Seq[int]) (*SharedRoutes, error) {
	out := *s
	out.hosts = hosts
	for i := range changes {
		old, err := hostDigest(buf, s.Name(), s.hosts.At(i))
		if err != nil {
			return nil, err
		}
		next, err := hostDigest(buf, s.Name(), hosts.At(i))
		if err != nil {
			return nil, err
		}
		out.sum.swap(&old, &next)
	}
	out.digest = routesDigest(out.restEncoding, out.sum)
	return &out, nil
}

// hostDigest returns the digest of vh, a virtual host of the route
// configuration named rc.
func hostDigest(buf *[]byte, rc string, vh *routev3.VirtualHost) (digest, error) {
	d, b, err := digestOf(vh, *buf)
	*buf = b
	if err != nil {
		return digest{}, fmt.Errorf("marshal %s %q: virtual host %q: %w", routeType, rc, vh.GetName(), err)
	}
	return d, nil
}

// Name returns the route configuration's name; "" for a nil s.
func (s *SharedRoutes) Name() string {
	if s == nil {
		return ""
	}
	return s.rest.GetName()
}

// Hosts returns the virtual hosts, in service order; none for a nil s.
// They must not be changed.
func (s *SharedRoutes) Hosts() List[*routev3.VirtualHost] {
	if s == nil {
		return List[*routev3.VirtualHost]{}
	}
	return s.hosts
}

// RestEncoding returns the deterministic encoding of the route
// configuration without its virtual hosts. It must not be changed.
func (s *SharedRoutes) RestEncoding() []byte { return s.restEncoding }

// ContentHash returns a short hex hash of the route configuration's name
// and content: equal for equal route configurations, whatever the order of
// their virtual hosts (see routesDigest), which Envoy's matching does not
// depend on and which a Builder keeps in service order.
func (s *SharedRoutes) ContentHash() string { return hex.EncodeToString(s.digest[:8]) }

// Message returns the route configuration whole, nil for a nil s: a new
// message, which costs a pointer per virtual host.
func (s *SharedRoutes) Message() *routev3.RouteConfiguration {
	if s == nil {
		return nil
	}
	rc := withoutVirtualHosts(s.rest)
	rc.VirtualHosts = s.hosts.Slice()
	return rc
}
