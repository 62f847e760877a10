package xds

import (
	"slices"
	"strconv"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

func deltaResp(nonce string, sent []string, removed ...string) *discoveryv3.DeltaDiscoveryResponse {
	r := &discoveryv3.DeltaDiscoveryResponse{Nonce: nonce, RemovedResources: removed}
	for _, name := range sent {
		r.Resources = append(r.Resources, &discoveryv3.Resource{Name: name})
	}
	return r
}

// TestDeltaOwedFollowsAnswers: a NACK owes what the response sent and
// removed, an ACK of a later response that sends a name pays it, a name no
// longer subscribed is forgotten, and a client that never answers holds
// only the last maxUnanswered responses.
func TestDeltaOwedFollowsAnswers(t *testing.T) {
	var o deltaOwed
	o.sent(deltaResp("1", []string{"a", "b"}, "c"))
	o.sent(deltaResp("2", []string{"d"}))
	o.answered("1", true)
	every := TypeStatus{Wildcard: true}
	if got := o.names(every); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("owed after a NACK = %v, want a, b, c", got)
	}
	o.answered("2", false)
	o.sent(deltaResp("3", []string{"a"}, "c"))
	o.answered("3", false)
	if got := o.names(every); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("owed after an ACK sending a and removing c = %v, want b", got)
	}
	if got := o.names(TypeStatus{Names: []string{"x"}}); len(got) != 0 {
		t.Fatalf("owed once b is not subscribed = %v, want nothing", got)
	}
	for i := range 3 * maxUnanswered {
		o.sent(deltaResp(strconv.Itoa(10+i), nil))
	}
	if len(o.unanswered) != maxUnanswered {
		t.Fatalf("%d unanswered responses kept, want %d", len(o.unanswered), maxUnanswered)
	}
}
