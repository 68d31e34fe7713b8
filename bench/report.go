package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// ProgressLine formats one progress tick of `muninn bench`. maxLag is the
// largest Lobe lag_ms sampled during the tick (-1: none sampled).
func ProgressLine(t Tick, maxLag int64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%3.0fs] %s ops/s (writes %s, reads %s)", t.Elapsed.Seconds(),
		Thousands(int64(t.OpsPerSec()+0.5)), Thousands(t.Writes), Thousands(t.Reads))
	fmt.Fprintf(&b, "  errors %s", Thousands(t.Errors))
	if t.Open {
		fmt.Fprintf(&b, "  missed %s", Thousands(t.Missed))
	}
	if maxLag >= 0 {
		fmt.Fprintf(&b, "  lag max %dms", maxLag)
	}
	return b.String()
}

// latencyRow is one row of the latency table.
func latencyRow(name string, s Summary) string {
	if s.Count == 0 {
		return fmt.Sprintf("%s\t0\t-\t-\t-\t-\t-\t", name)
	}
	return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t", name, Thousands(int64(s.Count)), Ms(s.P50), Ms(s.P90), Ms(s.P99), Ms(s.P999), Ms(s.Max))
}

// ErrorsLine formats errors by code, most frequent first: "none" or
// "not_found 12, unavailable 3".
func ErrorsLine(errs map[string]int64) string {
	if len(errs) == 0 {
		return "none"
	}
	codes := slices.Collect(maps.Keys(errs))
	slices.SortFunc(codes, func(a, b string) int {
		if errs[a] != errs[b] {
			return int(errs[b] - errs[a])
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprintf("%s %s", c, Thousands(errs[c]))
	}
	return strings.Join(parts, ", ")
}

// WriteText prints the report for people.
func (r Report) WriteText(w io.Writer) {
	c := r.Config
	mode := "standalone"
	if r.Target.Cluster {
		mode = fmt.Sprintf("cluster of %d, Cortex %s, epoch %d", len(r.Target.Members), r.Target.Cortex, r.Target.Epoch)
	}
	fmt.Fprintf(w, "\nmuninn bench: %s (%s)\n", r.Target.Addr, mode)
	cons := c.Consistency
	if cons == "bounded" {
		cons = fmt.Sprintf("bounded (max_lag_ms %d)", c.MaxLagMs)
	}
	loop := fmt.Sprintf("%d clients", c.Clients)
	if o := r.Load.Open; o != nil {
		loop = fmt.Sprintf("open loop at %s ops/s on %d workers (at most %s outstanding)", Thousands(int64(o.Rate+0.5)), c.Clients, Thousands(int64(o.MaxOutstanding)))
	}
	batch := ""
	if c.Batch > 0 {
		batch = fmt.Sprintf(" in batches of %d", c.Batch)
	}
	fmt.Fprintf(w, "  %s, %s, %d-byte values, %.0f%% writes%s (durability %s), reads %s over %d member(s)\n",
		loop, c.Duration, c.ValueSize, c.Writes*100, batch, c.Durability, cons, len(r.Target.ReadFrom))
	if r.Prefill > 0 {
		fmt.Fprintf(w, "  prefill: %d writes before the run, for reads to find\n", r.Prefill)
	}
	l := r.Load
	fmt.Fprintf(w, "\nthroughput: %s ops/s (writes %s/s, reads %s/s): %s ops in %s\n",
		Thousands(int64(l.OpsPerSec+0.5)), Thousands(int64(l.WritesPerSec+0.5)), Thousands(int64(l.ReadsPerSec+0.5)),
		Thousands(l.Ops), l.Elapsed.Round(time.Millisecond))
	if c.Batch > 0 {
		fmt.Fprintf(w, "engrams: %s/s written: %s in %s batch requests of %d (POST /api/engrams/batch); not written in answered batches: %s\n",
			Thousands(int64(r.EngramsPerSec+0.5)), Thousands(r.Engrams), Thousands(int64(l.Write.Count)), c.Batch, ErrorsLine(r.ItemErrors))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "latency\tcount\tp50\tp90\tp99\tp99.9\tmax\t")
	wname := "write"
	if c.Batch > 0 {
		wname = fmt.Sprintf("write (batch of %d)", c.Batch)
	}
	fmt.Fprintln(tw, latencyRow(wname, l.Write))
	fmt.Fprintln(tw, latencyRow("read", l.Read))
	if o := l.Open; o != nil {
		fmt.Fprintln(tw, latencyRow("all, from send", o.Service))
		fmt.Fprintln(tw, latencyRow("send delay", o.SendDelay))
	}
	tw.Flush()
	if o := l.Open; o != nil {
		fmt.Fprintf(w, "  (open loop: write and read latency run from each operation's intended send time, one every %s, so queueing behind a slow node counts;\n", o.Interval)
		fmt.Fprintln(w, "   \"all, from send\" is what a closed loop would report; send delay = sent − intended)")
		fmt.Fprintf(w, "schedule: %s scheduled, %s completed (%s/s), %s missed (not sent: %s already outstanding), %s unfinished at the end, %s late (sent > %s after their time)\n",
			Thousands(o.Scheduled), Thousands(o.Completed), Thousands(int64(o.AchievedRate+0.5)), Thousands(o.Missed),
			Thousands(int64(o.MaxOutstanding)), Thousands(o.Unfinished), Thousands(o.Late), o.LateAfter)
		if o.Missed > 0 || o.Unfinished > 0 {
			fmt.Fprintln(w, "  the node (or this load generator) did not keep up with the rate: lower --rate, or read the missed count as lost capacity")
		}
	}

	fmt.Fprintln(w)
	switch {
	case !r.Target.Cluster:
		fmt.Fprintln(w, "replication lag: none (standalone node)")
	case len(r.Lag.Members) == 0:
		fmt.Fprintf(w, "replication lag: no Lobe seen in %d samples (%d failed)\n", r.Lag.Samples, r.Lag.Failed)
	default:
		fmt.Fprintf(w, "replication lag per Lobe: %d samples every %s (%d failed)\n", r.Lag.Samples, r.Lag.Every, r.Lag.Failed)
		tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "member\tlag p50\tlag p99\tlag max\tseq behind p50\tp99\tmax\tunknown\t")
		for _, m := range r.Lag.Members {
			fmt.Fprintf(tw, "%s\t%dms\t%dms\t%dms\t%s\t%s\t%s\t%d\t\n", m.ID, m.LagMs.P50, m.LagMs.P99, m.LagMs.Max,
				Thousands(m.SeqBehind.P50), Thousands(m.SeqBehind.P99), Thousands(m.SeqBehind.Max), m.Unknown)
		}
		tw.Flush()
		fmt.Fprintf(w, "  (%s)\n", r.Lag.Method)
	}
	r.CPU.writeText(w)
	fmt.Fprintf(w, "\nerrors: %s\n", ErrorsLine(l.Errors))
	codes := slices.Sorted(maps.Keys(l.ErrorSamples))
	for _, code := range codes {
		fmt.Fprintf(w, "  %s: %s\n", code, l.ErrorSamples[code])
	}
}

// writeText prints the CPU table.
func (c CPUReport) writeText(w io.Writer) {
	if len(c.Nodes) == 0 {
		return
	}
	fmt.Fprintf(w, "\nCPU per node over %s (%s writes acknowledged, %s operations):\n", c.Elapsed.Round(time.Millisecond), Thousands(c.Writes), Thousands(c.Ops))
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', tabwriter.AlignRight)
	// A per-operation column only when operations are not all writes
	// (reads in the mix, or batches of several writes).
	perOp := c.Ops != c.Writes
	head := "member\trole\tCPU s\tcores\tCPU µs/write\t"
	if perOp {
		head += "CPU µs/op\t"
	}
	fmt.Fprintln(tw, head)
	us := func(v float64, n int64) string {
		if n == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f", v)
	}
	row := func(n NodeCPU) {
		if n.Error != "" {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t", n.ID, n.Role)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.2f\t%s\t", n.ID, n.Role, n.CPUSeconds, n.Cores, us(n.CPUUsPerWrite, c.Writes))
		}
		if perOp {
			if n.Error != "" {
				fmt.Fprint(tw, "-\t")
			} else {
				fmt.Fprintf(tw, "%s\t", us(n.CPUUsPerOp, c.Ops))
			}
		}
		fmt.Fprintln(tw)
	}
	for _, n := range c.Nodes {
		row(n)
	}
	if c.Client != nil {
		row(*c.Client)
	}
	tw.Flush()
	for _, n := range append(slices.Clone(c.Nodes), ptrOrZero(c.Client)) {
		if n.Error != "" {
			fmt.Fprintf(w, "  %s: %s\n", n.ID, n.Error)
		}
	}
	fmt.Fprintf(w, "  (%s)\n", c.Method)
}

func ptrOrZero(n *NodeCPU) NodeCPU {
	if n == nil {
		return NodeCPU{}
	}
	return *n
}
