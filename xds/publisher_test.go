package xds

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/policy"
	"github.com/weir-mesh/weir/snapshot"
)

func newTestPublisher(t *testing.T) (*Publisher, *Metrics) {
	t.Helper()
	m := NewMetrics(prometheus.NewRegistry(), func() float64 { return 0 })
	p := NewPublisher(PublisherConfig{Cache: NewCache(), Metrics: m, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return p, m
}

// runPublisher runs p until the test ends.
func runPublisher(t *testing.T, p *Publisher) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("publisher: %v", err)
		}
	})
}

func greeterModel(t *testing.T, versions ...string) discovery.Model {
	t.Helper()
	var instances []discovery.Instance
	for i, v := range versions {
		instances = append(instances, discovery.Instance{ID: "greeter-" + v, Address: "127.0.0.1", Port: uint32(9100 + i), Version: v})
	}
	m, err := discovery.NewModel([]discovery.Service{{Name: "greeter", Instances: instances}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func fixedSet(t *testing.T, weights policy.Weights) policy.Set {
	t.Helper()
	s, err := policy.NewSet(policy.Policy{Service: "greeter", Strategy: policy.Fixed, Weights: weights, File: "greeter.yaml", Line: 1})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPublisherWaitsForBothInputs(t *testing.T) {
	p, _ := newTestPublisher(t)
	p.Update(greeterModel(t, "v1"))
	p.publish(t.Context())
	if st := p.Status(); st.Ready || p.cfg.Cache.Version() != "" || len(st.Waiting) != 1 || st.Waiting[0] != SourcePolicies {
		t.Fatalf("published with discovery alone: %+v", st)
	}
	p.SetPolicies(fixedSet(t, policy.Weights{"v1": policy.Full}), nil)
	p.publish(t.Context())
	if st := p.Status(); !st.Ready || p.cfg.Cache.Version() != st.Version {
		t.Fatalf("not published with both inputs: %+v", st)
	}
}

func TestPublisherKeepsLastGoodOnRejection(t *testing.T) {
	p, m := newTestPublisher(t)
	p.Update(greeterModel(t, "v1", "v2"))
	p.SetPolicies(fixedSet(t, policy.Weights{"v1": 9000, "v2": 1000}), nil)
	p.publish(t.Context())
	good := p.Status().Version

	p.SetPolicies(policy.Set{}, errors.New("greeter.yaml:3: weights: weights sum to 110, must be 100"))
	p.Reject(errors.New("catalog.yaml:4: services[0].instances[0].address: must be an IP literal"))
	p.publish(t.Context())
	st := p.Status()
	if st.Version != good || p.cfg.Cache.Version() != good {
		t.Fatalf("a rejection changed what is served: %s → %s", good, st.Version)
	}
	if !strings.Contains(st.Rejected[SourcePolicies], "greeter.yaml:3") || !strings.Contains(st.Rejected[SourceDiscovery], "catalog.yaml:4") {
		t.Fatalf("rejections not reported: %v", st.Rejected)
	}
	if got := testutil.ToFloat64(m.RejectedSources.WithLabelValues(SourcePolicies)); got != 1 {
		t.Errorf("weir_config_rejected{source=policies} = %v, want 1", got)
	}

	p.SetPolicies(fixedSet(t, policy.Weights{"v1": 5000, "v2": 5000}), nil)
	p.publish(t.Context())
	if st := p.Status(); st.Version == good || st.Rejected[SourcePolicies] != "" {
		t.Fatalf("a good edit after a rejection: %+v", st)
	}
	if got := testutil.ToFloat64(m.RejectedSources.WithLabelValues(SourcePolicies)); got != 0 {
		t.Errorf("weir_config_rejected{source=policies} = %v after a good edit, want 0", got)
	}
}

// TestPublisherRejectionLogSaysWhatServes checks that a rejection's log
// line says a last good config keeps serving only once there is one: a bad
// policy directory at start-up used to be logged so while /readyz said 503,
// waiting for policies, and nothing was served.
func TestPublisherRejectionLogSaysWhatServes(t *testing.T) {
	var logs strings.Builder
	p := NewPublisher(PublisherConfig{Cache: NewCache(), Metrics: NewMetrics(prometheus.NewRegistry(), func() float64 { return 0 }),
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	bad := errors.New("greeter.yaml:3: weights: weights sum to 110, must be 100")
	p.Update(greeterModel(t, "v1"))
	p.SetPolicies(policy.Set{}, bad)
	if got := logs.String(); strings.Contains(got, "keeps serving") || !strings.Contains(got, "nothing is published until") {
		t.Errorf("rejected before anything was published, logged:\n%s", got)
	}
	p.SetPolicies(fixedSet(t, policy.Weights{"v1": policy.Full}), nil)
	p.publish(t.Context())
	logs.Reset()
	p.SetPolicies(policy.Set{}, bad)
	if got := logs.String(); !strings.Contains(got, "the last good config keeps serving") {
		t.Errorf("rejected while serving, logged:\n%s", got)
	}
}

func TestPublisherReportsUnservedVersions(t *testing.T) {
	p, m := newTestPublisher(t)
	p.Update(greeterModel(t, "v1"))
	p.SetPolicies(fixedSet(t, policy.Weights{"v1": 9000, "v3": 1000}), nil)
	p.publish(t.Context())
	if got := testutil.ToFloat64(m.UnservedVersions.WithLabelValues("greeter", "v3")); got != 1 {
		t.Errorf("weir_policy_unserved_versions{greeter,v3} = %v, want 1", got)
	}
	if w := p.Status().Warnings; len(w) != 1 || !strings.Contains(w[0], "v3") {
		t.Errorf("warnings = %q, want one naming v3", w)
	}
}

func TestPublisherRefusesEmptyWorld(t *testing.T) {
	p, _ := newTestPublisher(t)
	p.Update(greeterModel(t, "v1"))
	p.SetPolicies(policy.Set{}, nil)
	p.publish(t.Context())
	good := p.Status().Version
	p.Update(discovery.Model{})
	p.publish(t.Context())
	if st := p.Status(); st.Version != good || !strings.Contains(st.Rejected[SourceDiscovery], "empty world") {
		t.Fatalf("after an empty model: version %s (want %s), rejected %v", st.Version, good, st.Rejected)
	}
}

func TestPublisherCoalescesBursts(t *testing.T) {
	p, m := newTestPublisher(t)
	// A long window keeps the test independent of how fast this machine
	// delivers 50 updates.
	p.cfg.Debounce = time.Second
	runPublisher(t, p)

	// 50 changes in a row, as a deploy that registers 50 instances would
	// cause, are one or two pushes: the first change at once (perhaps with
	// others that landed meanwhile), the rest together a window later.
	p.SetPolicies(policy.Set{}, nil)
	for port := range uint32(50) {
		p.Update(portModel(t, 9000+port))
	}
	eventually(t, "the last model of the burst to be served", serves(t, p, portModel(t, 9049)))
	if got := testutil.ToFloat64(m.Publishes); got != 1 && got != 2 {
		t.Errorf("a burst of 50 updates caused %v publishes, want 1 or 2", got)
	}
}

// The debounce tests below run in a synctest bubble: time is the bubble's,
// and advances only when every goroutine in it waits, so a burst's shape is
// exact and so is when the publisher builds.

// settledPublisher runs a publisher with debounce in the bubble, serving
// a first model, and returns it a quiet spell after its last build.
func settledPublisher(t *testing.T, debounce time.Duration) (*Publisher, *Metrics) {
	t.Helper()
	p, m := newTestPublisher(t)
	p.cfg.Debounce = debounce
	runPublisher(t, p)
	p.SetPolicies(policy.Set{}, nil)
	p.Update(portModel(t, 8999))
	time.Sleep(10 * debounce)
	synctest.Wait()
	if !serves(t, p, portModel(t, 8999))() {
		t.Fatal("the first model is not served")
	}
	return p, m
}

// expectPublishes lets a second pass and fails unless p then serves the
// model of port and made want publishes since it had made published.
func expectPublishes(t *testing.T, p *Publisher, m *Metrics, port uint32, published, want float64) {
	t.Helper()
	time.Sleep(time.Second)
	synctest.Wait()
	if !serves(t, p, portModel(t, port))() {
		t.Fatalf("the last change (port %d) is not served a second after it", port)
	}
	if got := testutil.ToFloat64(m.Publishes) - published; got != want {
		t.Errorf("the changes caused %v publishes, want %v", got, want)
	}
}

// TestPublisherGathersASpreadBurst checks that a burst spread over longer
// than Debounce is still two pushes: its first change at once, and the
// rest once changes stopped coming for a quarter of Debounce.
func TestPublisherGathersASpreadBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, m := settledPublisher(t, time.Second)
		published := testutil.ToFloat64(m.Publishes)
		p.Update(portModel(t, 9000))
		synctest.Wait()
		if !serves(t, p, portModel(t, 9000))() {
			t.Fatal("the burst's first change is not served at once")
		}
		// 28 more changes 50 ms apart: 1.4 s, longer than Debounce.
		for port := uint32(9001); port <= 9028; port++ {
			time.Sleep(50 * time.Millisecond)
			p.Update(portModel(t, port))
		}
		expectPublishes(t, p, m, 9028, published, 2)
	})
}

// TestPublisherDoesNotHoldASlowStream checks that changes which keep coming,
// but further apart than a quarter of Debounce, are built about every
// Debounce rather than held until they stop (or for maxGather × Debounce).
func TestPublisherDoesNotHoldASlowStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, m := settledPublisher(t, time.Second)
		published := testutil.ToFloat64(m.Publishes)
		p.Update(portModel(t, 9000))
		// 7 more changes 400 ms apart, each gap longer than 250 ms: built
		// at 1.05 s (Debounce after the first build, then 250 ms after
		// the change at 0.8 s), 2.25 s and 3.25 s. Gathering until the
		// changes stop would make it 2 publishes in all.
		for port := uint32(9001); port <= 9007; port++ {
			time.Sleep(400 * time.Millisecond)
			p.Update(portModel(t, port))
		}
		expectPublishes(t, p, m, 9007, published, 4)
	})
}

