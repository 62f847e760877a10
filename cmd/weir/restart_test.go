package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"

	"github.com/weir-mesh/weir/envoy"
	"github.com/weir-mesh/weir/policy"
	adminv1 "github.com/weir-mesh/weir/policy/admin/v1"
)

// A restart of weir (stopped as by SIGTERM, started again on the same
// address, state directory, catalog and policies) under a gRPC client
// that keeps calling through it: the client keeps its routing while weir
// is down, and the first routes weir sends it when it reconnects are those
// it held.

// sentLog records the route configurations one weir sends, per node id, in
// order.
type sentLog struct {
	mu     sync.Mutex
	routes map[string][]*discoveryv3.DiscoveryResponse
}

// option returns the xDS server option that records into l.
func (l *sentLog) option() grpc.ServerOption {
	return grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		return h(srv, &loggedStream{ServerStream: ss, log: l})
	})
}

// sent returns the route responses sent to node so far.
func (l *sentLog) sent(node string) []*discoveryv3.DiscoveryResponse {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*discoveryv3.DiscoveryResponse(nil), l.routes[node]...)
}

func (l *sentLog) add(node string, r *discoveryv3.DiscoveryResponse) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.routes == nil {
		l.routes = make(map[string][]*discoveryv3.DiscoveryResponse)
	}
	l.routes[node] = append(l.routes[node], r)
}

// loggedStream is an xDS stream whose route responses go to a sentLog
// under the node id of its first request.
type loggedStream struct {
	grpc.ServerStream
	log  *sentLog
	mu   sync.Mutex // the server receives and sends on different goroutines
	node string
}

func (s *loggedStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if r, ok := m.(*discoveryv3.DiscoveryRequest); ok && err == nil && r.GetNode().GetId() != "" {
		s.mu.Lock()
		s.node = r.GetNode().GetId()
		s.mu.Unlock()
	}
	return err
}

func (s *loggedStream) SendMsg(m any) error {
	if r, ok := m.(*discoveryv3.DiscoveryResponse); ok && r.GetTypeUrl() == resourcev3.RouteType {
		s.mu.Lock()
		node := s.node
		s.mu.Unlock()
		s.log.add(node, r)
	}
	return s.ServerStream.SendMsg(m)
}

// splitOf describes the routes of a route response, as
// "greeter/v1=6000 greeter/v2=4000" for the catch-all, with header matches
// as match[...] and the warming route as warm[...].
func splitOf(t *testing.T, r *discoveryv3.DiscoveryResponse) string {
	t.Helper()
	var out []string
	for _, a := range r.GetResources() {
		rc := &routev3.RouteConfiguration{}
		must(t, a.UnmarshalTo(rc))
		for _, vh := range rc.GetVirtualHosts() {
			for _, route := range vh.GetRoutes() {
				out = append(out, describeRoute(route))
			}
		}
	}
	return strings.Join(out, " ")
}

func describeRoute(route *routev3.Route) string {
	var ws []string
	for _, cw := range route.GetRoute().GetWeightedClusters().GetClusters() {
		ws = append(ws, fmt.Sprintf("%s=%d", cw.GetName(), cw.GetWeight().GetValue()))
	}
	if c := route.GetRoute().GetCluster(); c != "" {
		ws = append(ws, c)
	}
	switch {
	case route.GetName() == envoy.WarmingRouteName:
		return "warm[" + strings.Join(ws, " ") + "]"
	case len(route.GetMatch().GetHeaders()) > 0:
		return "match[" + strings.Join(ws, " ") + "]"
	}
	return strings.Join(ws, " ")
}

// startOn serves weir (again) on xdsAddr with the environment's files and
// state, recording the routes it sends, and dials the client once; edits
// change weir's configuration first.
func (env *rolloutEnv) startOn(t *testing.T, xdsAddr string, edits ...func(*serveConfig)) *sentLog {
	t.Helper()
	cfg := testConfig(filepath.Dir(env.policyFile))
	cfg.Catalog, cfg.StateDir, cfg.clock, cfg.XDSAddr = env.catalog, env.stateDir, env.clock.Now, xdsAddr
	// A bridge waits for a stalled proxy, and a restarted weir for its
	// client to reconnect, longer than any wait of a test (until's).
	cfg.AckTimeout = time.Minute
	for _, edit := range edits {
		edit(&cfg)
	}
	log := &sentLog{}
	env.w = startWeirWith(t, cfg, log.option())
	if env.c == nil {
		env.dial(t)
	}
	return log
}

