package admin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Token is one bearer token and the identity of its holder.
type Token struct {
	Name   string
	secret [sha256.Size]byte // the token's digest: equal lengths for constant-time comparison
}

// ParseTokens reads a token file: one token per line, optionally as
// NAME:TOKEN, which gives the caller identity NAME (else it is
// token-<first 6 hex digits of the token's sha256>). Blank lines and lines
// starting with # are skipped. Errors name the line, never the token.
func ParseTokens(file string, data []byte) ([]Token, error) {
	var out []Token
	seen := map[[sha256.Size]byte]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, secret, named := strings.Cut(line, ":")
		if !named {
			name, secret = "", line
		}
		name, secret = strings.TrimSpace(name), strings.TrimSpace(secret)
		switch {
		case secret == "":
			return nil, fmt.Errorf("%s:%d: empty token; write TOKEN or NAME:TOKEN", file, n)
		case named && name == "":
			return nil, fmt.Errorf("%s:%d: empty name before ':'; write TOKEN or NAME:TOKEN", file, n)
		}
		t := Token{Name: name, secret: sha256.Sum256([]byte(secret))}
		if t.Name == "" {
			t.Name = "token-" + hex.EncodeToString(t.secret[:])[:6]
		}
		if prev, dup := seen[t.secret]; dup {
			return nil, fmt.Errorf("%s:%d: the same token as line %d", file, n, prev)
		}
		seen[t.secret] = n
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no tokens; write one per line, TOKEN or NAME:TOKEN", file)
	}
	return out, nil
}

// LoadTokens reads the token file at path (see ParseTokens).
func LoadTokens(path string) ([]Token, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseTokens(path, data)
}

// Auth identifies callers of the admin API: by bearer token
// ("authorization: Bearer TOKEN" metadata) or, with ClientCerts, by the
// common name of a verified client certificate. A call that presents
// neither, or a wrong token, is refused with Unauthenticated. Health
// checks alone need no credentials (see exempt).
type Auth struct {
	Tokens []Token
	// ClientCerts reports whether the listener verifies client
	// certificates (mTLS), so that a verified one identifies the caller.
	ClientCerts bool
}

// ErrNoCredentials explains a call refused for want of credentials.
var ErrNoCredentials = errors.New("no credentials")

type identityKey struct{}

// Identity returns the authenticated caller of ctx's call, "" if none.
func Identity(ctx context.Context) string {
	id, _ := ctx.Value(identityKey{}).(string)
	return id
}

// authenticate returns the identity of the caller of ctx.
func (a Auth) authenticate(ctx context.Context) (string, error) {
	if vals := metadata.ValueFromIncomingContext(ctx, "authorization"); len(vals) > 0 {
		scheme, tok, ok := strings.Cut(vals[0], " ")
		if !ok || !strings.EqualFold(scheme, "bearer") || len(a.Tokens) == 0 {
			return "", status.Error(codes.Unauthenticated, "authorization metadata must be \"Bearer TOKEN\", with a token from weir's --admin-token-file")
		}
		if name, ok := a.match(strings.TrimSpace(tok)); ok {
			return name, nil
		}
		return "", status.Error(codes.Unauthenticated, "the bearer token is not one of weir's --admin-token-file")
	}
	if cn, ok := a.clientCert(ctx); ok {
		return cn, nil
	}
	var how []string
	if len(a.Tokens) > 0 {
		how = append(how, "a bearer token from weir's --admin-token-file")
	}
	if a.ClientCerts {
		how = append(how, "a client certificate signed by weir's --admin-client-ca")
	}
	if len(how) == 0 {
		return "", status.Errorf(codes.Unauthenticated, "%v: weir was started without admin credentials; restart it with --admin-token-file FILE (lines NAME:TOKEN) or --admin-tls-cert, --admin-tls-key and --admin-client-ca", ErrNoCredentials)
	}
	return "", status.Errorf(codes.Unauthenticated, "%v: this call needs %s", ErrNoCredentials, strings.Join(how, " or "))
}

// match compares tok with every token in constant time.
func (a Auth) match(tok string) (string, bool) {
	sum := sha256.Sum256([]byte(tok))
	name, found := "", 0
	for _, t := range a.Tokens {
		eq := subtle.ConstantTimeCompare(sum[:], t.secret[:])
		if eq == 1 {
			name = t.Name
		}
		found |= eq
	}
	return name, found == 1
}

// clientCert returns the common name of the call's verified client
// certificate.
func (a Auth) clientCert(ctx context.Context) (string, bool) {
	if !a.ClientCerts {
		return "", false
	}
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return "", false
	}
	cn := info.State.VerifiedChains[0][0].Subject.CommonName
	return cn, cn != ""
}

// exempt reports whether method needs no credentials: health checks only,
// so that a load balancer can probe the port. Reflection reveals the API
// and needs credentials like any call.
func exempt(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.Health/")
}

// UnaryInterceptor refuses unary calls without valid credentials and
// passes the caller's identity on in the context.
func (a Auth) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if exempt(info.FullMethod) {
			return handler(ctx, req)
		}
		id, err := a.authenticate(ctx)
		if err != nil {
			return nil, err
		}
		return handler(context.WithValue(ctx, identityKey{}, id), req)
	}
}

// StreamInterceptor is UnaryInterceptor for streams.
func (a Auth) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if exempt(info.FullMethod) {
			return handler(srv, ss)
		}
		id, err := a.authenticate(ss.Context())
		if err != nil {
			return err
		}
		return handler(srv, &identifiedStream{ServerStream: ss, ctx: context.WithValue(ss.Context(), identityKey{}, id)})
	}
}

type identifiedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identifiedStream) Context() context.Context { return s.ctx }

// ServerOptions returns the interceptors that enforce a.
func (a Auth) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(a.UnaryInterceptor()), grpc.ChainStreamInterceptor(a.StreamInterceptor())}
}