// TestPublisherWaitsOnlyTheRestOfDebounce checks that a lone change soon
// after a build is built exactly Debounce after that build.
func TestPublisherWaitsOnlyTheRestOfDebounce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := settledPublisher(t, 100*time.Millisecond)
		p.Update(portModel(t, 9000))
		time.Sleep(90 * time.Millisecond)
		p.Update(portModel(t, 9001))
		time.Sleep(9 * time.Millisecond)
		synctest.Wait()
		if serves(t, p, portModel(t, 9001))() {
			t.Fatal("a change 90 ms after a build was built before Debounce (100 ms) had passed")
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if !serves(t, p, portModel(t, 9001))() {
			t.Fatal("a lone change 90 ms after a build was not built 100 ms after it")
		}
	})
}

// TestPublisherBuildsABurstsFirstChangeWithinDebounce checks that a burst
// starting soon after a build has its first change built Debounce after
// that build, not once the burst is over, and the rest in one more build.
func TestPublisherBuildsABurstsFirstChangeWithinDebounce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, m := settledPublisher(t, 100*time.Millisecond)
		p.Update(portModel(t, 9000))
		time.Sleep(30 * time.Millisecond)
		published := testutil.ToFloat64(m.Publishes)
		// 100 changes 1 ms apart, from 30 ms after the last build.
		for port := uint32(9001); port <= 9100; port++ {
			p.Update(portModel(t, port))
			time.Sleep(time.Millisecond)
			if port == 9071 { // 101 ms after the last build
				synctest.Wait()
				if serves(t, p, portModel(t, 9000))() {
					t.Fatal("the burst's first change was not built 100 ms after the last build")
				}
			}
		}
		expectPublishes(t, p, m, 9100, published, 2)
	})
}

