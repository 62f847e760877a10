package envoy

import (
	"regexp"
	"regexp/syntax"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestHeaderMatcher(t *testing.T) {
	tests := []struct {
		name  string
		kind  MatchKind
		value string
		want  *matcherv3.StringMatcher
	}{
		{"exact", MatchExact, "canary", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "canary"}}},
		{"prefix", MatchPrefix, "beta-", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "beta-"}}},
		{"regex", MatchRegex, "a|b", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{
			SafeRegex: &matcherv3.RegexMatcher{Regex: "a|b"},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := &routev3.HeaderMatcher{Name: "x-group", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: tt.want}}
			check(t, want, HeaderMatcher("x-group", tt.kind, tt.value))
		})
	}
}

func TestCookieHeaderMatcher(t *testing.T) {
	tests := []struct {
		name, cookie string
		kind         MatchKind
		value        string
		wantRegex    string
		matches      []string
		misses       []string
	}{{
		name: "exact", cookie: "canary", kind: MatchExact, value: "1.0",
		wantRegex: `(^|.*;\s*)canary=1\.0(;.*|$)`,
		matches:   []string{"canary=1.0", "a=b; canary=1.0", "a=b;canary=1.0; c=d"},
		misses:    []string{"canary=1x0", "canary=1.00", "xcanary=1.0", "canary=2; a=canary=1.0x", ""},
	}, {
		name: "prefix", cookie: "user.group", kind: MatchPrefix, value: "beta",
		wantRegex: `(^|.*;\s*)user\.group=beta[^;]*(;.*|$)`,
		matches:   []string{"user.group=beta", "user.group=beta-2; x=y", "x=y; user.group=betamax"},
		misses:    []string{"userxgroup=beta", "user.group=alpha; y=beta", "user.group=alpha"},
	}, {
		name: "regex", cookie: "tier", kind: MatchRegex, value: "gold|silver",
		wantRegex: `(^|.*;\s*)tier=(?:gold|silver)(;.*|$)`,
		matches:   []string{"tier=gold", "a=1; tier=silver; b=2"},
		misses:    []string{"tier=golden", "tier=bronze", "atier=gold"},
	}, {
		// Anchors mark the ends of the value, not of the header.
		name: "regex anchored", cookie: "uid", kind: MatchRegex, value: `^beta$`,
		wantRegex: `(^|.*;\s*)uid=(?:beta)(;.*|$)`,
		matches:   []string{"uid=beta", "a=1; uid=beta; b=2"},
		misses:    []string{"uid=betax", "uid=xbeta", "uid=alpha; b=beta"},
	}, {
		name: "regex anchored by \\A and \\z", cookie: "uid", kind: MatchRegex, value: `\Abeta\z`,
		wantRegex: `(^|.*;\s*)uid=(?:beta)(;.*|$)`,
		matches:   []string{"uid=beta", "a=1; uid=beta"},
		misses:    []string{"uid=betax"},
	}, {
		name: "regex anchored multi-line", cookie: "uid", kind: MatchRegex, value: `(?m)^beta$`,
		wantRegex: `(^|.*;\s*)uid=(?:beta)(;.*|$)`,
		matches:   []string{"uid=beta", "a=1; uid=beta; b=2"},
		misses:    []string{"uid=betax"},
	}, {
		name: "regex alternation", cookie: "uid", kind: MatchRegex, value: `beta|gamma`,
		wantRegex: `(^|.*;\s*)uid=(?:beta|gamma)(;.*|$)`,
		matches:   []string{"uid=gamma", "uid=beta; a=1"},
		misses:    []string{"uid=betagamma", "uid=gammax", "uid=alpha; b=gamma"},
	}, {
		name: "regex anchored branches", cookie: "uid", kind: MatchRegex, value: `^beta$|^(gamma)$`,
		wantRegex: `(^|.*;\s*)uid=(?:beta|(gamma))(;.*|$)`,
		matches:   []string{"uid=gamma", "a=1; uid=beta; b=2"},
		misses:    []string{"uid=betax", "uid=xgamma"},
	}, {
		name: "regex only anchors", cookie: "uid", kind: MatchRegex, value: `^^$`,
		wantRegex: `(^|.*;\s*)uid=(?:(?:))(;.*|$)`,
		matches:   []string{"uid=", "uid=; a=1"},
		misses:    []string{"uid=x"},
	}, {
		// \Q without \E quotes to the end of the value, and no further.
		name: "regex quote to the end", cookie: "uid", kind: MatchRegex, value: `\Qa.b`,
		wantRegex: `(^|.*;\s*)uid=(?:a\.b)(;.*|$)`,
		matches:   []string{"uid=a.b", "uid=a.b; c=d"},
		misses:    []string{"uid=axb", "uid=a.bc"},
	}, {
		name: "regex uuid", cookie: "uid", kind: MatchRegex, value: `[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`,
		wantRegex: `(^|.*;\s*)uid=(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(;.*|$)`,
		matches:   []string{"uid=0b5e3f4a-1c2d-4e5f-8a9b-0c1d2e3f4a5b", "a=1; uid=0b5e3f4a-1c2d-4e5f-8a9b-0c1d2e3f4a5b; b=2"},
		misses:    []string{"uid=0b5e3f4a-1c2d-4e5f-8a9b-0c1d2e3f4a5", "uid=0b5e3f4a"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := CookieHeaderMatcher(tt.cookie, tt.kind, tt.value)
			check(t, HeaderMatcher("cookie", MatchRegex, tt.wantRegex), got)
			// Envoy and grpc-go match safe_regex against the whole value.
			re, err := regexp.Compile("^(?:" + got.GetStringMatch().GetSafeRegex().GetRegex() + ")$")
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range tt.matches {
				if !re.MatchString(h) {
					t.Errorf("cookie header %q does not match, want a match", h)
				}
			}
			for _, h := range tt.misses {
				if re.MatchString(h) {
					t.Errorf("cookie header %q matches, want none", h)
				}
			}
		})
	}
}

