package cluster

import (
	"context"
	"fmt"
	"slices"
)

// The combo nemesis: two faults at once, chosen by the segment's seed: a
// network or process fault of the Cortex (isolate, split, oneway, netem or
// pause: Cluster.Inject) and, at the same moment, kill -9 of a data node
// the first fault did not target (a Lobe; the Cortex when none is left).
// Both heal together; the killed node is started again on its store.
// What must hold: every checker stays clean. The cluster may have no
// quorum during the fault (a three-node cluster with the Cortex isolated
// and a Lobe killed): writes are then refused, and no failover is only a
// warning.

// comboFirst are the faults combo draws its first from.
var comboFirst = []string{"isolate", "split", "oneway", "netem", "pause"}

// injectCombo injects the two faults.
func (s *segment) injectCombo(ctx context.Context, cortex string, epoch uint64) (Fault, error) {
	c := s.c
	first := comboFirst[s.rng.IntN(len(comboFirst))]
	f, err := c.Inject(ctx, first, cortex, epoch)
	f.Kind = "combo"
	if err != nil {
		return f, fmt.Errorf("combo, first fault %s: %w", first, err)
	}
	var cands, rest []string
	for _, n := range c.Topo.DataNodes() {
		if n.ID == cortex {
			continue
		}
		rest = append(rest, n.ID)
		if !slices.Contains(f.Targets, n.ID) {
			cands = append(cands, n.ID)
		}
	}
	if len(cands) == 0 {
		cands = rest
	}
	if len(cands) == 0 {
		cands = []string{cortex}
	}
	victim := cands[s.rng.IntN(len(cands))]
	if err := c.rt.Do(ctx, "kill", victim); err != nil {
		return f, fmt.Errorf("combo, kill -9 %s: %w", victim, err)
	}
	if !slices.Contains(f.Targets, victim) {
		f.Targets = append(f.Targets, victim)
	}
	// A dead node answers no health probe.
	f.CutOff = slices.DeleteFunc(f.CutOff, func(id string) bool { return id == victim })
	what := f.Sides
	if what == "" {
		what = f.Note
	}
	f.Sides = ""
	f.Note = fmt.Sprintf("%s %s + kill -9 %s", first, what, victim)
	if victim == cortex {
		f.FailsOver = true
	}
	return f, nil
}
