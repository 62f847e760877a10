package xds

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-mesh/weir/policy"
)

// RolloutCollector exports the state of every rollout at scrape time.
type RolloutCollector struct {
	engine *policy.Engine
	now    func() time.Time
}

// NewRolloutCollector returns a collector over engine; register it.
func NewRolloutCollector(engine *policy.Engine) *RolloutCollector {
	return &RolloutCollector{engine: engine, now: time.Now}
}

var (
	rolloutPhaseDesc = prometheus.NewDesc("weir_rollout_phase",
		"1 for the phase each rollout is in.", []string{"service", "strategy", "phase"}, nil)
	rolloutStepDesc = prometheus.NewDesc("weir_rollout_step",
		"The step each rollout is at (canary: step index; rolling: increments made).", []string{"service"}, nil)
	rolloutWeightDesc = prometheus.NewDesc("weir_rollout_weight_percent",
		"The share each rollout asks for, per version.", []string{"service", "version"}, nil)
	rolloutStepAgeDesc = prometheus.NewDesc("weir_rollout_step_seconds",
		"Seconds since each rollout entered its current step.", []string{"service"}, nil)
	rolloutAppliedDesc = prometheus.NewDesc("weir_rollout_applied",
		"1 when the fleet has applied what each rollout asks for.", []string{"service"}, nil)
)

// Describe implements prometheus.Collector.
func (c *RolloutCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{rolloutPhaseDesc, rolloutStepDesc, rolloutWeightDesc, rolloutStepAgeDesc, rolloutAppliedDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *RolloutCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	for _, r := range c.engine.Rollouts() {
		ch <- prometheus.MustNewConstMetric(rolloutPhaseDesc, prometheus.GaugeValue, 1, r.Service, string(r.Strategy), string(r.Phase))
		ch <- prometheus.MustNewConstMetric(rolloutStepDesc, prometheus.GaugeValue, float64(r.Step), r.Service)
		for v, w := range r.Weights() {
			ch <- prometheus.MustNewConstMetric(rolloutWeightDesc, prometheus.GaugeValue, float64(w)/100, r.Service, v)
		}
		ch <- prometheus.MustNewConstMetric(rolloutStepAgeDesc, prometheus.GaugeValue, now.Sub(r.StepSince).Seconds(), r.Service)
		applied := 0.0
		if c.engine.IsApplied(r.Service) {
			applied = 1
		}
		ch <- prometheus.MustNewConstMetric(rolloutAppliedDesc, prometheus.GaugeValue, applied, r.Service)
	}
}