// heldRoutes waits until the last routes weir sent the client give v2
// the weight want, in basis points, and the client ACKed them, and
// returns them.
func (env *rolloutEnv) heldRoutes(t *testing.T, log *sentLog, want int) string {
	t.Helper()
	var held string
	until(t, fmt.Sprintf("the client to hold v2=%d", want), func() bool {
		sent := log.sent(rolloutClient)
		if len(sent) == 0 {
			return false
		}
		held = splitOf(t, sent[len(sent)-1])
		for _, p := range env.w.srv.tracker.Proxies() {
			if rt := p.Types[resourcev3.RouteType]; p.NodeID == rolloutClient && rt.Acked == sent[len(sent)-1].GetVersionInfo() {
				return strings.Contains(held, fmt.Sprintf("greeter/v2=%d", want))
			}
		}
		return false
	})
	return held
}

// restart stops weir, lets the client call through the outage, starts weir
// on the same address, and returns the first routes it sent the client.
func (env *rolloutEnv) restart(t *testing.T) string {
	t.Helper()
	addr := env.w.xdsAddr
	env.w.Stop()
	down := len(env.c.results())
	until(t, "100 RPCs while weir is down", func() bool { return len(env.c.results()) >= down+100 })
	log := env.startOn(t, addr)
	until(t, "the client to reconnect", func() bool { return len(log.sent(rolloutClient)) > 0 })
	return splitOf(t, log.sent(rolloutClient)[0])
}

// TestRestartKeepsTheClientsRouting restarts weir at a canary's 50 %
// pause: no RPC fails while it is down or after, and the routes it sends
// the reconnecting client are those the client held.
func TestRestartKeepsTheClientsRouting(t *testing.T) {
	env := rolloutFiles(t, canaryPolicy)
	log := env.startOn(t, "127.0.0.1:0")
	env.flow(t)
	env.toHalfPause(t)
	held := env.heldRoutes(t, log, 5000)
	if got := env.restart(t); got != held {
		t.Errorf("the first routes after the restart: %s, want those the client held: %s", got, held)
	}
	near(t, "after the restart", env.share(t, 1000), 50, 8)
}

// The steps after the 40 % one have no pause: each follows as soon as the
// fleet applied the one before.
const quickStepsPolicy = `service: greeter
strategy: canary
stable: v1
canary:
  version: v2
  steps:
    - setWeight: 20
    - pause: {}
    - setWeight: 40
    - setWeight: 60
    - setWeight: 80
    - pause: {}
progressDeadline: 30s
`

// TestRestartMidStepWaitsForTheFleet restarts weir while a step is in
// progress (a proxy that never ACKs holds it): the restarted weir had no
// proxy connected yet, took that for a fleet that applied the step, went
// through the 60 % and 80 % steps with nobody to apply them, and the
// reconnecting client's first routes were 20/80 where it held 60/40.
func TestRestartMidStepWaitsForTheFleet(t *testing.T) {
	env := rolloutFiles(t, quickStepsPolicy)
	log := env.startOn(t, "127.0.0.1:0")
	env.flow(t)
	env.await(t, "the pause at 20 %", func(r policy.Rollout) bool { return r.Phase == policy.Paused && r.Weight == 2000 })
	silentProxy(t, env.w.xdsAddr, "stalled-proxy")
	until(t, "the stalled proxy to subscribe", func() bool { return len(routesFetched(env.w, "stalled-proxy")) > 0 })
	env.do(t, func(p policy.Policy, r policy.Rollout, now time.Time) (policy.Rollout, policy.Event, error) {
		return policy.Resume(p, r, now, "test", "e2e")
	})
	until(t, "the 40 % step", func() bool { return env.rollout().Weight == 4000 })
	held := env.heldRoutes(t, log, 4000)
	if got := env.restart(t); got != held {
		t.Errorf("the first routes after the restart: %s, want those the client held: %s (rollout now: %s)", got, held, rolloutState(env.rollout()))
	}
	env.await(t, "the pause at 80 %", func(r policy.Rollout) bool { return r.Phase == policy.Paused && r.Weight == 8000 })
}

