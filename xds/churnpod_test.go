package xds

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weir-mesh/weir/snapshot"
)

// churnPod is one pod's connection to weir; its methods return errors
// rather than fail the test, as pods live on goroutines of their own.
type churnPod struct {
	id   int
	node *corev3.Node
	addr string

	mu      sync.Mutex
	conns   []*churnConn
	grpcs   []*grpc.ClientConn
	cancels []context.CancelFunc // of its streams
}

// dial opens a connection whose transport the pod can break.
func (p *churnPod) dial() (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			cc := &churnConn{Conn: c, frozen: make(chan struct{}), gone: make(chan struct{})}
			p.mu.Lock()
			p.conns = append(p.conns, cc)
			p.mu.Unlock()
			return cc, nil
		}))
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.grpcs = append(p.grpcs, conn)
	p.mu.Unlock()
	return conn, nil
}

// reset breaks the pod's connections without a goodbye: an RST, no
// HTTP/2 GOAWAY or stream reset.
func (p *churnPod) reset() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		if err := c.Conn.(*net.TCPConn).SetLinger(0); err != nil {
			return err
		}
		c.Close()
	}
	return nil
}

// vanish makes the pod's connections silent, as a pod that is gone
// without closing them, and waits until weir has dropped its streams.
func (p *churnPod) vanish(cs *churnServer) error {
	p.mu.Lock()
	for _, c := range p.conns {
		c.freeze()
	}
	p.mu.Unlock()
	deadline := time.Now().Add(waitTimeout)
	for slices.ContainsFunc(cs.tracker.Proxies(), func(pr Proxy) bool { return pr.NodeID == p.node.Id }) {
		if time.Now().After(deadline) {
			return fmt.Errorf("weir kept the stream of a vanished proxy for %v", waitTimeout)
		}
		time.Sleep(10 * time.Millisecond) // polls the tracker; nothing signals a stream gone
	}
	return nil
}

// close ends what the pod left open.
func (p *churnPod) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, cancel := range p.cancels {
		cancel()
	}
	for _, c := range p.grpcs {
		c.Close()
	}
	for _, c := range p.conns {
		c.Close()
	}
}

// churnConn is a connection that can go silent: once frozen, it takes
// nothing in and lets nothing out, and keeps its socket open until it is
// thawed.
type churnConn struct {
	net.Conn
	frozen, gone       chan struct{}
	freezeOnce, thawed sync.Once
}

func (c *churnConn) freeze() { c.freezeOnce.Do(func() { close(c.frozen) }) }

// Close ends a freeze too: reads blocked by it fail.
func (c *churnConn) Close() error {
	c.thawed.Do(func() { close(c.gone) })
	return c.Conn.Close()
}

func (c *churnConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	select {
	case <-c.frozen:
		<-c.gone
		return 0, net.ErrClosed
	default:
		return n, err
	}
}

func (c *churnConn) Write(b []byte) (int, error) {
	select {
	case <-c.frozen:
		return len(b), nil
	default:
		return c.Conn.Write(b)
	}
}

// streamContext returns the context of a new stream of the pod, which
// close cancels if the pod did not.
func (p *churnPod) streamContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	p.mu.Lock()
	p.cancels = append(p.cancels, cancel)
	p.mu.Unlock()
	return ctx, cancel
}

// churnSotw is a state-of-the-world ADS stream of a pod.
type churnSotw struct {
	node   *corev3.Node
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	cancel context.CancelFunc
}

func (p *churnPod) sotw() (*churnSotw, error) {
	conn, err := p.dial()
	if err != nil {
		return nil, err
	}
	ctx, cancel := p.streamContext()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	return &churnSotw{node: p.node, stream: stream, cancel: cancel}, nil
}

func (s *churnSotw) send(req *discoveryv3.DiscoveryRequest) error {
	req.Node = s.node
	return s.stream.Send(req)
}

// exchange sends req and returns the next response of its type; pushes of
// other types are left unanswered.
func (s *churnSotw) exchange(req *discoveryv3.DiscoveryRequest) (*discoveryv3.DiscoveryResponse, error) {
	if err := s.send(req); err != nil {
		return nil, err
	}
	for {
		r, err := s.stream.Recv()
		if err != nil || r.TypeUrl == req.TypeUrl {
			return r, err
		}
	}
}

// subscribe subscribes to names of typeURL (nil: all) and ACKs the answer.
func (s *churnSotw) subscribe(typeURL string, names []string) error {
	r, err := s.exchange(&discoveryv3.DiscoveryRequest{TypeUrl: typeURL, ResourceNames: names})
	if err != nil {
		return err
	}
	return s.send(&discoveryv3.DiscoveryRequest{TypeUrl: typeURL, VersionInfo: r.VersionInfo, ResponseNonce: r.Nonce, ResourceNames: names})
}

// envoy subscribes as a sidecar does.
func (s *churnSotw) envoy(clusters []string) error {
	return errors.Join(s.subscribe(resourcev3.ClusterType, nil), s.subscribe(resourcev3.EndpointType, clusters),
		s.subscribe(resourcev3.ListenerType, nil), s.subscribe(resourcev3.RouteType, []string{snapshot.RouteConfigName}))
}

// grpcClient subscribes as a proxyless gRPC client of service does.
func (s *churnSotw) grpcClient(service string) error {
	clusters := []string{snapshot.ClusterName(service, "v1"), snapshot.ClusterName(service, "v2")}
	return errors.Join(s.subscribe(resourcev3.ListenerType, []string{service}),
		s.subscribe(resourcev3.RouteType, []string{snapshot.ServiceRouteConfigName(service)}),
		s.subscribe(resourcev3.ClusterType, clusters), s.subscribe(resourcev3.EndpointType, clusters))
}

// closeSend closes the client's side and reads until the server ends the
// stream.
func (s *churnSotw) closeSend() error {
	defer s.cancel()
	if err := s.stream.CloseSend(); err != nil {
		return err
	}
	for {
		if _, err := s.stream.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// churnDelta is a delta stream of a pod.
type churnDelta struct {
	node   *corev3.Node
	stream deltaStream
	cancel context.CancelFunc
	sent   bool
}

// delta opens a delta stream with open; nil opens delta ADS.
func (p *churnPod) delta(open func(context.Context, *grpc.ClientConn) (deltaStream, error)) (*churnDelta, error) {
	if open == nil {
		open = func(ctx context.Context, conn *grpc.ClientConn) (deltaStream, error) {
			return discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
		}
	}
	conn, err := p.dial()
	if err != nil {
		return nil, err
	}
	ctx, cancel := p.streamContext()
	stream, err := open(ctx, conn)
	if err != nil {
		cancel()
		return nil, err
	}
	return &churnDelta{node: p.node, stream: stream, cancel: cancel}, nil
}

// send sends req, with the node on the stream's first request only.
func (d *churnDelta) send(req *discoveryv3.DeltaDiscoveryRequest) error {
	if !d.sent {
		req.Node, d.sent = d.node, true
	}
	return d.stream.Send(req)
}

func (d *churnDelta) exchange(req *discoveryv3.DeltaDiscoveryRequest) (*discoveryv3.DeltaDiscoveryResponse, error) {
	if err := d.send(req); err != nil {
		return nil, err
	}
	for {
		r, err := d.stream.Recv()
		if err != nil || req.TypeUrl == "" || r.TypeUrl == req.TypeUrl {
			return r, err
		}
	}
}

func (d *churnDelta) closeSend() error {
	defer d.cancel()
	if err := d.stream.CloseSend(); err != nil {
		return err
	}
	for {
		if _, err := d.stream.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}
