package xds

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weir-mesh/weir/policy"
)

type deltaClient struct {
	t      *testing.T
	stream deltaStream
	resps  chan *discoveryv3.DeltaDiscoveryResponse
}

// deltaStream is a delta xDS stream: ADS, or one type's service.
type deltaStream interface {
	Send(*discoveryv3.DeltaDiscoveryRequest) error
	Recv() (*discoveryv3.DeltaDiscoveryResponse, error)
	CloseSend() error
}

func dialDelta(t *testing.T, addr string) *deltaClient {
	t.Helper()
	return dialDeltaWith(t, addr, func(ctx context.Context, conn *grpc.ClientConn) (deltaStream, error) {
		return discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	})
}

// dialDeltaEDS opens a stream of the endpoint discovery service, whose
// requests may leave their type out.
func dialDeltaEDS(t *testing.T, addr string) *deltaClient {
	t.Helper()
	return dialDeltaWith(t, addr, func(ctx context.Context, conn *grpc.ClientConn) (deltaStream, error) {
		return endpointservice.NewEndpointDiscoveryServiceClient(conn).DeltaEndpoints(ctx)
	})
}

func dialDeltaWith(t *testing.T, addr string, open func(context.Context, *grpc.ClientConn) (deltaStream, error)) *deltaClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := open(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	c := &deltaClient{t: t, stream: stream, resps: make(chan *discoveryv3.DeltaDiscoveryResponse, 16)}
	go func() {
		defer close(c.resps)
		for {
			r, err := stream.Recv()
			if err != nil {
				return
			}
			c.resps <- r
		}
	}()
	t.Cleanup(func() { cancel(); conn.Close() })
	return c
}

func (c *deltaClient) send(req *discoveryv3.DeltaDiscoveryRequest) {
	c.t.Helper()
	if err := c.stream.Send(req); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *deltaClient) recv() *discoveryv3.DeltaDiscoveryResponse {
	c.t.Helper()
	select {
	case r, ok := <-c.resps:
		if !ok {
			c.t.Fatal("stream closed")
		}
		return r
	case <-time.After(waitTimeout):
		c.t.Fatal("no delta response within", waitTimeout)
		return nil
	}
}

func deltaNames(r *discoveryv3.DeltaDiscoveryResponse) []string {
	var names []string
	for _, res := range r.Resources {
		names = append(names, res.Name)
	}
	return names
}

func TestDeltaSendsOnlyChanges(t *testing.T) {
	srv := startServer(t)
	mustSet(t, srv.cache, greeterSnapshot(t, policy.Weights{"v1": 10000}, "v1", "v2"))
	c := dialDelta(t, srv.addr)
	c.send(&discoveryv3.DeltaDiscoveryRequest{Node: envoyNode, TypeUrl: resourcev3.ClusterType})
	first := c.recv()
	if got, want := deltaNames(first), []string{"greeter/v1", "greeter/v2"}; !slices.Equal(got, want) {
		t.Fatalf("first delta CDS = %v, want %v", got, want)
	}
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: first.Nonce})

	// v1 leaves: only its removal is sent, v2 is not repeated.
	mustSet(t, srv.cache, greeterSnapshot(t, policy.Weights{"v2": 10000}, "v2"))
	second := c.recv()
	if len(second.Resources) != 0 || !slices.Equal(second.RemovedResources, []string{"greeter/v1"}) {
		t.Fatalf("second delta CDS: resources %v, removed %v; want only greeter/v1 removed", deltaNames(second), second.RemovedResources)
	}

	// A NACK is recorded against the version it rejects and not answered
	// with the same content again: the next response is the next change,
	// which removes greeter/v1 again, as the client rejected its removal.
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: second.Nonce,
		ErrorDetail: &statuspb.Status{Code: 3, Message: "bad cluster"}})
	eventually(t, "delta NACK recorded", func() bool {
		ps := srv.tracker.Proxies()
		return len(ps) == 1 && ps[0].Types[resourcev3.ClusterType].LastNack != nil
	})
	if nack := srv.tracker.Proxies()[0].Types[resourcev3.ClusterType].LastNack; nack.Version != second.SystemVersionInfo {
		t.Errorf("NACK recorded for version %q, want %q", nack.Version, second.SystemVersionInfo)
	}
	mustSet(t, srv.cache, greeterSnapshot(t, policy.Weights{"v3": 10000}, "v2", "v3"))
	third := c.recv()
	if !slices.Equal(deltaNames(third), []string{"greeter/v3"}) || !slices.Equal(third.RemovedResources, []string{"greeter/v1"}) {
		t.Fatalf("third delta CDS: resources %v, removed %v; want the new greeter/v3, and greeter/v1 removed again",
			deltaNames(third), third.RemovedResources)
	}
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: third.Nonce})

	// Once the client ACKs, nothing rejected is owed: the next change
	// sends only itself.
	mustSet(t, srv.cache, greeterSnapshot(t, policy.Weights{"v3": 10000}, "v3"))
	if fourth := c.recv(); len(fourth.Resources) != 0 || !slices.Equal(fourth.RemovedResources, []string{"greeter/v2"}) {
		t.Fatalf("fourth delta CDS: resources %v, removed %v; want only greeter/v2 removed", deltaNames(fourth), fourth.RemovedResources)
	}
}

