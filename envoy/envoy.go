// Package envoy builds the Envoy protos weir serves: small total functions
// named after the message they return. Inputs are validated before they get
// here (policy parsing, discovery normalisation), so builders return no errors.
// The output is accepted by both Envoy sidecars and proxyless grpc-go clients.
//
// Builders share the immutable parts that many messages have in common (the
// config source of every cluster, say) rather than allocate them for each:
// protobuf lets one message have several parents, and be read or encoded
// from several goroutines at once. So a caller must not change a message a
// builder returned in place, but clone it first (as snapshot.Bridge does).
package envoy

import (
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Defaults shared by every builder, so they are decided in one place.
const (
	// defaultConnectTimeout bounds TCP connects to upstreams and to the xDS server.
	defaultConnectTimeout = time.Second
	// defaultAdminPort is Envoy's conventional admin port.
	defaultAdminPort = 9901
	// loopback is where Envoy's admin interface listens: never on a routable address.
	loopback = "127.0.0.1"
	// httpProtocolOptionsKey names the upstream HTTP options extension in
	// Cluster.typed_extension_protocol_options.
	httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
)

// adsConfigSource is the config source for resources delivered over the same
// ADS stream. Both Envoy and grpc-go require resource_api_version V3 and ads.
func adsConfigSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

// adsSource is adsConfigSource(), shared (see the package comment).
var adsSource = adsConfigSource()

// socketAddress is a TCP address.
func socketAddress(address string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Protocol:      corev3.SocketAddress_TCP,
		Address:       address,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// mustAny wraps m in an Any with deterministic bytes, so that resources holding
// it hash the same every time. Marshalling a well-formed generated message
// cannot fail; a failure is a programming error.
func mustAny(m proto.Message) *anypb.Any {
	a := new(anypb.Any)
	mustMarshalAny(a, typeURL(m), m)
	return a
}

// mustMarshalAny is mustAny into a, given the type URL of m (see typeURL),
// which callers that marshal many messages of one type make once.
func mustMarshalAny(a *anypb.Any, url string, m proto.Message) {
	b, err := AppendDeterministic(nil, m)
	if err != nil {
		panic("envoy: marshal " + string(m.ProtoReflect().Descriptor().FullName()) + ": " + err.Error())
	}
	a.TypeUrl, a.Value = url, b
}

// typeURL returns the type URL of an Any that holds a message like m, as
// anypb.New makes it.
func typeURL(m proto.Message) string {
	return "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName())
}