// TestPublisherGoesOnWithABurstThatCameDuringABuild checks that changes
// which came while a build ran, close together, go on the burst that
// build started: they are gathered until they stop, not cut at Debounce
// after the build because the publisher looked at them late. A build that
// takes longer than a quarter of Debounce, as a push to thousands of
// proxies can, made a burst of 100 changes three pushes.
func TestPublisherGoesOnWithABurstThatCameDuringABuild(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, m := newTestPublisher(t)
		p.cfg.Debounce = 100 * time.Millisecond
		p.afterBuild = func() { time.Sleep(40 * time.Millisecond) } // a build and fan-out of 40 ms
		runPublisher(t, p)
		p.SetPolicies(policy.Set{}, nil)
		p.Update(portModel(t, 8999))
		time.Sleep(time.Second)
		published := testutil.ToFloat64(m.Publishes)
		// 300 changes 1 ms apart: the first is built at once, the rest
		// come while that build runs and go on long after Debounce.
		for port := uint32(9000); port < 9300; port++ {
			p.Update(portModel(t, port))
			time.Sleep(time.Millisecond)
		}
		expectPublishes(t, p, m, 9299, published, 2)
	})
}

// serves returns a condition that holds once p serves the snapshot of model.
func serves(t *testing.T, p *Publisher, model discovery.Model) func() bool {
	t.Helper()
	want, err := snapshot.Build(snapshot.Input{Model: model})
	if err != nil {
		t.Fatal(err)
	}
	return func() bool { return p.cfg.Cache.Version() == want.Version }
}

