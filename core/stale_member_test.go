package core

import (
	"slices"
	"testing"
	"time"
)

// TestStaleVoterAnswersReport: seed 200351. A voter cut off while the Cortex
// added d and removed c still has {a, b, c}; d, with the newest log, has
// {a, b, d}. b and c are gone. a never reports SDOWN to d (not its member),
// so d must get a's answer to its own report to reach ODOWN, run, and win
// with a's vote; a, behind, can never win.
func TestStaleVoterAnswersReport(t *testing.T) {
	auto := func(ids ...NodeID) Members {
		var ms Members
		for _, id := range ids {
			ms = append(ms, Member{ID: id, Kind: KindAuto})
		}
		return ms
	}
	mk := func(id NodeID, ms Members, last Seq) *Node {
		return New(Config{ID: id, Kind: KindAuto, Seed: 7},
			Restored{HardState: HardState{Epoch: 1}, Snap: Pos{Epoch: 1, Seq: last}, SnapMembers: ms}, 0)
	}
	nodes := map[NodeID]*Node{
		"a": mk("a", auto("a", "b", "c"), 5),
		"d": mk("d", auto("a", "b", "d"), 9),
	}
	untilCortex(t, nodes, []NodeID{"a", "d"}, "d")
}

// untilCortex runs nodes (in order, messages delivered one tick later) for
// up to 20 s until want is Cortex.
func untilCortex(t *testing.T, nodes map[NodeID]*Node, order []NodeID, want NodeID) {
	t.Helper()
	var queue []Message
	for now := Time(0); now < Time(20*time.Second); now = now.Add(10 * time.Millisecond) {
		in := queue
		queue = nil
		for _, m := range in {
			if n := nodes[m.To]; n != nil {
				n.Step(now, m)
			}
		}
		for _, id := range order {
			n := nodes[id]
			n.Tick(now)
			queue = append(queue, n.Ready().Messages...)
			n.Advance()
		}
		if nodes[want].Role() == RoleCortex {
			return
		}
	}
	for _, id := range order {
		t.Errorf("%s: %s epoch %d", id, nodes[id].Role(), nodes[id].Epoch())
	}
	t.Fatalf("%s not Cortex in 20 s", want)
}

// TestUnpromotedLearnerAnswersReport: seed 102453 (Pebble). j was promoted
// while it was down: it still takes itself for a learner of {a, j, c},
// while c knows {a, j, c} with j a voter. a is wiped and down; c needs j's
// SDOWN report for ODOWN, and j, a learner in its own eyes, reports to no
// one. It must answer c's report so c can run and win with j's vote.
func TestUnpromotedLearnerAnswersReport(t *testing.T) {
	mk := func(id NodeID, ms Members, last Seq) *Node {
		return New(Config{ID: id, Kind: KindAuto, Seed: 9},
			Restored{HardState: HardState{Epoch: 1}, Snap: Pos{Epoch: 1, Seq: last}, SnapMembers: ms}, 0)
	}
	nodes := map[NodeID]*Node{
		"j": mk("j", Members{{ID: "a", Kind: KindAuto}, {ID: "c", Kind: KindAuto}, {ID: "j", Kind: KindAuto, Learner: true}}, 5),
		"c": mk("c", Members{{ID: "a", Kind: KindAuto}, {ID: "c", Kind: KindAuto}, {ID: "j", Kind: KindAuto}}, 9),
	}
	untilCortex(t, nodes, []NodeID{"c", "j"}, "c")
}

// TestDeposedCortexRecordsNoWipedStore: seed 500117. A Cortex cut off from
// everyone is deposed: the others elect one of them and commit a write.
// One of them is then wiped and, cut off from the new Cortex, reaches only
// the deposed one, which still believes it leads and catches the wiped
// store up on its own, older log. Recording that store would let it
// commit, and be elected again, with the help of a store that lost its
// vote and acknowledgements for the later epoch: the committed write
// would be lost. It must not record it until a quorum not counting the
// wiped member has echoed it since the new store was first heard (rule 16).
func TestDeposedCortexRecordsNoWipedStore(t *testing.T) {
	c, old := settled(t)
	rest := c.othersThan(old)
	c.isolate([]NodeID{old.id}, rest)
	c.runUntil(c.now.Add(3500 * time.Millisecond))
	nc := c.cortex()
	if nc == nil || nc == old || nc.n.Epoch() <= old.n.Epoch() {
		t.Fatalf("no Cortex of a later epoch on the majority side: %v\n%s", nc, c.statusLines())
	}
	if old.n.Role() != RoleCortex {
		t.Fatalf("the deposed Cortex demoted itself first (%s): the case needs it to lead still", old.n.Role())
	}
	id := c.propose(nc.id, "later epoch", Quorum)
	c.runUntil(c.now.Add(100 * time.Millisecond))
	if r, ok := c.resultOf(id); !ok || r.Err != nil {
		t.Fatalf("the write in the later epoch: %+v (answered %v)\n%s", r, ok, c.trace)
	}
	var wiped NodeID
	for _, x := range rest {
		if x != nc.id {
			wiped = x
		}
	}
	c.crash(wiped)
	c.wipe(wiped)
	c.heal()
	c.isolate([]NodeID{nc.id}, []NodeID{old.id, wiped})
	c.restart(wiped)
	fresh := c.node(wiped).cfg.Store
	c.runUntil(c.now.Add(500 * time.Millisecond))
	if m, ok := old.n.Members().Get(wiped); ok && m.Store == fresh {
		t.Fatalf("the deposed Cortex recorded %s's new store %x, caught up on its own log only\n%s", wiped, fresh, c.trace)
	}
	c.heal()
	c.runUntil(c.now.Add(10 * time.Second))
	c.checkInvariants()
	for _, x := range c.nodes {
		if !slices.ContainsFunc(x.disk.Entries, func(e Entry) bool { return string(e.Payload) == "later epoch" }) {
			t.Errorf("%s lost the write committed in the later epoch\n%s", x.id, c.statusLines())
		}
	}
	if len(c.failures) > 0 {
		t.Fatalf("%v\n%s", c.failures, c.trace)
	}
}
