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

// TestTruncateUnsavedAppendAck: a follower takes entries from one Cortex
// and, before its driver has persisted that Ready, an append from a Cortex
// of a later epoch replaces them. The answer acknowledging those entries is
// still in the Ready: sent after the save, it would tell the old Cortex
// they are durable here when they were never written (rule 8). Sim seed
// 507710 (Pebble, pipelined saves): an Observer resumed from a pause took
// epoch 3's entries and epoch 4's replacement in one Ready and acknowledged
// 3.48 over a log ending at 4.46.
func TestTruncateUnsavedAppendAck(t *testing.T) {
	c := newCluster(shapes[0], time.Second, time.Millisecond, 1)
	c.runUntil(c.now.Add(time.Second))
	n3 := c.node("n3").n
	if n3.Role() == RoleCortex || n3.HasReady() {
		t.Fatalf("want n3 a follower with nothing pending, got %s (ready %v)", n3.Role(), n3.HasReady())
	}
	common, old := n3.Last(), n3.Epoch()
	oldCortex, newCortex := c.cortex().id, NodeID("n2")
	if oldCortex == newCortex {
		newCortex = "n1"
	}
	entry := func(e Epoch, s Seq) Entry { return Entry{Pos: Pos{Epoch: e, Seq: s}, Payload: []byte("x")} }
	n3.Step(c.now, Message{Type: MsgAppend, From: oldCortex, To: "n3", Epoch: old, Role: RoleCortex,
		Prev: common, Entries: []Entry{entry(old, common.Seq+1), entry(old, common.Seq+2)}, Commit: common, SentAt: c.now})
	n3.Step(c.now, Message{Type: MsgAppend, From: newCortex, To: "n3", Epoch: old + 1, Role: RoleCortex,
		Prev: common, Entries: []Entry{{Pos: Pos{Epoch: old + 1, Seq: common.Seq + 1}, Type: EntryEpochStart}}, Commit: common, SentAt: c.now})
	rd := n3.Ready()
	for _, m := range rd.Messages {
		if m.Type == MsgAppendResp && !m.Reject && m.Match.Seq > common.Seq && m.Match.Epoch == old {
			t.Fatalf("acknowledges %s to %s, an entry replaced before it was ever written (the Ready writes %v)", m.Match, m.To, rd.Entries)
		}
	}
	var acked bool
	for _, m := range rd.Messages {
		acked = acked || m.Type == MsgAppendResp && !m.Reject && m.To == newCortex && m.Match == (Pos{Epoch: old + 1, Seq: common.Seq + 1})
	}
	if !acked {
		t.Fatalf("the new Cortex's entry is not acknowledged: %+v", rd.Messages)
	}
}
