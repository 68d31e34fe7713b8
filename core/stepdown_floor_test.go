package core

import (
	"testing"
	"time"
)

// TestStepDownWaitsFloor: a Cortex still inside its commit floor (elected
// on crash hints: an older Cortex's lease may run) names no successor, so
// a full disk does not make it hand off (its successor's voters, who hear
// it give its lease up, would report no lease wait); once the floor has
// passed it names one. A sanction that carries a floor makes the
// successor commit nothing before it (rule 14, rule 18; seed 509376).
func TestStepDownWaitsFloor(t *testing.T) {
	c, cx := settled(t)
	if cx.n.Successor() == "" {
		t.Fatalf("no successor outside a floor:\n%s", c.statusLines())
	}
	floor := c.now.Add(400 * time.Millisecond)
	cx.n.commitFloor = floor // as if elected on hints with an old lease left
	if to := cx.n.Successor(); to != "" {
		t.Fatalf("successor %s named inside the commit floor", to)
	}
	cx.n.StepDown(c.now, "disk full (test)")
	c.process(cx)
	if cx.n.Role() == RoleCortex {
		t.Fatalf("StepDown left it Cortex")
	}
	c.runUntil(c.now.Add(50 * time.Millisecond))
	for _, x := range c.nodes {
		if x.n.Role() == RoleCandidate || x.n.Role() == RoleCortex {
			t.Fatalf("%s runs (%s) after a step-down inside the floor: a sanction went out\n%s", x.id, x.n.Role(), c.trace)
		}
	}

	// The sanction's floor, as a handoff inside a floor would carry it.
	c2, cx2 := settled(t)
	to := cx2.n.Successor()
	if to == "" {
		t.Fatalf("no successor:\n%s", c2.statusLines())
	}
	floor2 := c2.now.Add(400 * time.Millisecond)
	cx2.n.commitFloor = floor2
	cx2.n.leaseFloor = Never
	cx2.n.broadcastHeartbeat()
	cx2.n.send(cx2.n.timeoutNow(to))
	cx2.n.demoteFor("disk full (test)")
	c2.process(cx2)
	c2.runUntil(c2.now.Add(50 * time.Millisecond))
	nc := c2.node(to)
	if nc.n.Role() != RoleCortex {
		t.Fatalf("%s did not win the sanctioned election: %s\n%s", to, nc.n.Role(), c2.trace)
	}
	if nc.n.commitFloor < floor2 {
		t.Fatalf("successor's commit floor %s, before the old Cortex's %s", fmtTime(nc.n.commitFloor), fmtTime(floor2))
	}
	w := c2.propose(to, "after", Quorum)
	c2.runUntil(floor2.Add(-time.Millisecond))
	if r, ok := c2.resultOf(w); ok {
		t.Fatalf("write acknowledged at or before %s, inside the floor %s: %+v", fmtTime(c2.now), fmtTime(floor2), r)
	}
	c2.runUntil(floor2.Add(200 * time.Millisecond))
	if r, ok := c2.resultOf(w); !ok || r.Err != nil {
		t.Fatalf("write after the floor: %+v %v\n%s", r, ok, c2.statusLines())
	}
}
