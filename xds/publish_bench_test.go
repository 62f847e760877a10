package xds

import (
	"fmt"
	"slices"
	"testing"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/policy"
)

// BenchmarkPublish is the control plane's side of one change with no
// proxy connected, in catalogs of 1,000, 5,000 and 20,000 services (two
// versions each, half of them with a fixed 90/10 policy): an instance
// moves to another address (discovery's model, made outside the timer,
// follows the last one) or one service's weights change through the
// rollout engine, as the admin API changes them. The publisher takes the
// change, builds, bridges if need be and prepares the snapshot. A weight
// change also makes weir_outbound anew, which holds every service's
// virtual host (Envoy is sent it whole): it encodes the changed virtual
// host and copies the others' encodings.
func BenchmarkPublish(b *testing.B) {
	for _, change := range []string{"endpoint", "weights"} {
		for _, n := range []int{1000, 5000, 20000} {
			b.Run(fmt.Sprintf("change=%s/services=%d", change, n), func(b *testing.B) { benchmarkPublish(b, n, change) })
		}
	}
}

func benchmarkPublish(b *testing.B, n int, change string) {
	services := make([]discovery.Service, n)
	var policies []policy.Policy
	for i := range services {
		name := fmt.Sprintf("svc-%05d", i)
		services[i] = discovery.Service{Name: name, Instances: []discovery.Instance{
			{ID: name + "-1", Address: "10.0.0.1", Port: 9000, Version: "v1"},
			{ID: name + "-2", Address: "10.0.0.2", Port: 9000, Version: "v2"},
		}}
		if i%2 == 0 {
			policies = append(policies, policy.Policy{Service: name, Strategy: policy.Fixed,
				Weights: policy.Weights{"v1": 9000, "v2": 1000}, File: name + ".yaml", Line: 1})
		}
	}
	set, err := policy.NewSet(policies...)
	if err != nil {
		b.Fatal(err)
	}
	model, err := discovery.NewModel(services)
	if err != nil {
		b.Fatal(err)
	}
	p := publishing(b, model, set)
	b.ReportAllocs()
	step := 0
	for b.Loop() {
		step++
		switch change {
		case "endpoint":
			b.StopTimer()
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
		case "weights":
			v1 := policy.Weight(1000 + step%8000)
			if err := p.cfg.Engine.SetFixedWeights(services[2*step%n].Name, policy.Weights{"v1": v1, "v2": 10000 - v1}, "bench", ""); err != nil {
				b.Fatal(err)
			}
		}
		p.publish(b.Context())
	}
}