// withAckTimeout sets weir's --ack-timeout.
func withAckTimeout(d time.Duration) func(*serveConfig) {
	return func(cfg *serveConfig) { cfg.AckTimeout = d }
}

// TestRestartMidStepMovesOnWithoutTheFleet restarts weir while a step is
// in progress (a proxy that never ACKs holds it), as
// TestRestartMidStepWaitsForTheFleet does, but no proxy reconnects (the
// fleet was scaled away): the restarted weir waits for its fleet only the
// ack timeout, meanwhile saying so in /readyz and with an applied fraction
// of 0, and then goes through the steps as with no fleet. It used to wait
// until the progress deadline paused the rollout, and then again after
// every resume. The stopping weir saves the step in progress: it once
// took the fleet that the stop disconnected for one that applied it, and
// saved the steps after it.
func TestRestartMidStepMovesOnWithoutTheFleet(t *testing.T) {
	const ackTimeout = 2 * time.Second
	env := rolloutFiles(t, quickStepsPolicy)
	env.startOn(t, "127.0.0.1:0") // its client makes no call, so it never connects
	env.await(t, "the pause at 20 %", func(r policy.Rollout) bool { return r.Phase == policy.Paused && r.Weight == 2000 })
	silentProxy(t, env.w.xdsAddr, "stalled-proxy")
	until(t, "the stalled proxy to subscribe", func() bool { return len(routesFetched(env.w, "stalled-proxy")) > 0 })
	_, paused := env.w.readyz(t)
	env.do(t, func(p policy.Policy, r policy.Rollout, now time.Time) (policy.Rollout, policy.Event, error) {
		return policy.Resume(p, r, now, "test", "e2e")
	})
	until(t, "the 40 % step to be served", func() bool { _, r := env.w.readyz(t); return r.Version != paused.Version })
	env.w.Stop()
	stored := env.storedRollout(t)
	if stored.Phase != policy.Progressing || stored.Weight != 4000 || !stored.AppliedAt.IsZero() {
		t.Fatalf("weir stopped and saved the rollout %s, applied at %v; want the 40 %% step, not applied: the stalled proxy never applied it",
			rolloutState(stored), stored.AppliedAt)
	}

	started := time.Now()
	env.startOn(t, "127.0.0.1:0", withAckTimeout(ackTimeout))
	until(t, "/readyz to answer 200", func() bool { code, _ := env.w.readyz(t); return code == 200 })
	env.whileAwaitingTheFleet(t, stored, started.Add(ackTimeout))
	until(t, "the rollout to move on without a proxy", func() bool { return env.rollout().Step > stored.Step })
	if waited := time.Since(started); waited < ackTimeout {
		t.Errorf("the restored rollout moved on %s after the restart, before the ack timeout of %s", waited, ackTimeout)
	}
	env.await(t, "the pause at 80 %", func(r policy.Rollout) bool { return r.Phase == policy.Paused && r.Weight == 8000 })
	if _, r := env.w.readyz(t); r.AwaitingReconnect != nil {
		t.Errorf("/readyz awaits the fleet's reconnection until %v after weir stopped waiting", r.AwaitingReconnect)
	}
	if got := testutil.ToFloat64(env.w.srv.metrics.AppliedFraction); got != 1 {
		t.Errorf("weir_fleet_applied_fraction = %v with no proxy connected, once weir stopped waiting, want 1", got)
	}
}

// storedRollout returns greeter's rollout as the stopped weir left it in
// its store.
func (env *rolloutEnv) storedRollout(t *testing.T) policy.Rollout {
	t.Helper()
	store, err := policy.OpenStore(env.stateDir)
	must(t, err)
	defer store.Close()
	rollouts, _, _, err := store.Load()
	must(t, err)
	return rollouts["greeter"]
}

