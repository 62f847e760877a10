package main

import (
	"context"
	"fmt"
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
	held    []map[string]string // per proxy: type URL → version last ACKed
	ready   int                 // proxies holding routes and endpoints
	readyc  chan struct{}
	current *round
	seen    observed // what the verifying proxy last received
	seenc   chan struct{}
}

// observed is what the verifying proxy (an Envoy-shaped one) holds: the
// weights of weightedService's clusters and the endpoint ports of every
// cluster, and how many responses of each type it received.
type observed struct {
	weights   map[string]uint32
	ports     map[string][]uint32
	responses map[string]int
}

// round waits for a set of proxies to ACK a version of one type other than
// the one each held when the round began.
type round struct {
	typeURL string
	start   time.Time
	waiting map[int]string // proxy → version it held at the start
	times   []time.Duration
	done    chan struct{}
}

// connect starts cfg.Streams proxies against addr, cfg.Conns per gRPC
// connection, and returns once every one holds routes and endpoints.
func connect(ctx context.Context, cfg config, addr string) (*fleet, error) {
	ctx, cancel := context.WithCancel(ctx)
	f := &fleet{cancel: cancel, errc: make(chan error, 1), readyc: make(chan struct{}), seenc: make(chan struct{}, 1),
		held: make([]map[string]string, cfg.Streams),
		seen: observed{weights: map[string]uint32{}, ports: map[string][]uint32{}, responses: map[string]int{}}}
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
		p := newProxy(cfg, i, f)
		f.held[i] = map[string]string{}
		f.proxies = append(f.proxies, p)
		f.wg.Add(1)
		go func(c *grpc.ClientConn) {
			defer f.wg.Done()
			if err := p.run(ctx, c, cfg.Delta); err != nil {
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

// newProxy makes proxy i: gRPC-shaped ones are spread evenly (exactly Mix
// of any prefix), and proxy 0, Envoy-shaped, verifies what is served. The
// gRPC-shaped ones call the services in turn, the first of them the
// service scenario (a) changes: numbered by their index instead, with
// --mix 0.5 and an even number of services, none called it.
func newProxy(cfg config, i int, f *fleet) *proxy {
	isGRPC := int(float64(i+1)*cfg.Mix) > int(float64(i)*cfg.Mix) && i > 0
	rank := int(float64(i) * cfg.Mix) // gRPC-shaped proxies before i
	p := &proxy{idx: i, grpc: isGRPC, svc: serviceName(rank % cfg.Services), fleet: f, verify: i == 0,
		node: &corev3.Node{Id: fmt.Sprintf("bench-%d", i), Cluster: "bench", UserAgentName: "envoy"}}
	if isGRPC {
		p.node.UserAgentName = "gRPC Go"
	}
	return p
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
	held := f.held[idx]
	first := held[resourcev3.RouteType] == "" || held[resourcev3.EndpointType] == ""
	held[typeURL] = version
	if first && held[resourcev3.RouteType] != "" && held[resourcev3.EndpointType] != "" {
		if f.ready++; f.ready == len(f.held) {
			close(f.readyc)
		}
	}
	if r := f.current; r != nil && r.typeURL == typeURL {
		if was, ok := r.waiting[idx]; ok && was != version {
			delete(r.waiting, idx)
			r.times = append(r.times, t.Sub(r.start))
			if len(r.waiting) == 0 {
				close(r.done)
			}
		}
	}
}

// observe records what the verifying proxy received.
func (f *fleet) observe(resp response) {
	var ws map[string]uint32
	var ports map[string][]uint32
	switch resp.typeURL {
	case resourcev3.RouteType:
		ws = clusterWeights(resp.resources, weightedService)
	case resourcev3.EndpointType:
		ports = endpointPorts(resp.resources)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(ws) > 0 {
		f.seen.weights = ws
	}
	for c, ps := range ports {
		f.seen.ports[c] = ps
	}
	f.seen.responses[resp.typeURL]++
	select {
	case f.seenc <- struct{}{}:
	default:
	}
}

// observed returns a copy of what the verifying proxy holds.
func (f *fleet) observed() observed {
	f.mu.Lock()
	defer f.mu.Unlock()
	return observed{weights: clone(f.seen.weights), ports: clone(f.seen.ports), responses: clone(f.seen.responses)}
}

func clone[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// begin starts a round of typeURL for the proxies picked; call it before
// making the change, and await it after.
func (f *fleet) begin(typeURL string, pick func(*proxy) bool) *round {
	r := &round{typeURL: typeURL, waiting: map[int]string{}, done: make(chan struct{})}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.proxies {
		if pick(p) {
			r.waiting[p.idx] = f.held[p.idx][typeURL]
		}
	}
	r.start = time.Now()
	f.current = r
	return r
}

// await waits until every proxy of r ACKed a new version, and returns the
// sorted times from r's start. On timeout it returns an error.
func (f *fleet) await(r *round, timeout time.Duration) ([]time.Duration, error) {
	f.mu.Lock()
	total := len(r.waiting) + len(r.times)
	empty := len(r.waiting) == 0
	f.mu.Unlock()
	var err error
	if !empty {
		select {
		case <-r.done:
		case err = <-f.errc:
		case <-time.After(timeout):
			err = fmt.Errorf("timeout")
		}
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

// awaitObserved waits until the verifying proxy holds what ok accepts.
func (f *fleet) awaitObserved(ok func(observed) bool, timeout time.Duration) error {
	deadline := time.After(timeout)
	for !ok(f.observed()) {
		select {
		case <-f.seenc:
		case err := <-f.errc:
			return err
		case <-deadline:
			return fmt.Errorf("the verifying proxy did not receive the expected configuration within %v", timeout)
		}
	}
	return nil
}

func sorted(ds []time.Duration) []time.Duration {
	out := slices.Clone(ds)
	slices.Sort(out)
	return out
}
