package main

import (
	"context"
	"slices"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/hashicorp/consul/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weir-mesh/weir/internal/consultest"
)

// BenchmarkConsulChangeToACK measures the time from a change in Consul —
// an instance registered or deregistered, a check going critical or
// passing — until a connected gRPC-shaped client has received and ACKed
// the endpoints that reflect it, over 200 changes. It does the same work
// whatever b.N is; run it with -benchtime=1x.
func BenchmarkConsulChangeToACK(b *testing.B) {
	const changes = 200
	agent := consultest.New(b, consultest.Options{})
	must(b, agent.Client.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "greeter-v1-a", Name: "greeter", Address: "127.0.0.1", Port: 9101, Meta: map[string]string{"version": "v1"},
		Check: &api.AgentServiceCheck{CheckID: "greeter-v1-a-ttl", TTL: "10m", Status: api.HealthPassing}}))
	cfg := testConfig(policyDir(b, ""))
	cfg.Debounce = 50 * time.Millisecond // weir serve's default
	cfg.Consul = consulConfig{VersionMetaKey: "version", VersionTagPrefix: "version=", WaitTime: 5 * time.Minute}
	cfg.Consul.Address = agent.Addr()
	w := startWeirWith(b, cfg)
	until(b, "/readyz to answer 200", func() bool { code, _ := w.readyz(b); return code == 200 })
	eds := watchEndpoints(b, w.xdsAddr, "greeter/v1")

	agentAPI := agent.Client.Agent()
	steps := []func() error{
		func() error { return agentAPI.ServiceRegister(reg("greeter-v1-b", "v1", 9102)) },
		func() error { return agentAPI.UpdateTTL("greeter-v1-a-ttl", "down", api.HealthCritical) },
		func() error { return agentAPI.UpdateTTL("greeter-v1-a-ttl", "up", api.HealthPassing) },
		func() error { return agentAPI.ServiceDeregister("greeter-v1-b") },
	}
	for range b.N {
		latencies := make([]time.Duration, 0, changes)
		for i := range changes {
			// Pace the changes like independent events, so that the
			// per-resource rate limit (50 ms) does not dominate.
			time.Sleep(100 * time.Millisecond)
			start := time.Now()
			must(b, steps[i%len(steps)]())
			select {
			case acked := <-eds:
				latencies = append(latencies, acked.Sub(start))
			case <-time.After(waitTimeout):
				b.Fatalf("change %d was not pushed within %v", i, waitTimeout)
			}
		}
		slices.Sort(latencies)
		b.ReportMetric(ms(latencies[len(latencies)/2]), "ms-p50")
		b.ReportMetric(ms(latencies[len(latencies)*99/100]), "ms-p99")
		b.ReportMetric(ms(latencies[len(latencies)-1]), "ms-max")
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// watchEndpoints subscribes the way a gRPC client does to the endpoints of
// cluster, ACKs every response, and sends the time of each ACK after the
// first.
func watchEndpoints(tb testing.TB, addr, cluster string) <-chan time.Time {
	tb.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	must(tb, err)
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(func() { cancel(); conn.Close() })
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	must(tb, err)
	node := &corev3.Node{Id: "bench-client", UserAgentName: "gRPC Go"}
	names := []string{cluster}
	must(tb, stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.EndpointType, ResourceNames: names}))
	acks := make(chan time.Time, 16)
	go func() {
		first := true
		for {
			r, err := stream.Recv()
			if err != nil {
				return
			}
			err = stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: r.TypeUrl, VersionInfo: r.VersionInfo,
				ResponseNonce: r.Nonce, ResourceNames: names})
			if err != nil {
				return
			}
			if !first {
				acks <- time.Now()
			}
			first = false
		}
	}()
	return acks
}
