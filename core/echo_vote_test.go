package core

import (
	"slices"
	"testing"
	"time"
)

// TestEchoThenVoteRecordsNoStore: the rule-16 echo check (leadsSince) counts
// a voter that echoed the Cortex after the wiped member's new store was
// first heard, but that voter may still vote afterwards in an election that
// already holds the wiped store's old vote. Five voters: C hands off to A;
// A's vote request to V is delayed; W (old store) grants, is wiped, comes
// back and reaches C; V and D echo C; then A's delayed (sanctioned) request
// reaches V, which grants: A wins epoch e+1 with {A, W-old, V}. C aborts
// its handoff and records W's new store, but may commit nothing with W-new
// until that record commits on W voters counted with the stores recorded
// before (rule 16): y must never be acknowledged and then lost (found by
// the review of 25cb1ff).
func TestEchoThenVoteRecordsNoStore(t *testing.T) {
	c := newCluster(shapes[2], time.Second, time.Millisecond, 7)
	c.runUntil(c.now.Add(2 * time.Second))
	cx := c.cortex()
	if cx == nil {
		t.Fatalf("no Cortex:\n%s", c.trace)
	}
	c.propose(cx.id, "w1", Quorum)
	c.runUntil(c.now.Add(100 * time.Millisecond))
	others := c.othersThan(cx)
	A, W, V, D := others[0], others[1], others[2], others[3]
	C := cx.id
	phase := 1
	var delayed *Message
	c.lossy = func(m Message) bool {
		switch phase {
		case 1: // A campaigns: only W hears it; its request to V is delayed
			if m.From == A && m.Type == MsgVote && m.To == V {
				mm := m
				delayed = &mm
				return true
			}
			if m.From == A {
				return m.To != W
			}
			if m.To == A {
				return !(m.From == W || m.From == V || m.Type == MsgTimeoutNow)
			}
		case 2, 3: // W wiped: A reaches only V (phase 3: V reaches only A)
			if m.From == A || m.To == A {
				return !(m.From == V || m.To == V)
			}
			if phase == 3 && (m.From == V || m.To == V) {
				return true
			}
		}
		return false
	}
	c.nextID++
	xfer := c.nextID
	cx.n.TransferCortex(c.now, xfer, A)
	c.process(cx)
	t0 := c.now
	c.runUntil(c.now.Add(10 * time.Millisecond))
	a := c.node(A)
	if a.n.Role() != RoleCandidate || !a.n.votes[W] {
		t.Fatalf("A is not a candidate holding W's vote: %s %v\n%s", a.n.Role(), a.n.votes, c.trace)
	}
	if delayed == nil {
		t.Fatalf("A's vote request to V was not captured")
	}
	epochA := a.n.Epoch()
	// W (which voted for A) is wiped and comes back: it reaches C.
	phase = 2
	c.crash(W)
	c.wipe(W)
	c.restart(W)
	fresh := c.node(W).cfg.Store
	c.runUntil(t0.Add(600 * time.Millisecond))
	since := cx.n.prog[W].storeSince
	c.logf("C heard W's new store at %s; V echo %s, D echo %s", fmtTime(since), fmtTime(cx.n.prog[V].echo), fmtTime(cx.n.prog[D].echo))
	if since == 0 || cx.n.prog[V].echo < since || cx.n.prog[D].echo < since {
		t.Fatalf("V and D did not echo C after it heard W's new store\n%s", c.trace)
	}
	// A's delayed sanctioned request now reaches V (after V's echo).
	phase = 3
	c.seq++
	c.queue = append(c.queue, flight{at: c.now.Add(time.Millisecond), seq: c.seq, m: *delayed})
	c.runUntil(c.now.Add(10 * time.Millisecond))
	if a.n.Role() != RoleCortex || a.n.Epoch() != epochA {
		t.Fatalf("A did not win epoch %d with W's old vote and V's: %s epoch %d\n%s", epochA, a.n.Role(), a.n.Epoch(), c.trace)
	}
	// C aborts the handoff (it never heard A won) and goes on.
	c.runUntil(t0.Add(3300 * time.Millisecond))
	if cx.n.Role() != RoleCortex {
		t.Fatalf("C is no longer Cortex: %s\n%s", cx.n.Role(), c.trace)
	}
	m, _ := cx.n.Members().Get(W)
	c.logf("C records W's store %x (fresh %x)", m.Store, fresh)
	y := c.propose(C, "y", Quorum)
	c.runUntil(c.now.Add(200 * time.Millisecond))
	r, ok := c.resultOf(y)
	c.logf("y answered %v: %+v", ok, r)
	if !ok || r.Err != nil {
		t.Logf("y not acknowledged (the hole is closed here): %+v %v\n%s", r, ok, c.statusLines())
		return
	}
	t.Logf("C (epoch %d) acknowledged quorum write y at %s while A leads epoch %d without it", cx.n.Epoch(), r.Pos, epochA)
	c.lossy = nil
	c.heal()
	c.runUntil(c.now.Add(15 * time.Second))
	var missing []NodeID
	for _, x := range c.nodes {
		if x.up && !slices.ContainsFunc(x.n.log.entries, func(e Entry) bool { return string(e.Payload) == "y" }) {
			missing = append(missing, x.id)
		}
	}
	t.Logf("after healing:\n%s", c.statusLines())
	if len(missing) > 0 || len(c.failures) > 0 {
		t.Fatalf("quorum write y acknowledged by C, then missing on %v; failures %v\n%s", missing, c.failures, c.trace)
	}
}
