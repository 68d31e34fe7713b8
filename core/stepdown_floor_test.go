package core

import (
	"testing"
	"time"
)

// TestStepDownCarriesFloor: a Cortex still inside its commit floor (elected
// on crash hints: an older Cortex's lease may run) that steps down for a
// full disk sanctions its successor with what is left of the floor, and the
// successor commits nothing before it, though its voters, who heard the
// Cortex give its lease up, report no lease wait (rule 14, rule 18; seed
// 509376).
func TestStepDownCarriesFloor(t *testing.T) {
	c := newCluster(shapes[0], time.Second, time.Millisecond, 5)
	c.runUntil(c.now.Add(2 * time.Second))
	cx := c.cortex()
	if cx == nil {
		t.Fatalf("no Cortex:\n%s", c.trace)
	}
	c.propose(cx.id, "before", Quorum)
	c.runUntil(c.now.Add(100 * time.Millisecond))
	floor := c.now.Add(400 * time.Millisecond)
	cx.n.commitFloor = floor // as if elected on hints with an old lease left
	to := cx.n.Successor()
	if to == "" {
		t.Fatalf("no successor:\n%s", c.statusLines())
	}
	cx.n.StepDown(c.now, "disk full (test)")
	c.process(cx)
	c.runUntil(c.now.Add(50 * time.Millisecond))
	nc := c.node(to)
	if nc.n.Role() != RoleCortex {
		t.Fatalf("%s did not win the sanctioned election: %s\n%s", to, nc.n.Role(), c.trace)
	}
	if nc.n.commitFloor < floor {
		t.Fatalf("successor's commit floor %s, before the old Cortex's %s", fmtTime(nc.n.commitFloor), fmtTime(floor))
	}
	w := c.propose(to, "after", Quorum)
	c.runUntil(floor.Add(-time.Millisecond))
	if r, ok := c.resultOf(w); ok {
		t.Fatalf("write acknowledged at or before %s, inside the floor %s: %+v", fmtTime(c.now), fmtTime(floor), r)
	}
	c.runUntil(floor.Add(200 * time.Millisecond))
	if r, ok := c.resultOf(w); !ok || r.Err != nil {
		t.Fatalf("write after the floor: %+v %v\n%s", r, ok, c.statusLines())
	}
}
