package sim

import (
	"testing"
	"time"

	"pgregory.net/rapid"
)

func opts() Options { return Options{Duration: 20 * time.Second, Faults: AllFaults} }

// TestSeeds runs a fixed seed range: every checker must pass.
func TestSeeds(t *testing.T) {
	n := 50
	if testing.Short() {
		n = 10
	}
	for seed := uint64(1); seed <= uint64(n); seed++ {
		r := Run(seed, opts())
		for _, v := range r.Violations {
			t.Errorf("seed %d: %s\n  settings: %s\n  replay: %s", seed, v, r.Settings, r.ReplayCommand())
		}
	}
}

// TestDeterministic: the same seed yields the same trace hash, bit for bit.
func TestDeterministic(t *testing.T) {
	for _, seed := range []uint64{1, 7, 42} {
		a, b := Run(seed, opts()), Run(seed, opts())
		if a.TraceHash != b.TraceHash || a.Steps != b.Steps {
			t.Errorf("seed %d: trace hashes %016x and %016x (steps %d, %d)", seed, a.TraceHash, b.TraceHash, a.Steps, b.Steps)
		}
	}
	if Run(1, opts()).TraceHash == Run(2, opts()).TraceHash {
		t.Error("seeds 1 and 2 have the same trace hash")
	}
}

// TestFailoverTiming is a property over simulator runs: with only Cortex
// crashes (no partitions, loss or pauses), every failover measured is within
// 3 × heartbeat + 500 ms, and no checker fails.
func TestFailoverTiming(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		seed := rapid.Uint64().Draw(rt, "seed")
		faults := FaultCrash
		if rapid.Bool().Draw(rt, "drift") {
			faults |= FaultDrift
		}
		r := Run(seed, Options{Duration: 15 * time.Second, Faults: faults})
		for _, v := range r.Violations {
			rt.Fatalf("seed %d: %s (replay: %s)", seed, v, r.ReplayCommand())
		}
		bound := FailoverBound(r.Settings.Heartbeat)
		for _, d := range r.Failovers {
			if d > bound {
				rt.Fatalf("seed %d: failover took %s > %s", seed, d, bound)
			}
		}
	})
}
