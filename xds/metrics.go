package xds

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the control plane's Prometheus metrics. Each server registers
// its own set, so tests can run several side by side.
type Metrics struct {
	ConnectedStreams prometheus.Gauge
	Responses        *prometheus.CounterVec // by type
	Nacks            *prometheus.CounterVec // by type
	Publishes        prometheus.Counter
	BuildErrors      prometheus.Counter
	Rejections       *prometheus.CounterVec // by source
	RejectedSources  *prometheus.GaugeVec   // by source: 1 while its last input is rejected
	UnservedVersions *prometheus.GaugeVec   // by service, version: 1 while a policy's version cannot serve
	SnapshotAge      prometheus.GaugeFunc
	AppliedFraction  prometheus.Gauge
}

// NewMetrics creates the metrics and registers them with reg. snapshotAge
// reports the seconds since the current snapshot was published.
func NewMetrics(reg prometheus.Registerer, snapshotAge func() float64) *Metrics {
	m := &Metrics{
		ConnectedStreams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weir_xds_connected_streams", Help: "Open xDS streams."}),
		Responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_xds_responses_total", Help: "xDS responses sent, by resource type."}, []string{"type"}),
		Nacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_xds_nacks_total", Help: "xDS responses rejected by a proxy, by resource type."}, []string{"type"}),
		Publishes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_snapshots_published_total", Help: "Snapshots published to the xDS cache."}),
		BuildErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_snapshot_build_errors_total", Help: "Snapshot builds that failed; the last good snapshot kept serving."}),
		Rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_config_rejections_total", Help: "Inputs rejected (bad catalog or policy edits, discovery errors), by source."}, []string{"source"}),
		RejectedSources: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weir_config_rejected", Help: "1 while the latest input from a source is rejected and its last good config is serving."}, []string{"source"}),
		UnservedVersions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weir_policy_unserved_versions", Help: "1 for each version a policy gives weight to that has no serving instances; its share went to the other versions."}, []string{"service", "version"}),
		AppliedFraction: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weir_fleet_applied_fraction", Help: "Fraction of connected proxies that hold the snapshot being served."}),
		SnapshotAge: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "weir_snapshot_age_seconds", Help: "Seconds since the current snapshot was published (0 before the first)."}, snapshotAge),
	}
	reg.MustRegister(m.ConnectedStreams, m.Responses, m.Nacks, m.Publishes, m.BuildErrors,
		m.Rejections, m.RejectedSources, m.UnservedVersions, m.SnapshotAge, m.AppliedFraction)
	return m
}
