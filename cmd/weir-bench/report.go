package main

import (
	"fmt"
	"io"
	"slices"
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
	add("initial connect → all streams hold RDS+EDS", "ms", func(s serverResult) float64 { return ms(s.connect) })
	add("(c) reconnect storm → all streams hold RDS+EDS", "ms", func(s serverResult) float64 { return ms(s.storm) })
	add("(c) peak heap during the storm / steady heap", "×", func(s serverResult) float64 { return s.stormPeak })
	add("(d) heap in use per stream (server + generator)", "KiB", func(s serverResult) float64 { return s.heapPerStream / 1024 })
	return rows
}

func (r *result) print(out io.Writer) {
	c := r.cfg
	fmt.Fprintf(out, "weir-bench: N=%d streams (%.0f%% gRPC-shaped, %d per connection), %d services × %d endpoints, %d changes per scenario, %d cores, SotW ADS\n\n",
		c.Streams, c.Mix*100, c.Conns, c.Services, c.Endpoints, c.Changes, r.cores)
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
		}
		ratio := "-"
		if len(rw.values) == 2 && rw.values[0] > 0 {
			ratio = fmt.Sprintf("%.1f×", rw.values[1]/rw.values[0])
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", rw.metric, rw.unit, strings.Join(cells, "\t"), ratio)
	}
	tw.Flush()
	fmt.Fprintln(out, "\nnotes:")
	for _, n := range slices.Concat(r.notes, r.standardNotes()) {
		fmt.Fprintln(out, "  -", n)
	}
}

func (r *result) standardNotes() []string {
	notes := []string{
		"times run from just before the server is handed the new snapshot (baseline: SetSnapshot for every node id) until a proxy sent its ACK of the new version; p50/p99 are over changes",
		"(b) counts the proxies that see the change: every Envoy-shaped proxy and the gRPC-shaped proxies of the changed service",
		"(d) generator and servers share one process: heap per stream includes the generator's own client-side streams, the same for both servers; the difference between the columns is the servers'",
		"the generator shares the cores with the server under test, so these times are upper bounds for both; once connected, simulated proxies only ACK (they stop parsing responses: the scenarios never change which clusters exist)",
		"(c) the storm's peak heap is sampled every 10 ms without forcing a GC, the steady heap after one: the ratio is an upper bound, and includes the generator",
		"not measured: RSS, CPU per push, --delta (only state-of-the-world ADS is implemented)",
	}
	for _, s := range r.servers {
		for _, e := range s.errs {
			notes = append(notes, s.name+" did not finish: "+e)
		}
	}
	return notes
}
