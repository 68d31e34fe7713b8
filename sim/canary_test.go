package sim

import (
	"strings"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
)

// CanarySeeds is how many seeds a canary must be caught within.
const CanarySeeds = 200

// caught returns the first seed whose run finds a violation, or 0.
func caught(b core.Broken, n int) (uint64, *Result) {
	o := Options{Duration: 20 * time.Second, Faults: AllFaults, Broken: b}
	for seed := uint64(1); seed <= uint64(n); seed++ {
		if r := Run(seed, o); len(r.Violations) > 0 {
			return seed, r
		}
	}
	return 0, nil
}

func TestCanaries(t *testing.T) {
	// Each broken variant must be caught by the checker of the rule it
	// breaks, not by some side effect.
	// Electing a stale candidate shows up as a lost quorum write or as a
	// Lobe asked to truncate a committed entry, whichever comes first.
	want := map[core.Broken][]string{
		core.BrokenNoLogCheck: {"quorum-write-lost", "asked to truncate committed entry"},
		core.BrokenNoDemotion: {"self-demotion"},
		// A wiped voter whose vote counts elects a Cortex that lacks what
		// the voter had acknowledged, or votes twice in one epoch.
		core.BrokenNoStoreCheck: {"quorum-write-lost", "asked to truncate committed entry", "two Cortexes"},
	}
	for _, b := range []core.Broken{core.BrokenNoLogCheck, core.BrokenNoDemotion, core.BrokenNoStoreCheck} {
		seed, r := caught(b, CanarySeeds)
		if seed == 0 {
			t.Errorf("canary %s not caught within %d seeds", BrokenName(b), CanarySeeds)
			continue
		}
		t.Logf("canary %s caught by seed %d: %s", BrokenName(b), seed, r.Violations[0])
		found := false
		for _, v := range r.Violations {
			for _, w := range want[b] {
				if strings.Contains(v.String(), w) {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("canary %s caught by %v, want one of %q", BrokenName(b), r.Violations[0], want[b])
		}
	}
}
