package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weir-mesh/weir/discovery/file"
	"github.com/weir-mesh/weir/envoy"
	"github.com/weir-mesh/weir/policy"
	"github.com/weir-mesh/weir/xds"
)

// TestMain lets this test binary serve as the baseline process, which the
// harness starts as `<its own executable> baseline`.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "baseline" {
		main()
		return
	}
	os.Exit(m.Run())
}

// TestSmoke runs the whole harness with a tiny fleet, over both protocols,
// so that it never rots: both servers must bring every proxy to 100 % ACK
// for every change, and the verifying proxy must see each change served.
func TestSmoke(t *testing.T) {
	weir := filepath.Join(t.TempDir(), "weir")
	if out, err := exec.Command("go", "build", "-o", weir, "github.com/weir-mesh/weir/cmd/weir").CombinedOutput(); err != nil {
		t.Fatalf("building weir: %v\n%s", err, out)
	}
	for _, delta := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cfg := defaultConfig()
		cfg.Weir, cfg.Delta = weir, delta
		cfg.Streams, cfg.Conns, cfg.Services, cfg.Endpoints, cfg.Changes, cfg.Burst = 20, 7, 5, 2, 2, 10
		cfg.Timeout = 20 * time.Second
		res, err := run(ctx, cfg)
		if err != nil {
			t.Fatalf("delta=%v: %v", delta, err)
		}
		if len(res.servers) != 2 {
			t.Fatalf("measured %d servers, want weir and baseline", len(res.servers))
		}
		for _, s := range res.servers {
			if len(s.errs) > 0 {
				t.Errorf("delta=%v: %s: %v", delta, s.name, s.errs)
			}
			if len(s.weights) != cfg.Changes || len(s.endpoints) != cfg.Changes {
				t.Errorf("delta=%v: %s: %d weight and %d endpoint changes reached 100 %% ACK, want %d each",
					delta, s.name, len(s.weights), len(s.endpoints), cfg.Changes)
			}
			if s.burst.pushes < 1 || s.steady.rss <= 0 {
				t.Errorf("delta=%v: %s: burst pushed %v snapshots, RSS %v: not measured", delta, s.name, s.burst.pushes, s.steady.rss)
			}
		}
		var out bytes.Buffer
		res.print(&out)
		for _, want := range []string{"weir", "baseline/weir", "100% ACKed", "cores", "per stream"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("table lacks %q:\n%s", want, out.String())
			}
		}
		t.Logf("delta=%v:\n%s", delta, out.String())
	}
}

// TestMixSpreadsGRPC checks that --mix makes that fraction of the proxies
// gRPC-shaped, evenly, and that proxy 0, which verifies, is Envoy-shaped.
func TestMixSpreadsGRPC(t *testing.T) {
	cfg := config{Streams: 8, Mix: 0.25, Services: 2}
	var grpc []int
	for i := range cfg.Streams {
		if newProxy(cfg, i, nil).grpc {
			grpc = append(grpc, i)
		}
	}
	if len(grpc) != 2 || grpc[0] != 3 || grpc[1] != 7 {
		t.Errorf("gRPC-shaped proxies at --mix 0.25: %v, want [3 7]", grpc)
	}
	if newProxy(config{Mix: 1, Services: 1}, 0, nil).grpc {
		t.Error("proxy 0 is gRPC-shaped; it verifies what Envoy-shaped proxies receive")
	}
}

// TestClusterNamesFromTheWire checks the generator's shortcut against a
// full decode.
func TestClusterNamesFromTheWire(t *testing.T) {
	var resources []*anypb.Any
	for _, name := range []string{"b/v1", "a/v2"} {
		a, err := anypb.New(envoy.Cluster(name))
		if err != nil {
			t.Fatal(err)
		}
		resources = append(resources, a)
	}
	if got := clusterNames(resources); !slices.Equal(got, []string{"a/v2", "b/v1"}) {
		t.Errorf("clusterNames = %v, want [a/v2 b/v1]", got)
	}
}

func TestResponseHeaderFromTheWire(t *testing.T) {
	a, err := anypb.New(envoy.Cluster("a/v1"))
	if err != nil {
		t.Fatal(err)
	}
	encoded, err := proto.Marshal(&discoveryv3.DiscoveryResponse{VersionInfo: "v7", Resources: []*anypb.Any{a, a},
		TypeUrl: resourcev3.ClusterType, Nonce: "12", ControlPlane: &corev3.ControlPlane{Identifier: "weir"}})
	if err != nil {
		t.Fatal(err)
	}
	var got response
	if err := got.readHeader(encoded); err != nil {
		t.Fatal(err)
	}
	want := response{typeURL: resourcev3.ClusterType, version: "v7", nonce: "12"}
	if got.typeURL != want.typeURL || got.version != want.version || got.nonce != want.nonce || got.resources != nil {
		t.Errorf("readHeader = %+v, want %+v", got, want)
	}
	if err := new(response).readHeader(encoded[:len(encoded)-1]); err == nil {
		t.Error("a truncated response was read without error")
	}
}

// TestGRPCProxiesCallTheWeightedService checks that scenario (a) waits on
// gRPC-shaped proxies too, in every shape BENCHMARKS.md quotes: numbered by
// proxy index, with --mix 0.5 and an even number of services, none called
// the service (a) changes.
func TestGRPCProxiesCallTheWeightedService(t *testing.T) {
	for _, c := range []struct{ streams, services int }{{2000, 100}, {10000, 100}, {100, 100}, {200, 5000}} {
		cfg := defaultConfig()
		cfg.Streams, cfg.Services = c.streams, c.services
		callers := 0
		for i := range cfg.Streams {
			if p := newProxy(cfg, i, nil); p.grpc && p.svc == weightedService {
				callers++
			}
		}
		if callers == 0 {
			t.Errorf("%d streams, %d services: no gRPC-shaped proxy calls %s", c.streams, c.services, weightedService)
		}
	}
}

// TestBaselineServesEachClassItsListeners checks that the baseline, like
// weir, sends an Envoy the sidecar listener, which names one route
// configuration, and a gRPC client the api_listeners: it once sent every
// proxy both, and an Envoy-shaped proxy followed every service's route
// configuration besides weir_outbound.
func TestBaselineServesEachClassItsListeners(t *testing.T) {
	w, err := newWorld(t.TempDir(), 100, 10)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(w.catalogPath())
	if err != nil {
		t.Fatal(err)
	}
	m, err := file.Parse(w.catalogPath(), data)
	if err != nil {
		t.Fatal(err)
	}
	set, err := policy.LoadDir(w.policyDir())
	if err != nil {
		t.Fatal(err)
	}
	b := newBaseline()
	b.model, b.policies = &m, &set
	b.rebuild()
	for class, want := range map[xds.Class]int{xds.Envoy: 1, xds.GRPC: 100} {
		var lds []*anypb.Any
		for _, l := range b.latest[class].GetResources(resourcev3.ListenerType) {
			a, err := anypb.New(l.(proto.Message))
			if err != nil {
				t.Fatal(err)
			}
			lds = append(lds, a)
		}
		if names := routeConfigNames(lds, class == xds.GRPC); len(lds) != want || len(names) != want {
			t.Errorf("%s: %d listeners naming %d route configurations, want %d", class, len(lds), len(names), want)
		}
	}
}
