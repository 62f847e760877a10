package xds

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/policy"
)

// BenchmarkPublishEndpointChange is the control plane's side of an
// endpoint change with no proxy connected, in catalogs of 1,000, 5,000 and
// 20,000 services: the publisher takes the model (made by discovery outside
// the timer, following the last one), builds and prepares the snapshot.
func BenchmarkPublishEndpointChange(b *testing.B) {
	for _, n := range []int{1000, 5000, 20000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) { benchmarkPublishEndpointChange(b, n) })
	}
}

func benchmarkPublishEndpointChange(b *testing.B, n int) {
	services := make([]discovery.Service, n)
	for i := range services {
		name := fmt.Sprintf("svc-%05d", i)
		services[i] = discovery.Service{Name: name, Instances: []discovery.Instance{
			{ID: name + "-1", Address: "10.0.0.1", Port: 9000, Version: "v1"},
			{ID: name + "-2", Address: "10.0.0.2", Port: 9000, Version: "v2"},
		}}
	}
	model, err := discovery.NewModel(services)
	if err != nil {
		b.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	metrics := NewMetrics(prometheus.NewRegistry(), func() float64 { return 0 })
	p := NewPublisher(PublisherConfig{Cache: NewCache(), Tracker: NewTracker(logger, metrics), Metrics: metrics, Logger: logger})
	p.SetPolicies(policy.Set{}, nil)
	p.Update(model)
	p.publish()
	b.ReportAllocs()
	step := 0
	for b.Loop() {
		b.StopTimer()
		step++
		i := step % n
		services = slices.Clone(services)
		services[i].Instances = slices.Clone(services[i].Instances)
		services[i].Instances[0].Address = fmt.Sprintf("10.1.%d.%d", step/256%256, step%256)
		next, err := discovery.NewModel(services)
		if err != nil {
			b.Fatal(err)
		}
		model = model.Next(next)
		b.StartTimer()
		p.Update(model)
		p.publish()
	}
}
