package core

import (
	"strings"
	"testing"
	"time"
)

// TestHandoffPriorityUnsaid: a Lobe that has sent the Cortex no heartbeat
// yet (the Cortex just started or just won) has not said its
// cluster.priority. A handoff to it is refused as busy, naming it, so the
// API's admin retry asks again; it is not refused as "priority 0 (never
// Cortex)", which is what the node would otherwise take the unsaid 0 for.
// After its next heartbeat the same handoff goes through.
func TestHandoffPriorityUnsaid(t *testing.T) {
	c, cx := settled(t)
	lobes := c.othersThan(cx)
	unsay := func() {
		for _, id := range lobes {
			cx.n.peers[id].prioHeard = false
		}
	}
	handoff := func(to NodeID) Result {
		t.Helper()
		c.nextID++
		id := c.nextID
		cx.n.TransferCortex(c.now, id, to)
		c.process(cx)
		r, ok := c.resultOf(id)
		if !ok {
			t.Fatalf("handoff to %q: no answer at once\n%s", to, c.trace)
		}
		return r
	}
	unsay()
	for _, to := range []NodeID{lobes[0], ""} {
		r := handoff(to)
		if r.Err == nil || r.Err.Code != CodeBusy || !strings.Contains(r.Err.Error(), "has not said its cluster.priority yet") {
			t.Fatalf("handoff to %q before a heartbeat: %+v; want busy, priority not said yet", to, r.Err)
		}
	}
	if st := cx.n.Status(); st.Role != RoleCortex {
		t.Fatalf("the refused handoffs moved the Cortex: %s", st.Role)
	}
	c.runUntil(c.now.Add(1500 * time.Millisecond))
	if p, heard := cx.n.peerPriority(lobes[0]); !heard || p != DefaultPriority {
		t.Fatalf("after a heartbeat: priority %d, heard %v", p, heard)
	}
	c.nextID++
	id := c.nextID
	cx.n.TransferCortex(c.now, id, lobes[0])
	c.process(cx)
	c.runUntil(c.now.Add(time.Second))
	if r, ok := c.resultOf(id); !ok || r.Err != nil {
		t.Fatalf("handoff after a heartbeat: %+v %v\n%s", r, ok, c.statusLines())
	}
	if nc := c.cortex(); nc == nil || nc.id != lobes[0] {
		t.Fatalf("Cortex after the handoff: %v, want %s\n%s", nc, lobes[0], c.statusLines())
	}
}
