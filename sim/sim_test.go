package sim

import (
	"testing"
	"time"

	"pgregory.net/rapid"
)

func opts() Options { return Options{Duration: 20 * time.Second, Faults: AllFaults} }

func pebbleOpts() Options { o := opts(); o.Store = "pebble"; return o }

// TestSeeds runs a fixed seed range on each store: every checker must pass.
func TestSeeds(t *testing.T) {
	for _, o := range []Options{opts(), pebbleOpts()} {
		n := 50
		if o.Store == "pebble" {
			n = 20
		}
		if testing.Short() {
			n = 10
		}
		for seed := uint64(1); seed <= uint64(n); seed++ {
			r := Run(seed, o)
			for _, v := range r.Violations {
				t.Errorf("seed %d: %s\n  settings: %s\n  replay: %s", seed, v, r.Settings, r.ReplayCommand())
			}
		}
	}
}

// TestDeterministic: the same seed yields the same trace hash, bit for bit,
// on the model store and on Pebble.
func TestDeterministic(t *testing.T) {
	for _, o := range []Options{opts(), pebbleOpts()} {
		for _, seed := range []uint64{1, 7, 42} {
			a, b := Run(seed, o), Run(seed, o)
			if a.TraceHash != b.TraceHash || a.Steps != b.Steps {
				t.Errorf("store %s seed %d: trace hashes %016x and %016x (steps %d, %d)", o.Store, seed, a.TraceHash, b.TraceHash, a.Steps, b.Steps)
			}
		}
		if Run(1, o).TraceHash == Run(2, o).TraceHash {
			t.Errorf("store %s: seeds 1 and 2 have the same trace hash", o.Store)
		}
	}
}

// TestPebbleStoreExercised: the Pebble runs go through what they are for:
// snapshots streamed and installed, nodes stopped by a failed fsync and
// restarted on what their disk kept, full disks.
func TestPebbleStoreExercised(t *testing.T) {
	var st Stats
	for seed := uint64(1); seed <= 40; seed++ {
		s := Run(seed, pebbleOpts()).Stats
		st.SnapshotsInstalled += s.SnapshotsInstalled
		st.StorageStops += s.StorageStops
		st.DiskFulls += s.DiskFulls
	}
	if st.SnapshotsInstalled == 0 || st.StorageStops == 0 || st.DiskFulls == 0 {
		t.Errorf("40 Pebble seeds: %d snapshots installed, %d storage stops, %d full disks; want each > 0", st.SnapshotsInstalled, st.StorageStops, st.DiskFulls)
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

// TestStoresAgree is a differential test of the model store against the
// real one: the trace hash covers every delivered message, tick, fault,
// client outcome and event, so two runs of a seed agree only if every save,
// read, truncation, quarantine, refusal for space and snapshot of the model
// behaved as shell/store on Pebble did.
func TestStoresAgree(t *testing.T) {
	n := 40
	if testing.Short() {
		n = 10
	}
	for seed := uint64(1); seed <= uint64(n); seed++ {
		mo, po := opts(), pebbleOpts()
		// Synced saves: a crash keeps every save on both stores. (With
		// pipelined saves Pebble loses the unsynced tail, as a disk
		// does, and the model keeps it: see TestStoresAgreePipelined.)
		mo.Saves, po.Saves = "sync", "sync"
		m, p := Run(seed, mo), Run(seed, po)
		if m.TraceHash != p.TraceHash {
			t.Errorf("seed %d: the model store's trace %016x differs from Pebble's %016x: replay both with --trace and diff (%s)", seed, m.TraceHash, p.TraceHash, p.ReplayCommand())
		}
	}
}

// TestStoresAgreePipelined: with pipelined saves and no fault that loses a
// process's memory (crash, wipe, disk), the stores still behave the same.
func TestStoresAgreePipelined(t *testing.T) {
	n := 20
	if testing.Short() {
		n = 5
	}
	for seed := uint64(1); seed <= uint64(n); seed++ {
		mo, po := opts(), pebbleOpts()
		mo.Saves, po.Saves = "pipelined", "pipelined"
		mo.Faults = FaultPartition | FaultPause | FaultLoss | FaultDrift | FaultHandoff
		po.Faults = mo.Faults
		m, p := Run(seed, mo), Run(seed, po)
		if m.TraceHash != p.TraceHash {
			t.Errorf("seed %d: the model store's trace %016x differs from Pebble's %016x: replay both with --trace and diff (%s)", seed, m.TraceHash, p.TraceHash, p.ReplayCommand())
		}
	}
}
