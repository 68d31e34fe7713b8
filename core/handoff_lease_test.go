package core

import (
	"strings"
	"testing"
	"time"
)

// TestLateSanctionedVote: a Cortex whose handoff aborted leads again, and
// its lease counts on the voters' echoes. The target's vote request,
// delayed past the abort, reaches a voter that has echoed the resumed
// Cortex: a vote granted with no lease wait elected the target, which
// committed a quorum write while the old Cortex still served a strong read
// from its lease without it (rule 12). The voter waits out the lease unless
// the Cortex's latest word said it had given it up (rule 14).
func TestLateSanctionedVote(t *testing.T) {
	c, cx := settled(t) // heartbeat 1 s: SDOWN window 3 s, lease 0.5 s
	var T, V NodeID
	for _, x := range c.nodes {
		if x != cx && T == "" {
			T = x.id
		} else if x != cx {
			V = x.id
		}
	}
	type late struct {
		m     Message
		delay time.Duration
	}
	var held []late
	cut := false
	c.lossy = func(m Message) bool {
		switch {
		case m.Type == MsgTimeoutNow:
			// Reaches the target just before the Cortex's handoff
			// deadline; the two are cut off from then on.
			held = append(held, late{m, 2900 * time.Millisecond})
			cut = true
			return true
		case cut && (m.From == cx.id && m.To == T || m.From == T && m.To == cx.id):
			return true
		case m.Type == MsgVote && m.From == T && m.To == V:
			// Past the abort and past the resumed Cortex's next heartbeat.
			held = append(held, late{m, 400 * time.Millisecond})
			return true
		}
		return false
	}
	c.nextID++
	cx.n.TransferCortex(c.now, c.nextID, T)
	c.process(cx)
	var write, read uint64
	for end := c.now.Add(4 * time.Second); c.now < end; {
		c.runUntil(c.now.Add(time.Millisecond))
		for _, h := range held {
			c.seq++
			c.queue = append(c.queue, flight{at: c.now.Add(h.delay), seq: c.seq, m: h.m})
		}
		held = nil
		if nc := c.cortex(); write == 0 && nc != nil && nc.id == T {
			write = c.propose(T, "x", Quorum)
		}
		if r, ok := c.resultOf(write); write != 0 && read == 0 && ok && r.Err == nil {
			// x is acknowledged: a strong read must see it or be refused.
			c.nextID++
			read = c.nextID
			cx.n.Read(c.now, read, Strong, 0)
			c.process(cx)
		}
	}
	if read == 0 {
		t.Fatalf("the target never won and acknowledged a write:\n%s%s", c.statusLines(), c.trace)
	}
	if r, ok := c.resultOf(read); ok && r.Err == nil {
		t.Fatalf("the old Cortex %s served a strong read at %s after %s acknowledged a quorum write in epoch %d:\n%s%s", cx.id, r.Pos, T, c.node(T).n.Epoch(), c.statusLines(), c.trace)
	}
	if len(c.failures) > 0 {
		t.Fatal(strings.Join(c.failures, "\n"))
	}
}
