package core

import (
	"testing"
	"time"
)

// TestTruncateUnsavedWrite: a deposed Cortex takes a local write and, before
// its driver has persisted that Ready, an append from the new Cortex
// replaces the entry. The write was never durable, so its result must be an
// error (not an acknowledgement) and it must not be handed to the quarantine
// (the store never had it). Found by the container harness (pause nemesis).
func TestTruncateUnsavedWrite(t *testing.T) {
	c := newCluster(shapes[0], time.Second, time.Millisecond, 1)
	c.runUntil(c.now.Add(time.Second))
	c.isolate([]NodeID{"n1"}, []NodeID{"n2", "n3"})
	c.runUntil(c.now.Add(3500 * time.Millisecond))
	n1, n2 := c.node("n1").n, c.node("n2").n
	if n1.Role() != RoleCortex || n2.Role() != RoleCortex {
		t.Fatalf("want n1 still Cortex of epoch 1 and n2 Cortex of epoch 2, got %s and %s", n1.Role(), n2.Role())
	}
	common := Pos{Epoch: 1, Seq: 2}
	if !n1.log.has(common) || !n2.log.has(common) {
		t.Fatalf("logs do not share %s: %s / %s", common, n1.Last(), n2.Last())
	}
	n1.Propose(c.now, 99, []byte("w"), Local) // not persisted yet
	n1.Step(c.now, Message{Type: MsgAppend, From: "n2", To: "n1", Epoch: 2, Role: RoleCortex,
		Prev: common, Entries: n2.log.slice(common.Seq+1, n2.log.lastSeq(), 1<<20), SentAt: c.now})
	rd := n1.Ready()
	var got *Result
	for i, r := range rd.Results {
		if r.ID == 99 {
			got = &rd.Results[i]
		}
	}
	if got == nil || got.Err == nil {
		t.Fatalf("the replaced, never-persisted write was acknowledged: %+v", got)
	}
	if rd.Truncate != nil {
		t.Fatalf("nothing persisted was removed, yet a truncation was asked: %+v", rd.Truncate)
	}
	for _, e := range rd.Entries {
		if e.Pos.Epoch == 1 && e.Pos.Seq > common.Seq {
			t.Fatalf("the replaced entry %s is still to be written", e.Pos)
		}
	}
}
