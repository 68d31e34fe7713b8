// Package bench measures a MuninnDB node or cluster the way a user would:
// closed-loop or open-loop load (`muninn bench`, `--rate`), replication lag
// sampled from the Cortex's own measurements, CPU per write of every node
// from its /metrics, and failover time against a cluster of processes it
// starts itself (`muninn bench failover`). bench/compare runs
// the same workload shape against etcd and Redis Sentinel. See
// docs/benchmarks.md.
//
// Numbers from one machine are noisy: the package reports medians,
// percentiles and ratios and never asserts timings.
package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"
)

// Percentile returns the p-quantile (0 < p <= 1) of sorted by the
// nearest-rank method: the smallest sample such that at least p of all
// samples are at or below it. It returns 0 for no samples.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if p <= 0 {
		return sorted[0]
	}
	// The small epsilon keeps p*n that is whole in exact arithmetic (0.99 ×
	// 100) from rounding up to the next rank in floating point.
	rank := int(math.Ceil(p*float64(n) - 1e-9))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// Summary is a latency distribution.
type Summary struct {
	Count int           `json:"count"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	P999  time.Duration `json:"p999_ns"`
	Max   time.Duration `json:"max_ns"`
	Mean  time.Duration `json:"mean_ns"`
}

// Summarize sorts samples in place and summarizes them.
func Summarize(samples []time.Duration) Summary {
	if len(samples) == 0 {
		return Summary{}
	}
	slices.Sort(samples)
	var sum time.Duration
	for _, s := range samples {
		sum += s
	}
	return Summary{
		Count: len(samples),
		P50:   Percentile(samples, 0.50),
		P90:   Percentile(samples, 0.90),
		P99:   Percentile(samples, 0.99),
		P999:  Percentile(samples, 0.999),
		Max:   samples[len(samples)-1],
		Mean:  sum / time.Duration(len(samples)),
	}
}

// IntSummary is a distribution of whole numbers (lag in ms, sequence gaps).
type IntSummary struct {
	Count int   `json:"count"`
	P50   int64 `json:"p50"`
	P99   int64 `json:"p99"`
	Max   int64 `json:"max"`
}

// SummarizeInts sorts samples in place and summarizes them (nearest rank).
func SummarizeInts(samples []int64) IntSummary {
	if len(samples) == 0 {
		return IntSummary{}
	}
	slices.Sort(samples)
	at := func(p float64) int64 {
		rank := int(math.Ceil(p*float64(len(samples)) - 1e-9))
		return samples[min(max(rank, 1), len(samples))-1]
	}
	return IntSummary{Count: len(samples), P50: at(0.50), P99: at(0.99), Max: samples[len(samples)-1]}
}

// Ms formats d in milliseconds with a precision that suits its size:
// "0.42ms", "3.1ms", "250ms", "3.52s".
func Ms(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case d == 0:
		return "0ms"
	case ms < 1:
		return fmt.Sprintf("%.2fms", ms)
	case ms < 10:
		return fmt.Sprintf("%.1fms", ms)
	case ms < 1000:
		return fmt.Sprintf("%.0fms", ms)
	default:
		return fmt.Sprintf("%.2fs", ms/1000)
	}
}

// Thousands formats n with comma separators: 12345 -> "12,345".
func Thousands(n int64) string {
	if n < 0 {
		return "-" + Thousands(-n)
	}
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// MarshalJSON writes a Summary in milliseconds as well as nanoseconds, so
// a reader does not have to convert.
func (s Summary) MarshalJSON() ([]byte, error) {
	type plain Summary
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
	return json.Marshal(struct {
		plain
		P50ms  float64 `json:"p50_ms"`
		P90ms  float64 `json:"p90_ms"`
		P99ms  float64 `json:"p99_ms"`
		P999ms float64 `json:"p999_ms"`
		MaxMs  float64 `json:"max_ms"`
	}{plain(s), ms(s.P50), ms(s.P90), ms(s.P99), ms(s.P999), ms(s.Max)})
}
