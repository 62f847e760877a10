package main

import (
	"fmt"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/policy"
	"github.com/weir-mesh/weir/snapshot"
)

// world is the generated catalog and routing both servers serve. Each
// mutation returns the next snapshot, built with weir's own snapshot.Build,
// so weir and the baseline serve identical content.
type world struct {
	services []discovery.Service
	routing  map[string]policy.Routing
	split    bool // the changed service is at 50/50 rather than 90/10
}

func serviceName(i int) string { return fmt.Sprintf("svc-%04d", i) }

func newWorld(services, endpoints int) *world {
	w := &world{routing: map[string]policy.Routing{}}
	for s := range services {
		svc := discovery.Service{Name: serviceName(s)}
		for e := range endpoints {
			svc.Instances = append(svc.Instances, discovery.Instance{
				ID:      fmt.Sprintf("%s-%03d", svc.Name, e),
				Address: fmt.Sprintf("10.%d.%d.%d", s/250, s%250, e%250+1),
				Port:    8080,
				Version: fmt.Sprintf("v%d", e%2+1),
			})
		}
		w.services = append(w.services, svc)
	}
	w.routing[serviceName(0)] = policy.Routing{Weights: policy.Weights{"v1": 9000, "v2": 1000}}
	return w
}

// build returns the snapshot of the world as it is.
func (w *world) build() (*snapshot.Snapshot, error) {
	model, err := discovery.NewModel(w.services)
	if err != nil {
		return nil, err
	}
	return snapshot.Build(snapshot.Input{Model: model, Routing: w.routing})
}

// toggleWeights flips the first service between 90/10 and 50/50.
func (w *world) toggleWeights() {
	w.split = !w.split
	ws := policy.Weights{"v1": 9000, "v2": 1000}
	if w.split {
		ws = policy.Weights{"v1": 5000, "v2": 5000}
	}
	w.routing[serviceName(0)] = policy.Routing{Weights: ws}
}

// moveEndpoint moves the first endpoint of service s between ports 8080
// and 9090.
func (w *world) moveEndpoint(s int) {
	in := &w.services[s].Instances[0]
	if in.Port == 8080 {
		in.Port = 9090
	} else {
		in.Port = 8080
	}
}
