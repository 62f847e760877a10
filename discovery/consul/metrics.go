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
				st := s.Status()
				if !st.Stale {
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
					n += st.unversioned
				}
				return float64(n)
			}),
	)
	return m
}
