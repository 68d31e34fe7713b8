package sim

import (
	"testing"
	"time"
)

// BenchmarkRun measures simulated seconds per wall second for each store
// (docs/simulation.md, "Speed"): go test ./sim -bench Run -run ^$
func BenchmarkRun(b *testing.B) {
	for _, st := range []string{"model", "pebble"} {
		b.Run(st, func(b *testing.B) {
			o := Options{Duration: 20 * time.Second, Faults: AllFaults, Store: st}
			var sim time.Duration
			start := time.Now()
			for i := 0; i < b.N; i++ {
				sim += Run(uint64(i+1), o).SimTime
			}
			b.ReportMetric(sim.Seconds()/time.Since(start).Seconds(), "sim-s/s")
		})
	}
}