// TestCookieHeaderMatcherPanicsOnInvalidRegex checks that a value policy
// parsing would have refused is a programming error, not a matcher Envoy
// would refuse.
func TestCookieHeaderMatcherPanicsOnInvalidRegex(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("CookieHeaderMatcher with regex \"(\" did not panic")
		}
	}()
	CookieHeaderMatcher("uid", MatchRegex, "(")
}

// FuzzCookieHeaderMatcher checks that a regex cookie matcher holds for a
// header of that cookie alone exactly when the value regex, as policy
// parsing accepts it, matches the whole value. Values with an anchor left
// inside ("a|(?:)^b") are skipped: no regex can say "the value starts here"
// of a value within a header, and Envoy would not match them either.
func FuzzCookieHeaderMatcher(f *testing.F) {
	for _, s := range [][2]string{
		{`^beta$`, "beta"}, {`^beta$`, "betax"}, {`\Qa.b`, "a.b"}, {`\Qa.b`, "axb"},
		{`beta|gamma`, "gamma"}, {`(?m)^a$|^(b)$`, "b"}, {`^$`, ""}, {`\bx+\b`, "xx"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, value, v string) {
		re, err := syntax.Parse(value, syntax.Perl)
		if err != nil || strings.Contains(v, ";") {
			return
		}
		group := cookieValueRegex(value)
		if hasAnchor(t, group) {
			return
		}
		// re.String() rather than value: "\Qa.b" would quote the ")$".
		whole := regexp.MustCompile(`^(?:` + re.String() + `)$`)
		cookie := CookieHeaderMatcher("uid", MatchRegex, value).GetStringMatch().GetSafeRegex().GetRegex()
		header, err := regexp.Compile(`^(?:` + cookie + `)$`)
		if err != nil {
			t.Fatalf("value %q: cookie regex %q: %v", value, cookie, err)
		}
		if got, want := header.MatchString("uid="+v), whole.MatchString(v); got != want {
			t.Errorf("value %q, cookie uid=%q: %q matches %v, want %v", value, v, cookie, got, want)
		}
	})
}

// hasAnchor reports whether regex has an anchor anywhere.
func hasAnchor(t *testing.T, regex string) bool {
	re, err := syntax.Parse(regex, syntax.Perl)
	if err != nil {
		t.Fatalf("%q: %v", regex, err)
	}
	var walk func(*syntax.Regexp) bool
	walk = func(re *syntax.Regexp) bool {
		switch re.Op {
		case syntax.OpBeginText, syntax.OpEndText, syntax.OpBeginLine, syntax.OpEndLine:
			return true
		}
		for _, sub := range re.Sub {
			if walk(sub) {
				return true
			}
		}
		return false
	}
	return walk(re)
}

func TestClusterRoute(t *testing.T) {
	headers := []*routev3.HeaderMatcher{HeaderMatcher("x-canary", MatchExact, "1")}
	want := &routev3.Route{
		Name: "match-0",
		Match: &routev3.RouteMatch{
			PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
			Headers:       headers,
		},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "greeter/v2"},
		}},
	}
	check(t, want, ClusterRoute("match-0", "greeter/v2", headers, nil))

	hashed := &routev3.Route{
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "greeter/*"},
			HashPolicy: []*routev3.RouteAction_HashPolicy{
				{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: "x-user-id"}}},
				{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: "uid"}}},
			},
		}},
	}
	check(t, hashed, ClusterRoute("", "greeter/*", nil, []*routev3.RouteAction_HashPolicy{
		HeaderHashPolicy("x-user-id"), CookieHashPolicy("uid"),
	}))
}

func TestRingHashCluster(t *testing.T) {
	want := proto.Clone(Cluster("greeter/*")).(*clusterv3.Cluster)
	want.LbPolicy = clusterv3.Cluster_RING_HASH
	want.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{
		MinimumRingSize: wrapperspb.UInt64(1024),
		MaximumRingSize: wrapperspb.UInt64(4096),
		HashFunction:    clusterv3.Cluster_RingHashLbConfig_XX_HASH,
	}}
	check(t, want, RingHashCluster("greeter/*"))
}

func TestClusterLoadAssignmentWeights(t *testing.T) {
	got := ClusterLoadAssignment("c", []Endpoint{
		{Address: "10.0.0.1", Port: 80, Health: corev3.HealthStatus_HEALTHY, Weight: 2500000},
		{Address: "10.0.0.2", Port: 80, Health: corev3.HealthStatus_HEALTHY},
	})
	eps := got.GetEndpoints()[0].GetLbEndpoints()
	if w := eps[0].GetLoadBalancingWeight(); w.GetValue() != 2500000 {
		t.Errorf("weighted endpoint has load_balancing_weight %v, want 2500000", w)
	}
	if w := eps[1].GetLoadBalancingWeight(); w != nil {
		t.Errorf("unweighted endpoint has load_balancing_weight %v, want unset", w)
	}
	if err := got.ValidateAll(); err != nil {
		t.Error(err)
	}
}
