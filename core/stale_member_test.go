package core

import (
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
