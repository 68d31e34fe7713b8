package core

import (
	"strings"
	"testing"
	"time"
)

// promotedSpare runs a three-voter cluster (heartbeat 250 ms, as the netns
// soak), adds n4, and runs until the Cortex has appended n4's promotion:
// the moment the churn nemesis asks for a handoff. The promotion entry is
// then still on its way to n4.
func promotedSpare(t *testing.T) (*tcluster, *tnode) {
	t.Helper()
	c := newCluster(shapes[0], 250*time.Millisecond, time.Millisecond, 7)
	c.runUntil(c.now.Add(time.Second))
	cx := c.cortex()
	if cx == nil {
		t.Fatalf("no Cortex after 1s:\n%s", c.trace)
	}
	for i := 0; i < 5; i++ {
		c.propose(cx.id, "w", Quorum)
	}
	c.runUntil(c.now.Add(50 * time.Millisecond))
	cfg := Config{ID: "n4", Kind: KindAuto, Heartbeat: 250 * time.Millisecond, Seed: 99, Store: c.newStore()}
	c.nodes = append(c.nodes, &tnode{id: "n4", cfg: cfg, up: true, n: New(cfg, Restored{}, c.now)})
	c.nextID++
	cx.n.AddMember(c.now, c.nextID, Member{ID: "n4", Kind: KindAuto})
	c.process(cx)
	// n4's first heartbeat, with its priority: the soak's spare had
	// dialled every peer before it was added, which the harness does not
	// model (its n4 heartbeats only the members its log names).
	cx.n.Step(c.now, Message{Type: MsgHeartbeat, From: "n4", To: cx.id, Epoch: cx.n.Epoch(), Kind: KindAuto, Role: RoleLobe, Priority: DefaultPriority, Store: cfg.Store})
	c.process(cx)
	for end := c.now.Add(time.Second); ; {
		if m, ok := cx.n.members.Get("n4"); ok && m.DataVoter() {
			break
		}
		if c.now >= end {
			t.Fatalf("n4 not promoted within 1s:\n%s", c.trace)
		}
		c.runUntil(c.now.Add(time.Millisecond))
	}
	return c, cx
}

// TestHandoffToJustPromoted: a handoff to a learner the Cortex has just
// promoted makes it Cortex within a few round trips.
func TestHandoffToJustPromoted(t *testing.T) {
	for _, target := range []NodeID{"n4", ""} {
		c, cx := promotedSpare(t)
		c.nextID++
		cx.n.TransferCortex(c.now, c.nextID, target)
		c.process(cx)
		if r, ok := c.resultOf(c.nextID); ok && r.Err != nil {
			t.Fatalf("handoff to %q refused: %s", target, r.Err.Msg)
		}
		c.runUntil(c.now.Add(50 * time.Millisecond))
		nc := c.cortex()
		if nc == nil || nc.n.Epoch() != cx.n.Epoch() || target != "" && nc.id != target {
			t.Fatalf("handoff to %q: 50 ms later the Cortex is %v, want %s in epoch 2\n%s%s", target, cortexID(nc), orUnknown(target), c.statusLines(), c.trace)
		}
		if len(c.failures) > 0 {
			t.Fatal(strings.Join(c.failures, "\n"))
		}
	}
}

// TestHandoffSlowVotes: the handoff target of the soak's round 16 (netns,
// observer x churn) lost its election: a voter persists its vote before
// answering (rule 5), and behind a loaded disk the old Cortex's answer went
// out 555 ms after it stepped down for the target, which had given up
// after one heartbeat (250 ms). Nobody ran again until an SDOWN window
// later, and the old Cortex was elected. Rule 14 gives the target the
// SDOWN window: votes that take longer than a heartbeat but less than
// that window must still make it Cortex.
func TestHandoffSlowVotes(t *testing.T) {
	c, cx := promotedSpare(t)
	// Vote answers arrive 400 ms late (a slow fsync): more than a
	// heartbeat, less than the SDOWN window (750 ms).
	var late []Message
	c.lossy = func(m Message) bool {
		if m.Type == MsgVoteResp {
			late = append(late, m)
			return true
		}
		return false
	}
	c.nextID++
	cx.n.TransferCortex(c.now, c.nextID, "n4")
	c.process(cx)
	if r, ok := c.resultOf(c.nextID); ok && r.Err != nil {
		t.Fatalf("handoff refused: %s", r.Err.Msg)
	}
	for end := c.now.Add(600 * time.Millisecond); c.now < end; {
		c.runUntil(c.now.Add(time.Millisecond))
		for _, m := range late {
			c.seq++
			c.queue = append(c.queue, flight{at: c.now.Add(400 * time.Millisecond), seq: c.seq, m: m})
		}
		late = nil
	}
	nc := c.cortex()
	if nc == nil || nc.id != "n4" || nc.n.Epoch() != 2 {
		t.Fatalf("600 ms after the handoff (votes 400 ms late): Cortex %v, want n4 in epoch 2\n%s%s", cortexID(nc), c.statusLines(), c.trace)
	}
	if len(c.failures) > 0 {
		t.Fatal(strings.Join(c.failures, "\n"))
	}
}

func cortexID(t *tnode) NodeID {
	if t == nil {
		return ""
	}
	return t.id
}
