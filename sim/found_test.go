package sim

import (
	"testing"
	"time"
)

// TestFoundSeeds replays seeds the soaks found, as they were run (1 minute,
// every fault, saves drawn per seed), on both stores: each must stay clean.
// 507710 (Pebble): an Observer acknowledged entries a later epoch's append
// replaced in the same Ready; 509376 (Pebble): a Cortex elected on a lying
// crash hint stepped down for a full disk and its successor committed
// while the first Cortex still held its lease (docs/simulation.md, "Bugs
// it found").
func TestFoundSeeds(t *testing.T) {
	for _, seed := range []uint64{507710, 509376} {
		for _, store := range []string{"model", "pebble"} {
			r := Run(seed, Options{Duration: time.Minute, Faults: AllFaults, Store: store})
			for _, v := range r.Violations {
				t.Errorf("seed %d on %s: %s\n  settings: %s\n  replay: %s", seed, store, v, r.Settings, r.ReplayCommand())
			}
		}
	}
}
