package consul

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the source's Prometheus metrics.
type metrics struct {
	requests *prometheus.CounterVec // by endpoint
	errors   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, s *Source) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_consul_requests_total", Help: "Requests sent to Consul, by endpoint."}, []string{"endpoint"}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_consul_errors_total", Help: "Consul requests that failed."}),
	}
	if reg == nil {
		return m
	}
	reg.MustRegister(m.requests, m.errors,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "weir_discovery_stale_seconds",
			Help: "Seconds the last known catalog has been served while Consul fails; 0 when in sync."},
			func() float64 {
				// Before the first sync there is no catalog to be stale:
				// /readyz says weir is waiting for it instead.
				st := s.Status()
				if !st.Stale || !st.Synced {
					return 0
				}
				return time.Since(st.StaleSince).Seconds()
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "weir_discovery_unversioned_instances",
			Help: "Instances without a version, grouped as version \"\"."},
			func() float64 {
				s.mu.Lock()
				defer s.mu.Unlock()
				n := 0
				for _, st := range s.services {
					n += len(st.unversioned)
				}
				return float64(n)
			}),
	)
	for _, reason := range skipReasons {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "weir_consul_skipped_instances",
			Help:        "Instances left out of the model because Consul's data is not routable (for reason service_name: services), by reason.",
			ConstLabels: prometheus.Labels{"reason": string(reason)}},
			func() float64 { return float64(s.skippedCounts()[reason]) }))
	}
	return m
}

// skippedCounts returns how many instances are left out, by reason, and
// under skipServiceName how many services.
func (s *Source) skippedCounts() map[skipReason]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	counts := map[skipReason]int{skipServiceName: len(s.badNames)}
	for _, st := range s.services {
		for _, sk := range st.skipped {
			counts[sk.reason]++
		}
	}
	return counts
}
