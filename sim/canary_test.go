package sim

import (
	"strings"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
)

// CanarySeeds is how many seeds a canary must be caught within.
const CanarySeeds = 200

// caught returns the first seed whose run finds a violation, or 0. Runs
// are 20 s unless o says otherwise.
func caught(o Options, n int) (uint64, *Result) {
	if o.Duration == 0 {
		o.Duration = 20 * time.Second
	}
	o.Faults = AllFaults
	for seed := uint64(1); seed <= uint64(n); seed++ {
		if r := Run(seed, o); len(r.Violations) > 0 {
			return seed, r
		}
	}
	return 0, nil
}

// TestCanaries: each broken variant, of the protocol (core.Broken) or of the
// driver's ordering (core.Canary), must be caught by the checker of the rule
// it breaks, not by some side effect.
func TestCanaries(t *testing.T) {
	cases := []struct {
		o    Options
		want []string
	}{
		// Electing a stale candidate shows up as a lost quorum write or as
		// a Lobe asked to truncate a committed entry, whichever comes first.
		{Options{Broken: core.BrokenNoLogCheck}, []string{"quorum-write-lost", "asked to truncate committed entry"}},
		{Options{Broken: core.BrokenNoDemotion}, []string{"self-demotion"}},
		// A wiped voter whose vote counts elects a Cortex that lacks what
		// the voter had acknowledged, or votes twice in one epoch (two
		// Cortexes in it, seen by the core or by the simulator's checker).
		// It needs the wiped voter's vote to decide an election: since crash
		// hints make most failovers fast, that takes longer runs.
		{Options{Broken: core.BrokenNoStoreCheck, Duration: time.Minute}, []string{"quorum-write-lost", "asked to truncate committed entry", "two Cortexes", "[one-cortex-per-epoch]", "[log-matching]"}},
		// Trusting a crash hint blindly (no ODOWN, no lease wait) lets a
		// new Cortex commit while the old one may still serve lease reads.
		{Options{Broken: core.BrokenTrustHint}, []string{"[lease-overlap]", "[linearizability]"}},
		// The driver's canaries, each caught by the checker of the step of
		// the contract on core.Ready it breaks.
		{Options{Canary: core.CanaryAckBeforeSave}, []string{"[ack-before-durable]"}},
		{Options{Canary: core.CanaryAppendAckBeforeSave}, []string{"[ack-before-durable]"}},
		{Options{Canary: core.CanaryReadAfterSave}, []string{"[read-uncommitted]"}},
		{Options{Canary: core.CanaryDropQuarantine}, []string{"[local-write-lost]"}},
		// Pipelined saves: the core told an applied save is durable
		// before its fsync returned.
		{Options{Canary: core.CanaryCountUnsaved, Saves: "pipelined"}, []string{"[durable-overclaimed]"}},
	}
	for _, tc := range cases {
		name := VariantName(tc.o)
		seed, r := caught(tc.o, CanarySeeds)
		if seed == 0 {
			t.Errorf("canary %s not caught within %d seeds", name, CanarySeeds)
			continue
		}
		t.Logf("canary %s caught by seed %d: %s", name, seed, r.Violations[0])
		found := false
		for _, v := range r.Violations {
			for _, w := range tc.want {
				if strings.Contains(v.String(), w) {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("canary %s caught by %v, want one of %q", name, r.Violations[0], tc.want)
		}
	}
}
