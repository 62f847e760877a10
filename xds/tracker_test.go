package xds

import (
	"slices"
	"testing"
)

func TestSubscribeSotwFollowsLegacyWildcard(t *testing.T) {
	var st TypeStatus
	subscribeSotw(&st, nil)
	if !st.Wildcard {
		t.Fatal("a first request without names is a wildcard subscription")
	}
	subscribeSotw(&st, []string{"a", "b"})
	if st.Wildcard || !slices.Equal(st.Names, []string{"a", "b"}) {
		t.Fatalf("after naming a and b: wildcard %v names %v", st.Wildcard, st.Names)
	}
	// grpc-go sends an empty list when its last watch of a type goes away:
	// that is nothing, not everything.
	subscribeSotw(&st, nil)
	if st.Wildcard || len(st.Names) != 0 {
		t.Fatalf("after unsubscribing all: wildcard %v names %v, want nothing", st.Wildcard, st.Names)
	}
	subscribeSotw(&st, []string{"*", "c"})
	if !st.Wildcard || !slices.Equal(st.Names, []string{"c"}) {
		t.Fatalf("explicit wildcard: wildcard %v names %v", st.Wildcard, st.Names)
	}
}
