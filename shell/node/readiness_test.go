package node

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/mbp"
)

// TestQuorumWait checks the node-level readiness a restarted member
// reports: the voters it is connected to (itself included; observers,
// learners and disconnected peers not) of the membership's voters, and
// whether it waits (no Cortex known, fewer than a quorum connected).
func TestQuorumWait(t *testing.T) {
	three := core.Members{{ID: "a"}, {ID: "b"}, {ID: "c"}, {ID: "o", Kind: core.KindObserver}, {ID: "l", Learner: true}}
	for _, tc := range []struct {
		name    string
		members core.Members
		peers   []mbp.PeerInfo
		cortex  core.NodeID
		joining bool
		want    QuorumWait
	}{
		{"alone", three, nil, "", false, QuorumWait{true, 1, 3, 2}},
		{"peer disconnected", three, []mbp.PeerInfo{{ID: "b"}}, "", false, QuorumWait{true, 1, 3, 2}},
		{"observer and learner do not count", three, []mbp.PeerInfo{{ID: "o", Connected: true}, {ID: "l", Connected: true}}, "", false, QuorumWait{true, 1, 3, 2}},
		{"quorum connected, election", three, []mbp.PeerInfo{{ID: "b", Connected: true}}, "", false, QuorumWait{false, 2, 3, 2}},
		{"a Cortex is known", three, nil, "b", false, QuorumWait{false, 1, 3, 2}},
		{"single voter", core.Members{{ID: "a"}}, nil, "", false, QuorumWait{false, 1, 1, 1}},
		{"joining", nil, nil, "", true, QuorumWait{false, 0, 0, 1}},
	} {
		s := &Snapshot{Core: core.Status{ID: "a", Cortex: tc.cortex}, Members: tc.members, Peers: tc.peers, Joining: tc.joining}
		if got := s.QuorumWait(); got != tc.want {
			t.Errorf("%s: QuorumWait() = %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if got, want := (QuorumWait{true, 1, 3, 2}).Text(), "store open, waiting for a quorum: 1/3 voters (a quorum is 2;"; !strings.HasPrefix(got, want) {
		t.Errorf("Text() = %q, want it to begin %q", got, want)
	}
}

// TestNoteReadiness checks the readiness log: once when a node starts
// waiting, not again while nothing changes, a changed count not within
// readinessLogEvery of the last line, and one line when a quorum is met.
func TestNoteReadiness(t *testing.T) {
	var buf bytes.Buffer
	n := &Node{opts: Options{Cluster: true}, log: slog.New(slog.NewTextHandler(&buf, nil))}
	three := core.Members{{ID: "a"}, {ID: "b"}, {ID: "c"}}
	alone := &Snapshot{Core: core.Status{ID: "a"}, Members: three}
	lines := func() int { return strings.Count(buf.String(), "store open, waiting for a quorum") }
	n.noteReadiness(alone)
	n.noteReadiness(alone)
	if lines() != 1 {
		t.Fatalf("after two turns alone: %d readiness lines, want 1:\n%s", lines(), buf.String())
	}
	// A count change inside the interval waits (a peer that flaps).
	five := core.Members{{ID: "a"}, {ID: "b"}, {ID: "c"}, {ID: "d"}, {ID: "e"}}
	n.noteReadiness(&Snapshot{Core: core.Status{ID: "a"}, Members: five, Peers: []mbp.PeerInfo{{ID: "b", Connected: true}}})
	if lines() != 1 {
		t.Fatalf("a changed count within %s was logged at once:\n%s", readinessLogEvery, buf.String())
	}
	n.readiness.at = n.readiness.at.Add(-readinessLogEvery) // the interval passed
	n.noteReadiness(&Snapshot{Core: core.Status{ID: "a"}, Members: five, Peers: []mbp.PeerInfo{{ID: "b", Connected: true}}})
	if lines() != 2 || !strings.Contains(buf.String(), "2/5 voters") {
		t.Fatalf("the changed count was not logged after the interval:\n%s", buf.String())
	}
	n.noteReadiness(&Snapshot{Core: core.Status{ID: "a", Cortex: "b"}, Members: three, Peers: []mbp.PeerInfo{{ID: "b", Connected: true}}})
	n.noteReadiness(&Snapshot{Core: core.Status{ID: "a", Cortex: "b"}, Members: three, Peers: []mbp.PeerInfo{{ID: "b", Connected: true}, {ID: "c", Connected: true}}})
	if k := strings.Count(buf.String(), "quorum reached: 2/3 voters connected"); k != 1 || lines() != 2 {
		t.Fatalf("quorum reached logged %d times (want 1), readiness lines %d (want 2):\n%s", k, lines(), buf.String())
	}
	// A standalone node never logs it.
	var sb bytes.Buffer
	sn := &Node{log: slog.New(slog.NewTextHandler(&sb, nil))}
	sn.noteReadiness(alone)
	if sb.Len() != 0 {
		t.Fatalf("a standalone node logged: %s", sb.String())
	}
}

// TestQuorumWaitAllocs: publish computes the wait on every turn of the
// loop, so it must not allocate.
func TestQuorumWaitAllocs(t *testing.T) {
	s := &Snapshot{Core: core.Status{ID: "a"}, Members: core.Members{{ID: "a"}, {ID: "b"}, {ID: "c"}},
		Peers: []mbp.PeerInfo{{ID: "b", Connected: true}, {ID: "c"}}}
	if n := testing.AllocsPerRun(100, func() { _ = s.QuorumWait() }); n != 0 {
		t.Errorf("QuorumWait allocates %v times a call; want 0", n)
	}
}
