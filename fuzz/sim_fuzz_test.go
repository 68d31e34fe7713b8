package fuzz

import (
	"testing"
	"time"

	"github.com/muninndb/muninn/sim"
)

// FuzzSimSeed runs a short simulation for each seed the fuzzer picks: any
// safety or liveness violation is a failure, reproducible with the printed
// replay command.
func FuzzSimSeed(f *testing.F) {
	for _, s := range []uint64{1, 2, 3, 1030, 1 << 40} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, seed uint64) {
		r := sim.Run(seed, sim.Options{Duration: 5 * time.Second, Faults: sim.AllFaults})
		for _, v := range r.Violations {
			t.Fatalf("seed %d: %s\nreplay: %s", seed, v, r.ReplayCommand())
		}
	})
}
