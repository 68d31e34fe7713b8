package cluster

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// timelineSVG draws a segment: every operation's latency (log scale) at
// its invocation time, coloured by outcome (acknowledged writes and reads,
// failures, unknown outcomes), the fault interval shaded, the health
// probes marked, and a strip of acknowledged writes per 100 ms below.
func timelineSVG(r *Report, ops []*Op, dur time.Duration) string {
	const (
		W, H         = 1100.0, 420.0
		left, right  = 70.0, 20.0
		top, plotH   = 40.0, 260.0
		stripTop     = 330.0
		stripH       = 50.0
		minMs, maxMs = 0.5, 20000.0
	)
	end := dur
	for _, op := range ops {
		end = max(end, op.Return)
	}
	end += 200 * time.Millisecond
	x := func(t time.Duration) float64 { return left + (W-left-right)*float64(t)/float64(end) }
	y := func(d time.Duration) float64 {
		v := math.Max(minMs, math.Min(maxMs, float64(d.Microseconds())/1000))
		return top + plotH*(1-(math.Log10(v)-math.Log10(minMs))/(math.Log10(maxMs)-math.Log10(minMs)))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`+"\n", W, H)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	title := fmt.Sprintf("%s / %s (round %d): %d ops, %d anomalies, heartbeat %d ms", r.Topology, r.Nemesis, r.Round, r.TotalOps, len(r.Anomalies), r.HeartbeatMs)
	fmt.Fprintf(&b, `<text x="%.0f" y="20" font-size="14">%s</text>`+"\n", left, esc(title))
	for _, f := range r.Faults {
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.0f" width="%.1f" height="%.0f" fill="#f4c7c3" opacity="0.6"/>`+"\n", x(f.Start), top, x(f.End)-x(f.Start), stripTop+stripH-top)
		label := f.Kind + " " + strings.Join(f.Targets, ",")
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" fill="#a50e0e">%s</text>`+"\n", x(f.Start)+3, top+12, esc(label))
	}
	// Axes and grid.
	for _, v := range []float64{1, 10, 100, 1000, 10000} {
		yy := y(time.Duration(v * float64(time.Millisecond)))
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, W-right, yy, yy)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-5, yy+4, time.Duration(v*float64(time.Millisecond)))
	}
	for t := time.Duration(0); t <= end; t += time.Second {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.0f" y2="%.0f" stroke="#eee"/>`+"\n", x(t), x(t), top, stripTop+stripH)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%ds</text>`+"\n", x(t), stripTop+stripH+15, int(t.Seconds()))
	}
	fmt.Fprintf(&b, `<text x="15" y="%.0f" transform="rotate(-90 15 %.0f)" text-anchor="middle">latency (log)</text>`+"\n", top+plotH/2, top+plotH/2)
	colour := map[Outcome]string{OK: "#1e8e3e", Fail: "#d93025", Unknown: "#f29900"}
	for _, o := range []Outcome{OK, Fail, Unknown} { // failures drawn over successes
		for _, op := range ops {
			if op.Outcome != o {
				continue
			}
			shape := "circle"
			if op.Kind.Write() {
				shape = "rect"
			}
			cx, cy := x(op.Call), y(op.Return-op.Call)
			if shape == "circle" {
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="1.8" fill="%s" fill-opacity="0.6"/>`+"\n", cx, cy, colour[o])
			} else {
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="3" height="3" fill="%s" fill-opacity="0.6"/>`+"\n", cx-1.5, cy-1.5, colour[o])
			}
		}
	}
	for _, h := range r.Health {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.0f" y2="%.0f" stroke="#1a73e8" stroke-dasharray="3,3"/>`+"\n", x(h.At), x(h.At), top, top+plotH)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" fill="#1a73e8">health %s: %d</text>`+"\n", x(h.At)+3, top+plotH-5, esc(h.Node), h.Status)
	}
	// Strip: acknowledged writes per 100 ms.
	bucket := 100 * time.Millisecond
	n := int(end/bucket) + 1
	counts := make([]int, n)
	peak := 1
	for _, op := range ops {
		if op.Kind.Write() && op.Outcome == OK {
			i := int(op.Return / bucket)
			if i >= 0 && i < n {
				counts[i]++
				peak = max(peak, counts[i])
			}
		}
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="end">acked</text><text x="%.0f" y="%.0f" text-anchor="end">writes</text>`+"\n", left-5, stripTop+20, left-5, stripTop+32)
	for i, c := range counts {
		if c == 0 {
			continue
		}
		h := stripH * float64(c) / float64(peak)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#5f6368"/>`+"\n", x(time.Duration(i)*bucket), stripTop+stripH-h, x(bucket)-x(0), h)
	}
	ly := H - 12
	fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="8" height="8" fill="%s"/><text x="%.0f" y="%.0f">acknowledged</text>`, left, ly-8, colour[OK], left+12, ly)
	fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="8" height="8" fill="%s"/><text x="%.0f" y="%.0f">failed</text>`, left+110, ly-8, colour[Fail], left+122, ly)
	fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="8" height="8" fill="%s"/><text x="%.0f" y="%.0f">unknown</text>`, left+180, ly-8, colour[Unknown], left+192, ly)
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f">squares: writes, dots: reads; shaded: fault</text>`+"\n", left+260, ly)
	b.WriteString("</svg>\n")
	return b.String()
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