// whileAwaitingTheFleet checks, if weir still waits for its fleet to
// reconnect (which it does at least until notBefore), that it says so:
// /readyz names when it stops waiting, and the applied fraction of the
// metrics and of the admin API is 0, not 1 as for 0 of 0 proxies; and that
// the rollout is where weir restored it.
func (env *rolloutEnv) whileAwaitingTheFleet(t *testing.T, restored policy.Rollout, notBefore time.Time) {
	t.Helper()
	_, r := env.w.readyz(t)
	metric := testutil.ToFloat64(env.w.srv.metrics.AppliedFraction)
	admin, err := env.w.srv.adminServer().GetRollout(context.Background(), &adminv1.GetRolloutRequest{Service: "greeter"})
	must(t, err)
	now := env.rollout()
	if time.Now().After(notBefore) {
		t.Logf("weir may have stopped waiting for its fleet before the test looked (a slow host): not checked")
		return
	}
	if r.AwaitingReconnect == nil || r.AwaitingReconnect.Before(notBefore) {
		t.Errorf("/readyz awaits the fleet's reconnection until %v, want a time from %v", r.AwaitingReconnect, notBefore)
	}
	if metric != 0 || admin.GetAppliedFraction() != 0 {
		t.Errorf("while weir waits for its fleet: weir_fleet_applied_fraction %v, the admin API's applied fraction %v, want 0 and 0",
			metric, admin.GetAppliedFraction())
	}
	if now.Step != restored.Step {
		t.Errorf("while weir waits for its fleet the rollout is %s, want it where it was restored: %s", rolloutState(now), rolloutState(restored))
	}
}

// rolloutState describes r for messages.
func rolloutState(r policy.Rollout) string {
	return fmt.Sprintf("%s at step %d, %s", r.Phase, r.Step, r.Weights())
}

// holdsAll reports whether the client holds, of every type it subscribes
// to, what weir serves now.
func (env *rolloutEnv) holdsAll() bool {
	for _, p := range env.w.srv.tracker.Proxies() {
		if p.NodeID != rolloutClient {
			continue
		}
		for typ, st := range p.Types {
			if st.Acked != env.w.srv.cache.VersionFor(typ, p.Class, st.Names, st.Wildcard) {
				return false
			}
		}
		return len(p.Types) > 0
	}
	return false
}

// TestRestartMidBridge restarts weir while it serves a make-before-break
// bridge that a proxy which never ACKs holds in place, and the client has
// applied: a fixed 50/50 split whose v2 goes critical (routes first, v2's
// endpoints kept until the fleet applied them) or comes back (v2's
// endpoints first, its share after). The restarted weir serves the
// bridge's target at once, which the client can take from the bridge it
// holds: no RPC fails.
func TestRestartMidBridge(t *testing.T) {
	for _, tc := range []struct {
		from, to     string
		bridge, next string // the routes of the bridge, and the first after the restart
	}{
		{"passing", "critical", "greeter/v1=10000 warm[greeter/v2=1]", "greeter/v1=10000 warm[greeter/v2=1]"},
		{"critical", "passing", "greeter/v1=5000 warm[greeter/v2=1]", "greeter/v1=5000 greeter/v2=5000"},
	} {
		t.Run("v2 "+tc.to, func(t *testing.T) {
			env := rolloutFiles(t, greeterPolicy("50", "50"))
			env.writeCatalog(t, tc.from)
			log := env.startOn(t, "127.0.0.1:0")
			env.flow(t)
			until(t, "the client to hold the split", env.holdsAll)
			silentProxy(t, env.w.xdsAddr, "stalled-proxy")
			until(t, "the stalled proxy to subscribe", func() bool { return len(routesFetched(env.w, "stalled-proxy")) > 0 })
			env.writeCatalog(t, tc.to)
			until(t, "the client to hold a bridge", func() bool { return !env.w.srv.publisher.ServingTarget() && env.holdsAll() })
			sent := log.sent(rolloutClient)
			if held := splitOf(t, sent[len(sent)-1]); held != tc.bridge {
				t.Fatalf("the client holds %s, want the bridge's %s", held, tc.bridge)
			}
			if got := env.restart(t); got != tc.next {
				t.Errorf("the first routes after the restart: %s, want %s", got, tc.next)
			}
			until(t, "the client to hold the target", env.holdsAll)
			env.share(t, 200)
		})
	}
}