// portModel is greeter with one instance on port.
func portModel(t *testing.T, port uint32) discovery.Model {
	t.Helper()
	m, err := discovery.NewModel([]discovery.Service{{Name: "greeter", Instances: []discovery.Instance{
		{ID: "greeter-1", Address: "127.0.0.1", Port: port, Version: "v1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPublisherPushesFirstChangeAtOnce checks that a change after a quiet
// spell does not wait for the debounce window: with an hour's window, it
// is still served.
func TestPublisherPushesFirstChangeAtOnce(t *testing.T) {
	p, _ := newTestPublisher(t)
	p.cfg.Debounce = time.Hour
	runPublisher(t, p)

	p.SetPolicies(policy.Set{}, nil)
	model := greeterModel(t, "v1")
	p.Update(model)
	eventually(t, "the first change to be served", serves(t, p, model))
}

func TestPublisherRemovesClustersOnlyAfterRoutesApplied(t *testing.T) {
	srv := startServer(t)
	m := NewMetrics(prometheus.NewRegistry(), func() float64 { return 0 })
	p := NewPublisher(PublisherConfig{Cache: srv.cache, Tracker: srv.tracker, Metrics: m,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Debounce: 10 * time.Millisecond})
	runPublisher(t, p)

	p.SetPolicies(fixedSet(t, policy.Weights{"v1": 5000, "v2": 5000}), nil)
	p.Update(greeterModel(t, "v1", "v2"))
	c := dialADS(t, srv.addr, grpcNode)
	clusters := []string{"greeter/v1", "greeter/v2"}
	c.subscribe(resourcev3.ClusterType, clusters...)
	before := c.recv()
	c.ack(before, clusters...)
	c.subscribe(resourcev3.RouteType, snapshot.ServiceRouteConfigName("greeter"))
	held := c.recv()
	c.ack(held, snapshot.ServiceRouteConfigName("greeter"))
	// What follows judges the routes this client holds: wait until its
	// ACK is recorded, as a real client's would be before a change.
	eventually(t, "the client's ACK of the routes to be recorded", func() bool {
		return routeStatus(srv.tracker).Acked == held.VersionInfo
	})

	// v1 leaves the catalog. First the routes move off it while its cluster
	// stays; only once this client ACKed those routes does v1's cluster go.
	p.Update(greeterModel(t, "v2"))
	routes := c.recv()
	if routes.TypeUrl != resourcev3.RouteType {
		t.Fatalf("first response after v1 left is %s, want the routes", routes.TypeUrl)
	}
	eventually(t, "the publisher to await this client's ACK", func() bool {
		return slices.Equal(p.Status().AwaitingRoutes, []string{grpcNode.Id})
	})
	if v := srv.cache.VersionFor(resourcev3.ClusterType, GRPC, clusters, false); v != before.VersionInfo {
		t.Fatal("while the routes were not applied, the clusters served changed already")
	}
	c.ack(routes, snapshot.ServiceRouteConfigName("greeter"))
	cds := c.recv()
	if got := resourceNames(t, cds); cds.TypeUrl != resourcev3.ClusterType || !slices.Equal(got, []string{"greeter/v2"}) {
		t.Fatalf("second response is %s %v, want clusters [greeter/v2]", cds.TypeUrl, got)
	}
}

func TestPublisherKeepsPublishingWhileABridgeWaits(t *testing.T) {
	srv := startServer(t)
	m := NewMetrics(prometheus.NewRegistry(), func() float64 { return 0 })
	p := NewPublisher(PublisherConfig{Cache: srv.cache, Tracker: srv.tracker, Metrics: m, AckTimeout: time.Hour,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Debounce: 10 * time.Millisecond})
	runPublisher(t, p)

	model := func(greeterVersions []string, otherPort uint32) discovery.Model {
		var greeter []discovery.Instance
		for i, v := range greeterVersions {
			greeter = append(greeter, discovery.Instance{ID: "g-" + v, Address: "127.0.0.1", Port: uint32(9100 + i), Version: v})
		}
		m, err := discovery.NewModel([]discovery.Service{{Name: "greeter", Instances: greeter},
			{Name: "other", Instances: []discovery.Instance{{ID: "o", Address: "127.0.0.1", Port: otherPort, Version: "v1"}}}})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	p.SetPolicies(policy.Set{}, nil)
	p.Update(model([]string{"v1", "v2"}, 9900))
	c := dialADS(t, srv.addr, grpcNode)
	c.subscribe(resourcev3.RouteType, snapshot.ServiceRouteConfigName("greeter"))
	c.ack(c.recv(), snapshot.ServiceRouteConfigName("greeter"))

	// greeter v1 leaves: a bridge keeps it while this client, which stops
	// ACKing, has not applied the new routes.
	p.Update(model([]string{"v2"}, 9900))
	c.recv()
	eventually(t, "the bridge to wait for the client", func() bool { return len(p.Status().AwaitingRoutes) == 1 })

	// Meanwhile another service changes: that is published at once.
	p.Update(model([]string{"v2"}, 9901))
	eventually(t, "the other service's change to be served", func() bool {
		s := p.Current()
		for cla := range s.Endpoints.Values() {
			if cla.GetClusterName() == "other/v1" {
				return cla.GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().GetPortValue() == 9901
			}
		}
		return false
	})
	if s := p.Current(); !slices.Contains(snapshot.ReferencedClusters(s.Resources), "greeter/v2") || len(p.Status().AwaitingRoutes) != 1 {
		t.Fatal("the bridge was given up instead of kept")
	}
	hasV1 := false
	for cl := range p.Current().Clusters.Values() {
		hasV1 = hasV1 || cl.GetName() == "greeter/v1"
	}
	if !hasV1 {
		t.Error("greeter/v1 was removed while the client had not applied the routes that stopped using it")
	}
}

func TestChangeWindowFollowsLookCost(t *testing.T) {
	for _, c := range []struct{ took, want time.Duration }{
		{0, minChangeWindow},
		{time.Millisecond, minChangeWindow},
		{10 * time.Millisecond, 40 * time.Millisecond},
		{time.Second, maxChangeWindow},
	} {
		if got := changeWindow(c.took); got != c.want {
			t.Errorf("after a look of %v: window %v, want %v", c.took, got, c.want)
		}
	}
}
