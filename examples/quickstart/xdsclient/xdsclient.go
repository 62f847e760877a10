// Package xdsclient connects proxyless gRPC clients (targets such as
// xds:///greeter) to weir without a GRPC_XDS_BOOTSTRAP file: it builds the
// bootstrap from an address and a node id and hands it to grpc-go directly.
//
// grpc-go reads GRPC_XDS_BOOTSTRAP once, when its xds package initialises, and
// shares one xDS client per process. Passing the bootstrap per ClientConn lets
// a demo run from a bare command line and lets one test process hold clients
// with different node ids against different control planes.
package xdsclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/xds" // registers the xds:/// resolver and the xDS balancers
)

// ErrNotXDSTarget is returned by Dial for a target whose scheme is not xds:
// such a target would silently bypass the bootstrap Dial builds.
var ErrNotXDSTarget = errors.New("xdsclient: target scheme must be xds (for example xds:///greeter)")

// bootstrap mirrors the parts of grpc-go's bootstrap format that weir uses.
// grpc-go requires xds_servers, each with a server_uri and at least one
// channel_creds type it supports. Node fields such as user_agent_name are
// filled in by grpc-go itself and ignored if present.
type bootstrap struct {
	XDSServers []xdsServer `json:"xds_servers"`
	Node       node        `json:"node"`
}

type xdsServer struct {
	ServerURI    string         `json:"server_uri"`
	ChannelCreds []channelCreds `json:"channel_creds"`
	// ServerFeatures carries xds_v3 for older and non-Go clients that still
	// read it; grpc-go 1.84 speaks only v3 and ignores it.
	ServerFeatures []string `json:"server_features"`
}

type channelCreds struct {
	Type string `json:"type"`
}

type node struct {
	ID string `json:"id"`
}

// BootstrapJSON returns a grpc-go xDS bootstrap config that talks plaintext
// ADS to the management server at xdsAddr (host:port) and identifies itself
// as nodeID, the name weir reports it under (proxy status, NACK logs).
func BootstrapJSON(xdsAddr, nodeID string) []byte {
	b, err := json.Marshal(bootstrap{
		XDSServers: []xdsServer{{
			ServerURI:      xdsAddr,
			ChannelCreds:   []channelCreds{{Type: "insecure"}},
			ServerFeatures: []string{"xds_v3"},
		}},
		Node: node{ID: nodeID},
	})
	if err != nil {
		// Only strings and slices of strings: Marshal cannot fail.
		panic(fmt.Sprintf("xdsclient: marshal bootstrap: %v", err))
	}
	return b
}

// Dial returns a ClientConn for an xds: target (for example xds:///greeter)
// whose resolver uses BootstrapJSON(xdsAddr, nodeID) instead of the
// process-wide bootstrap. Like grpc.NewClient it does not connect: the xDS
// stream opens on the first RPC or on Connect. Connections to backends are
// plaintext; opts are applied after Dial's own and may override them.
func Dial(target, xdsAddr, nodeID string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "xds" {
		return nil, fmt.Errorf("%w, got %q", ErrNotXDSTarget, target)
	}
	if xdsAddr == "" || nodeID == "" {
		return nil, fmt.Errorf("xdsclient: xDS server address %q and node id %q must both be non-empty", xdsAddr, nodeID)
	}
	// grpc-go 1.84 exports no other API for a per-channel bootstrap (its own
	// end-to-end tests in test/xds use this one). A config it rejects shows
	// up only when the channel first resolves, as a failed RPC.
	rb, err := xds.NewXDSResolverWithConfigForTesting(BootstrapJSON(xdsAddr, nodeID))
	if err != nil {
		return nil, fmt.Errorf("xdsclient: build xds resolver for %s: %w", xdsAddr, err)
	}
	all := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithResolvers(rb),
	}, opts...)
	cc, err := grpc.NewClient(target, all...)
	if err != nil {
		return nil, fmt.Errorf("xdsclient: new client for %s: %w", target, err)
	}
	return cc, nil
}
