package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"
)

// percentile returns the q-quantile (nearest rank) of ds; 0 when empty.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := sorted(ds)
	i := int(float64(len(s))*q+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

func column(fs []fractions, pick func(fractions) time.Duration) []time.Duration {
	out := make([]time.Duration, len(fs))
	for i, f := range fs {
		out[i] = pick(f)
	}
	return out
}

// row is one line of the table: a metric and its value per server.
type row struct {
	metric string
	values []float64
	unit   string
}

func (r *result) rows() []row {
	var rows []row
	add := func(metric, unit string, f func(serverResult) float64) {
		rw := row{metric: metric, unit: unit}
		for _, s := range r.servers {
			rw.values = append(rw.values, f(s))
		}
		rows = append(rows, rw)
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	for _, sc := range []struct {
		name string
		get  func(serverResult) []fractions
	}{{"(a) weight change → RDS ACK", func(s serverResult) []fractions { return s.weights }},
		{"(b) endpoint change → EDS ACK", func(s serverResult) []fractions { return s.endpoints }}} {
		for _, m := range []struct {
			label string
			pick  func(fractions) time.Duration
			q     float64
		}{
			{"50% ACKed, p50", func(f fractions) time.Duration { return f.p50 }, 0.5},
			{"99% ACKed, p50", func(f fractions) time.Duration { return f.p99 }, 0.5},
			{"100% ACKed, p50", func(f fractions) time.Duration { return f.all }, 0.5},
			{"100% ACKed, p99", func(f fractions) time.Duration { return f.all }, 0.99},
		} {
			add(sc.name+": "+m.label, "ms", func(s serverResult) float64 { return ms(percentile(column(sc.get(s), m.pick), m.q)) })
		}
	}
	n := float64(r.cfg.Streams)
	add("(a) server CPU per weight change", "ms", func(s serverResult) float64 { return ms(s.cpuWeight) })
	add("(a) generator CPU per weight change", "ms", func(s serverResult) float64 { return ms(s.genWeight) })
	add("(b) server CPU per endpoint change", "ms", func(s serverResult) float64 { return ms(s.cpuEndpt) })
	add("(a) resources serialised per weight change", "", func(s serverResult) float64 { return s.marshal })
	burst := fmt.Sprintf("(e) burst of %d weight changes", r.cfg.Burst)
	add(burst+": until all were made", "ms", func(s serverResult) float64 { return ms(s.burst.took) })
	add(burst+": snapshots pushed", "", func(s serverResult) float64 { return s.burst.pushes })
	add(burst+": first → a proxy held it", "ms", func(s serverResult) float64 { return ms(s.burst.first) })
	add(burst+": first → last held", "ms", func(s serverResult) float64 { return ms(s.burst.last) })
	add("initial connect → all streams hold RDS+EDS", "ms", func(s serverResult) float64 { return ms(s.connect) })
	add("(c) reconnect storm → all streams hold RDS+EDS", "ms", func(s serverResult) float64 { return ms(s.storm) })
	add("(c) server CPU during the storm", "ms", func(s serverResult) float64 { return ms(s.stormCPU) })
	add("(c) generator CPU during the storm", "ms", func(s serverResult) float64 { return ms(s.stormGen) })
	add("(c) peak RSS during the storm / steady RSS", "×", func(s serverResult) float64 { return s.stormPeak.rss / s.steady.rss })
	add("(c) peak RSS during the storm / RSS just before", "×", func(s serverResult) float64 { return s.stormPeak.rss / s.preStorm.rss })
	add("(c) peak heap during the storm / during (a)", "×", func(s serverResult) float64 { return s.stormPeak.heap / s.pushPeak.heap })
	add("(d) server RSS per stream, steady", "KiB", func(s serverResult) float64 { return (s.steady.rss - s.idle.rss) / n / 1024 })
	add("(d) server RSS per stream, just after connecting", "KiB", func(s serverResult) float64 { return (s.connected.rss - s.idle.rss) / n / 1024 })
	add("(d) server live heap per stream", "KiB", func(s serverResult) float64 { return (s.steady.heap - s.idle.heap) / n / 1024 })
	add("(d) server goroutine stacks per stream", "KiB", func(s serverResult) float64 { return (s.steady.stacks - s.idle.stacks) / n / 1024 })
	add("(d) server RSS with every stream connected", "MiB", func(s serverResult) float64 { return s.steady.rss / (1 << 20) })
	add("(d) server live heap with every stream connected", "MiB", func(s serverResult) float64 { return s.steady.heap / (1 << 20) })
	add("(d) server live heap with no stream connected", "MiB", func(s serverResult) float64 { return s.idle.heap / (1 << 20) })
	return rows
}

func (r *result) print(out io.Writer) {
	c := r.cfg
	protocol := "SotW"
	if c.Delta {
		protocol = "delta"
	}
	fmt.Fprintf(out, "weir-bench: N=%d streams (%.0f%% gRPC-shaped, %d per connection), %d services × %d endpoints, %d changes per scenario, %d cores, %s ADS, weir --debounce %v\n\n",
		c.Streams, c.Mix*100, c.Conns, c.Services, c.Endpoints, c.Changes, r.cores, protocol, c.Debounce)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	names := make([]string, len(r.servers))
	for i, s := range r.servers {
		names[i] = s.name
	}
	fmt.Fprintf(tw, "metric\tunit\t%s\tbaseline/weir\t\n", strings.Join(names, "\t"))
	for _, rw := range r.rows() {
		cells := make([]string, len(rw.values))
		for i, v := range rw.values {
			cells[i] = fmt.Sprintf("%.1f", v)
			if math.IsNaN(v) || math.IsInf(v, 0) {
				cells[i] = "n/a"
			}
		}
		ratio := "-"
		if len(rw.values) == 2 && rw.values[0] > 0 && !math.IsNaN(rw.values[1]) {
			ratio = fmt.Sprintf("%.1f×", rw.values[1]/rw.values[0])
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", rw.metric, rw.unit, strings.Join(cells, "\t"), ratio)
	}
	tw.Flush()
	fmt.Fprintln(out, "\nnotes:")
	for _, n := range r.standardNotes() {
		fmt.Fprintln(out, "  -", n)
	}
}

func (r *result) standardNotes() []string {
	notes := []string{
		"each server runs as a process of its own on the same catalog and policy files; the generator runs in weir-bench's process and shares the cores, so times are upper bounds for both",
		"(a) weir's weights change through its admin API (SetWeights); the baseline has no API, so its policy file is rewritten. (b) both read the catalog file, rewritten; file changes are read after 50 ms of quiet",
		"times run from just before the change until a proxy ACKed a new version; p50/p99 are over changes; 100% is every proxy that sees the change: every Envoy-shaped proxy and the gRPC-shaped proxies of the changed service (weir serves a gRPC client only its own service's routes and endpoints; the baseline sends every proxy a new snapshot)",
		"a verifying proxy checks that each change was served as made before the next; once connected, the other proxies only ACK (the scenarios never change which clusters exist)",
		"memory is the server process's: RSS from /proc, live heap after a forced collection (/debug/pprof/heap?gc=1), peaks sampled every 50 ms (heap without forcing a collection); per stream = (with every stream connected − before any) / N; steady = once, after connecting, the RSS shrank by less than 1% in a second (at most 30 s: the runtime hands back the pages the first responses took); CPU from /proc",
		"(e) the changes start evenly over --burst-window, each without waiting for the last; before it the verifying proxy holds a split none of its changes makes and no change is made for 2 × --debounce, and first → a proxy held it is until the verifying proxy holds another split; the baseline rebuilds on every file event, and a file watcher waits for 50 ms of quiet, which coalesces its burst",
	}
	for _, s := range r.servers {
		for _, e := range s.errs {
			notes = append(notes, s.name+" did not finish: "+e)
		}
	}
	return notes
}
