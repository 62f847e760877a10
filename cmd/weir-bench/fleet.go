package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// fleet is N simulated proxies against one target, and the record of when
// each of them ACKed which version of which type.
type fleet struct {
	// settled is set once every proxy holds routes and endpoints. The
	// scenarios then change weights and ports, never which clusters exist,
	// so proxies stop parsing responses to follow names and only ACK: the
	// generator shares the machine with the server under test, and parsing
	// every route configuration would measure the generator, not the server.
	settled atomic.Bool
	proxies []*proxy
	conns   []*grpc.ClientConn
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	errc    chan error // first stream error

	mu      sync.Mutex
	acks    []map[string]map[string]time.Time // per proxy: type URL → version → latest ACK
	ready   int                               // proxies holding routes and endpoints
	readyc  chan struct{}
	current *round
}

// round waits for a set of proxies to ACK expected versions of one type.
type round struct {
	typeURL  string
	start    time.Time
	expected map[int]string // proxy → version it must ACK
	times    []time.Duration
	done     chan struct{}
}

// connect starts cfg.Streams proxies against addr, cfg.Conns per gRPC
// connection, and returns once every one holds routes and endpoints.
func connect(ctx context.Context, cfg config, addr string) (*fleet, error) {
	ctx, cancel := context.WithCancel(ctx)
	f := &fleet{cancel: cancel, errc: make(chan error, 1), readyc: make(chan struct{}),
		acks: make([]map[string]map[string]time.Time, cfg.Streams)}
	var conn *grpc.ClientConn
	for i := range cfg.Streams {
		if i%cfg.Conns == 0 {
			var err error
			conn, err = grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(128<<20)))
			if err != nil {
				f.close()
				return nil, err
			}
			f.conns = append(f.conns, conn)
		}
		// Spread the gRPC-shaped proxies evenly: exactly Mix of any prefix.
		isGRPC := int(float64(i+1)*cfg.Mix) > int(float64(i)*cfg.Mix)
		p := &proxy{idx: i, grpc: isGRPC, svc: serviceName(i % cfg.Services), fleet: f,
			node: &corev3.Node{Id: fmt.Sprintf("bench-%d", i), Cluster: "bench", UserAgentName: "envoy"}}
		if isGRPC {
			p.node.UserAgentName = "gRPC Go"
		}
		f.acks[i] = map[string]map[string]time.Time{}
		f.proxies = append(f.proxies, p)
		f.wg.Add(1)
		go func(c *grpc.ClientConn) {
			defer f.wg.Done()
			if err := p.run(ctx, c); err != nil {
				select {
				case f.errc <- fmt.Errorf("proxy %d: %w", p.idx, err):
				default:
				}
			}
		}(conn)
	}
	select {
	case <-f.readyc:
		return f, nil
	case err := <-f.errc:
		f.close()
		return nil, err
	case <-time.After(cfg.Timeout):
		f.close()
		return nil, fmt.Errorf("not every proxy received routes and endpoints within %v (%d of %d did)", cfg.Timeout, f.readyCount(), cfg.Streams)
	}
}

func (f *fleet) readyCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ready
}

func (f *fleet) close() {
	f.cancel()
	for _, c := range f.conns {
		c.Close()
	}
	f.wg.Wait()
}

// acked records that proxy idx ACKed version of typeURL at t.
func (f *fleet) acked(idx int, typeURL, version string, t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	byType := f.acks[idx]
	first := len(byType[resourcev3.RouteType]) == 0 || len(byType[resourcev3.EndpointType]) == 0
	if byType[typeURL] == nil {
		byType[typeURL] = map[string]time.Time{}
	}
	byType[typeURL][version] = t
	if first && len(byType[resourcev3.RouteType]) > 0 && len(byType[resourcev3.EndpointType]) > 0 {
		if f.ready++; f.ready == len(f.acks) {
			close(f.readyc)
		}
	}
	if r := f.current; r != nil && r.typeURL == typeURL {
		r.record(idx, version, t)
	}
}

// record counts proxy idx if version is the one it must ACK.
func (r *round) record(idx int, version string, t time.Time) {
	if want, ok := r.expected[idx]; !ok || want != version || t.Before(r.start) {
		return
	}
	delete(r.expected, idx)
	r.times = append(r.times, t.Sub(r.start))
	if len(r.expected) == 0 {
		close(r.done)
	}
}

// await waits until every proxy in expected ACKed its version of typeURL,
// counting from start (ACKs since start that already arrived count), and
// returns the sorted times. On timeout it returns what arrived and an error.
func (f *fleet) await(typeURL string, start time.Time, expected map[int]string, timeout time.Duration) ([]time.Duration, error) {
	r := &round{typeURL: typeURL, start: start, expected: expected, done: make(chan struct{})}
	total := len(expected)
	f.mu.Lock()
	// Iterate a copy: record deletes from r.expected.
	for idx, want := range maps.Clone(expected) {
		if t, ok := f.acks[idx][typeURL][want]; ok {
			r.record(idx, want, t)
		}
	}
	if len(r.expected) == 0 && total > 0 {
		f.mu.Unlock()
		return sorted(r.times), nil
	}
	f.current = r
	f.mu.Unlock()
	var err error
	select {
	case <-r.done:
	case err = <-f.errc:
	case <-time.After(timeout):
		err = fmt.Errorf("timeout")
	}
	f.mu.Lock()
	f.current = nil
	times := sorted(r.times)
	f.mu.Unlock()
	if err != nil {
		return times, fmt.Errorf("%d of %d proxies ACKed within %v: %w", len(times), total, timeout, err)
	}
	return times, nil
}

func sorted(ds []time.Duration) []time.Duration {
	out := slices.Clone(ds)
	slices.Sort(out)
	return out
}
