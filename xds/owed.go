package xds

import (
	"maps"
	"slices"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

// deltaOwed is what one delta stream may be owed of one resource type after
// NACKs. go-control-plane takes a delta response as held by the client once
// it is sent, and does nothing on a NACK: the resources a rejected response
// sent, and the removals it made, would be sent again only when they
// change, and what the client holds of them is unknown (Envoy may apply
// part of a rejected update). So weir keeps the names of rejected responses
// until a response that sends or removes them is ACKed, and the cache
// answers the stream's next change with them (see deltaAnswer). Its zero
// value owes nothing.
type deltaOwed struct {
	// unanswered are the responses sent and not yet ACKed or NACKed,
	// oldest first: a client answers them in order, but may answer an
	// older one after a newer one was sent.
	unanswered []sentResponse
	rejected   map[string]struct{}
}

// sentResponse is what deltaOwed keeps of a response: not the response,
// whose resources would stay in memory until the client answers.
type sentResponse struct {
	nonce, version string
	names          []string // the resources it sent and the names it removed
}

// maxUnanswered bounds unanswered for a client that stops answering: each
// response answers a request, so a well-behaved client has a few at most.
const maxUnanswered = 16

// owedTypes counts the resource types a delta stream can be owed: those
// weir serves, by pushOrder.
const owedTypes = len(orderTypes)

// deltaOwed returns what p, a delta stream, is owed of typeURL; nil on a
// state-of-the-world stream or for a type weir does not serve.
func (p *Proxy) deltaOwed(typeURL string) *deltaOwed {
	if i := pushOrder(typeURL); p.owed != nil && i < owedTypes {
		return &p.owed[i]
	}
	return nil
}

// sent records a response sent.
func (o *deltaOwed) sent(resp *discoveryv3.DeltaDiscoveryResponse) {
	if len(o.unanswered) == maxUnanswered {
		o.unanswered = slices.Delete(o.unanswered, 0, 1)
	}
	names := make([]string, 0, len(resp.GetResources())+len(resp.GetRemovedResources()))
	for _, r := range resp.GetResources() {
		names = append(names, r.GetName())
	}
	names = append(names, resp.GetRemovedResources()...)
	o.unanswered = append(o.unanswered, sentResponse{resp.GetNonce(), resp.GetSystemVersionInfo(), names})
}

// answered records that the client ACKed the response with nonce, or
// NACKed it, and so has answered those sent before it. It returns the
// version of that response ("" if it is not one of the unanswered).
func (o *deltaOwed) answered(nonce string, nack bool) (version string) {
	i := slices.IndexFunc(o.unanswered, func(r sentResponse) bool { return r.nonce == nonce })
	if i < 0 {
		return ""
	}
	resp := o.unanswered[i]
	o.unanswered = slices.Delete(o.unanswered, 0, i+1)
	if nack && o.rejected == nil {
		o.rejected = make(map[string]struct{})
	}
	for _, name := range resp.names {
		if nack {
			o.rejected[name] = struct{}{}
		} else {
			delete(o.rejected, name)
		}
	}
	return resp.version
}

// after records what a request answered (the response with nonce, if not
// ""; nack if it was rejected) and returns, sorted, the names still owed
// that st, the stream's subscription after the request, asks for, and the
// version of the response answered ("" if none).
func (o *deltaOwed) after(nonce string, nack bool, st TypeStatus) (owed []string, version string) {
	if nonce != "" {
		version = o.answered(nonce, nack)
	}
	return o.names(st), version
}

// names returns, sorted, the names owed that st, the stream's subscription
// to the type, still asks for; it forgets the others.
func (o *deltaOwed) names(st TypeStatus) []string {
	if len(o.rejected) == 0 {
		return nil
	}
	if !st.Wildcard {
		for name := range o.rejected {
			if _, ok := slices.BinarySearch(st.Names, name); !ok {
				delete(o.rejected, name)
			}
		}
	}
	return slices.Sorted(maps.Keys(o.rejected))
}