// TestDeltaResendsWhatANackRejected: a client that rejects a changed
// resource keeps the one it had. go-control-plane takes the response as
// held once sent, so without weir's help the resource would be sent again
// only when it changes again, and an ACK of a later response would claim
// a version whose content the client does not hold. Over the endpoint
// discovery service, whose requests may leave their type out, too.
func TestDeltaResendsWhatANackRejected(t *testing.T) {
	for _, stream := range []struct {
		name    string
		dial    func(*testing.T, string) *deltaClient
		typeURL string
	}{{"ADS", dialDelta, resourcev3.EndpointType}, {"EDS without type", dialDeltaEDS, ""}} {
		t.Run(stream.name, func(t *testing.T) {
			srv, c, moved := movedEndpoint(t, stream.dial, stream.typeURL)
			c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: stream.typeURL, ResponseNonce: moved.Nonce,
				ErrorDetail: &statuspb.Status{Code: 3, Message: "bad endpoint"}})

			// greeter/v2 appears: the answer sends it and greeter/v1's
			// rejected assignment again, unchanged since it was rejected.
			mustSet(t, srv.cache, greeterSnapshot(t, policy.Weights{"v1": 10000}, "v0", "v1", "v2"))
			next := c.recv()
			if got := slices.Sorted(slices.Values(deltaNames(next))); !slices.Equal(got, []string{"greeter/v1", "greeter/v2"}) {
				t.Fatalf("next change = %v, want greeter/v2 and the rejected greeter/v1", got)
			}
			for _, r := range next.Resources {
				if r.Name == "greeter/v1" && r.Version != moved.Resources[0].Version {
					t.Errorf("greeter/v1 re-sent at version %q, want the rejected %q", r.Version, moved.Resources[0].Version)
				}
			}
			if ps := srv.tracker.Proxies(); len(ps) != 1 || !slices.Equal(slices.Sorted(maps.Keys(ps[0].Types)), []string{resourcev3.EndpointType}) {
				t.Errorf("tracked %v, want one proxy with the endpoint type only", ps)
			}
		})
	}
}

// movedEndpoint connects a delta client (with dial; its requests name
// typeURL) subscribed to greeter/v1 and greeter/v2 endpoints, moves
// greeter/v1's endpoint, and returns the client and the response that
// moved it, not yet answered.
func movedEndpoint(t *testing.T, dial func(*testing.T, string) *deltaClient, typeURL string) (*testServer, *deltaClient, *discoveryv3.DeltaDiscoveryResponse) {
	t.Helper()
	srv := startServer(t)
	mustSet(t, srv.cache, greeterSnapshot(t, policy.Weights{"v1": 10000}, "v1"))
	c := dial(t, srv.addr)
	c.send(&discoveryv3.DeltaDiscoveryRequest{Node: envoyNode, TypeUrl: typeURL,
		ResourceNamesSubscribe: []string{"greeter/v1", "greeter/v2"}})
	first := c.recv()
	if !slices.Equal(deltaNames(first), []string{"greeter/v1"}) {
		t.Fatalf("first delta EDS = %v, want greeter/v1", deltaNames(first))
	}
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: typeURL, ResponseNonce: first.Nonce})
	mustSet(t, srv.cache, greeterSnapshot(t, policy.Weights{"v1": 10000}, "v0", "v1"))
	moved := c.recv()
	if !slices.Equal(deltaNames(moved), []string{"greeter/v1"}) {
		t.Fatalf("delta EDS after the move = %v, want greeter/v1", deltaNames(moved))
	}
	return srv, c, moved
}

// TestDeltaOwesARejectedResourceAcrossSubscriptions: after a NACK, the
// client subscribes to another name before anything changes (as Envoy
// does when new clusters need endpoints); the answer to that sends the
// rejected resource again too.
func TestDeltaOwesARejectedResourceAcrossSubscriptions(t *testing.T) {
	_, c, moved := movedEndpoint(t, dialDelta, resourcev3.EndpointType)
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResponseNonce: moved.Nonce,
		ErrorDetail: &statuspb.Status{Code: 3, Message: "bad endpoint"}})
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNamesSubscribe: []string{"greeter/v0"}})
	next := c.recv()
	if got := slices.Sorted(slices.Values(deltaNames(next))); !slices.Equal(got, []string{"greeter/v0", "greeter/v1"}) {
		t.Fatalf("answer to the new subscription = %v, want greeter/v0 and the rejected greeter/v1", got)
	}
}

