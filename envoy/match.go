package envoy

import (
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// MatchKind is how a matcher compares a value.
type MatchKind int

// The match kinds. A regex is RE2, as both Envoy and grpc-go use, and must
// match the whole value.
const (
	MatchExact MatchKind = iota
	MatchPrefix
	MatchRegex
)

// HeaderMatcher returns a matcher that holds when header name (lower case;
// gRPC metadata keys are headers) compares to value by kind. Both Envoy and
// grpc-go match safe_regex against the whole header value.
func HeaderMatcher(name string, kind MatchKind, value string) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{
		Name:                 name,
		HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: stringMatcher(kind, value)},
	}
}

func stringMatcher(kind MatchKind, value string) *matcherv3.StringMatcher {
	switch kind {
	case MatchPrefix:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: value}}
	case MatchRegex:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{
			SafeRegex: &matcherv3.RegexMatcher{Regex: value},
		}}
	default:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: value}}
	}
}

// CookieHeaderMatcher returns a matcher on the cookie header that holds
// when the request carries cookie name with a value that compares to value
// by kind. Neither Envoy nor grpc-go has a cookie matcher, so it is a
// safe_regex over the whole header value (Envoy joins the cookie headers of
// an HTTP/2 request with "; "): the cookie may stand first or after a ";",
// and its value ends at the next ";" or the end. A regex value must match
// the whole cookie value, and anchors at its ends mark the value's ends
// (see cookieValueRegex). Proxyless gRPC clients send no cookies, so for
// them it never matches.
func CookieHeaderMatcher(name string, kind MatchKind, value string) *routev3.HeaderMatcher {
	const before, after = `(^|.*;\s*)`, `(;.*|$)`
	cookie := before + regexp.QuoteMeta(name) + "="
	switch kind {
	case MatchPrefix:
		cookie += regexp.QuoteMeta(value) + `[^;]*` + after
	case MatchRegex:
		cookie += cookieValueRegex(value) + after
	default:
		cookie += regexp.QuoteMeta(value) + after
	}
	return HeaderMatcher("cookie", MatchRegex, cookie)
}

// cookieValueRegex returns value, a regex that must match a whole cookie
// value, as a group to stand between "NAME=" and the rest of the cookie
// header. Pasted as written it could never match with an anchor ("^beta$"
// would anchor to the ends of the header, not the value), and could change
// what follows ("\Qa.b" quotes to the end, the closing parenthesis too).
// So it is parsed, its anchors at the value's ends are dropped, and it is
// printed again. Policy parsing has compiled value with Go's regexp (Perl
// flags), so a parse error here is a programming error.
func cookieValueRegex(value string) string {
	re, err := syntax.Parse(value, syntax.Perl)
	if err != nil {
		panic("envoy: cookie value regex " + strconv.Quote(value) + ": " + err.Error())
	}
	re = trimAnchors(re, true)
	re = trimAnchors(re, false)
	return "(?:" + re.String() + ")"
}

// trimAnchors drops the anchors at re's start (^ or \A, also under (?m)) or,
// if !start, at its end ($ or \z): where re must match the whole cookie
// value they always match there, so dropping them changes nothing. They
// stand first or last in a concatenation, in any branch of an alternation,
// or in a group. It reuses re's nodes.
func trimAnchors(re *syntax.Regexp, start bool) *syntax.Regexp {
	switch re.Op {
	case syntax.OpBeginText, syntax.OpBeginLine:
		if start {
			return &syntax.Regexp{Op: syntax.OpEmptyMatch, Flags: re.Flags}
		}
	case syntax.OpEndText, syntax.OpEndLine:
		if !start {
			return &syntax.Regexp{Op: syntax.OpEmptyMatch, Flags: re.Flags}
		}
	case syntax.OpAlternate:
		for i, sub := range re.Sub {
			re.Sub[i] = trimAnchors(sub, start)
		}
	case syntax.OpCapture:
		re.Sub[0] = trimAnchors(re.Sub[0], start)
	case syntax.OpConcat:
		return trimConcat(re, start)
	}
	return re
}

// trimConcat is trimAnchors of a concatenation: its edge piece is trimmed,
// and dropped while it is left empty ("^^a").
func trimConcat(re *syntax.Regexp, start bool) *syntax.Regexp {
	for len(re.Sub) > 0 {
		i := len(re.Sub) - 1
		if start {
			i = 0
		}
		sub := trimAnchors(re.Sub[i], start)
		if sub.Op != syntax.OpEmptyMatch {
			re.Sub[i] = sub
			break
		}
		re.Sub = slices.Delete(re.Sub, i, i+1)
	}
	switch len(re.Sub) {
	case 0:
		return &syntax.Regexp{Op: syntax.OpEmptyMatch, Flags: re.Flags}
	case 1:
		return re.Sub[0]
	}
	return re
}

// HeaderHashPolicy hashes a request by the value of header name. grpc-go
// and Envoy both support it; a request without the header gets a random
// hash.
func HeaderHashPolicy(name string) *routev3.RouteAction_HashPolicy {
	return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
		Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: name},
	}}
}

// CookieHashPolicy hashes a request by the value of cookie name. Only Envoy
// supports it: grpc-go ignores cookie hash policies (gRPC has no cookies), so
// its requests get a random hash, which is a plain weighted split. Without a
// ttl Envoy never sets the cookie itself; the application must.
func CookieHashPolicy(name string) *routev3.RouteAction_HashPolicy {
	return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{
		Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: name},
	}}
}