// TestDeltaOwesWhatAnOlderResponseCarried: the client NACKs a response
// after a newer one was sent, computed as if the older were held; once it
// ACKs the newer one, the next change sends the rejected resource again.
func TestDeltaOwesWhatAnOlderResponseCarried(t *testing.T) {
	srv, c, moved := movedEndpoint(t, dialDelta, resourcev3.EndpointType)
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNamesSubscribe: []string{"greeter/v0"}})
	newer := c.recv()
	if !slices.Equal(deltaNames(newer), []string{"greeter/v0"}) {
		t.Fatalf("answer to the new subscription = %v, want greeter/v0", deltaNames(newer))
	}
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResponseNonce: moved.Nonce,
		ErrorDetail: &statuspb.Status{Code: 3, Message: "bad endpoint"}})
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResponseNonce: newer.Nonce})

	// The NACK is recorded against the version it rejected.
	eds := func() TypeStatus {
		ps := srv.tracker.Proxies()
		if len(ps) != 1 {
			return TypeStatus{}
		}
		return ps[0].Types[resourcev3.EndpointType]
	}
	eventually(t, "the NACK of the older response recorded", func() bool { return eds().LastNack != nil })
	if got := eds().LastNack.Version; got != moved.SystemVersionInfo {
		t.Errorf("NACK recorded for version %q, want the rejected %q", got, moved.SystemVersionInfo)
	}

	mustSet(t, srv.cache, greeterSnapshot(t, policy.Weights{"v1": 10000}, "v0", "v1", "v2"))
	next := c.recv()
	if got := slices.Sorted(slices.Values(deltaNames(next))); !slices.Equal(got, []string{"greeter/v1", "greeter/v2"}) {
		t.Fatalf("next change = %v, want greeter/v2 and the rejected greeter/v1", got)
	}
	// next answers the watch the ACK of newer made, so that ACK is
	// recorded by now: it does not count as applying newer, as the client
	// lacked greeter/v1's new endpoint.
	if got := eds().Acked; got == newer.SystemVersionInfo {
		t.Errorf("ACKed %q while greeter/v1 was owed", got)
	}
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResponseNonce: next.Nonce})
	eventually(t, "the ACK of what was owed recorded", func() bool { return eds().Acked == next.SystemVersionInfo })
}

func TestDeltaNamedSubscriptions(t *testing.T) {
	srv := startServer(t)
	mustSet(t, srv.cache, greeterSnapshot(t, policy.Weights{"v1": 10000}, "v1"))
	c := dialDelta(t, srv.addr)
	c.send(&discoveryv3.DeltaDiscoveryRequest{Node: grpcNode, TypeUrl: resourcev3.ClusterType,
		ResourceNamesSubscribe: []string{"greeter/v1", "greeter/v9"}})
	first := c.recv()
	if !slices.Equal(deltaNames(first), []string{"greeter/v1"}) || !slices.Equal(first.RemovedResources, []string{"greeter/v9"}) {
		t.Fatalf("first: resources %v removed %v; want greeter/v1 and greeter/v9 reported missing", deltaNames(first), first.RemovedResources)
	}
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: first.Nonce})

	// Subscribing to another unknown name later is answered at once.
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResourceNamesSubscribe: []string{"greeter/v8"}})
	second := c.recv()
	if len(second.Resources) != 0 || !slices.Equal(second.RemovedResources, []string{"greeter/v8"}) {
		t.Fatalf("second: resources %v removed %v; want only greeter/v8 reported missing", deltaNames(second), second.RemovedResources)
	}
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: second.Nonce})

	// When a missing name appears, it is sent.
	mustSet(t, srv.cache, greeterSnapshot(t, policy.Weights{"v1": 10000}, "v1", "v9"))
	if third := c.recv(); !slices.Equal(deltaNames(third), []string{"greeter/v9"}) {
		t.Fatalf("third: resources %v, want greeter/v9", deltaNames(third))
	}
}

// TestDeltaNackThatUnsubscribesIsNotAnswered checks that a NACK that also
// unsubscribes (Envoy folds subscription changes into its next request) is
// not answered: since unsubscribing requests are answered, it once got the
// resource it had just rejected, unchanged, and NACKed it again.
func TestDeltaNackThatUnsubscribesIsNotAnswered(t *testing.T) {
	srv, c, moved := movedEndpoint(t, dialDelta, resourcev3.EndpointType)
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResponseNonce: moved.Nonce,
		ErrorDetail: &statuspb.Status{Code: 3, Message: "bad endpoint"}, ResourceNamesUnsubscribe: []string{"greeter/v2"}})
	eventually(t, "the NACK's watch to be held", func() bool { return srv.cache.watches() == 1 })
	if n := len(c.resps); n != 0 {
		t.Errorf("the NACK that unsubscribes was answered (%d responses); the answer holds what it rejected", n)
	}
}
