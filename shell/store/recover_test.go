package store

import (
	"strings"
	"testing"

	"github.com/muninndb/muninn/core"
)

// recoverStore is a closed store of member "a" of a five-member cluster
// (three data voters, a Sentinel, an Observer) holding entries 3.1..3.7,
// commit 3.5, its hard state at epoch 4 with a vote.
func recoverStore(t *testing.T) (dir string, identity uint64) {
	t.Helper()
	dir = t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ms := core.Members{
		{ID: "a", Kind: core.KindAuto, Store: s.Identity(), Addr: "10.0.0.1:8474"},
		{ID: "b", Kind: core.KindAuto, Store: 22, Addr: "10.0.0.2:8474"},
		{ID: "c", Kind: core.KindAuto, Addr: "10.0.0.3:8474"},
		{ID: "o", Kind: core.KindObserver, Store: 44, Addr: "10.0.0.4:8474"},
		{ID: "s", Kind: core.KindSentinel, Store: 55, Addr: "10.0.0.5:8474"},
	}
	var es []core.Entry
	for q := core.Seq(1); q <= 7; q++ {
		es = append(es, core.Entry{Pos: core.Pos{Epoch: 3, Seq: q}, Type: core.EntryEpochStart})
	}
	hs := core.HardState{Epoch: 4, Vote: "b", VoteStore: 22, Commit: core.Pos{Epoch: 3, Seq: 5}}
	if err := s.Save(SaveBatch{HardState: &hs, Entries: es, Members: ms}, true); err != nil {
		t.Fatal(err)
	}
	identity = s.Identity()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, identity
}

// TestForceSoleVoter: the store's member becomes the only voter of an
// epoch 1000 above every epoch seen (its own and minEpoch), in one membership
// entry after its last; every entry is kept, the commit point is not
// moved, the vote is cleared; the other data members are learners with no
// store, the Observer stays an Observer, the Sentinel is dropped. All of it
// survives a reopen.
func TestForceSoleVoter(t *testing.T) {
	for _, tc := range []struct {
		minEpoch core.Epoch
		want     core.Epoch
	}{{0, 4 + ForcedEpochJump}, {9, 9 + ForcedEpochJump}} {
		dir, identity := recoverStore(t)
		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.ForceSoleVoter("a", tc.minEpoch, 1234)
		if err != nil {
			t.Fatal(err)
		}
		if got.Epoch != tc.want || got.Entry != (core.Pos{Epoch: tc.want, Seq: 8}) || got.BeforeLast != (core.Pos{Epoch: 3, Seq: 7}) ||
			got.Before.Epoch != 4 || strings.Join(ids(got.Learners), ",") != "b,c" || strings.Join(ids(got.Dropped), ",") != "s" {
			t.Fatalf("minEpoch %d: %+v", tc.minEpoch, got)
		}
		s.Close()

		s, err = Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		r, err := s.Load()
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if r.HardState != (core.HardState{Epoch: tc.want, Commit: core.Pos{Epoch: 3, Seq: 5}}) {
			t.Errorf("hard state %+v, want epoch %d, no vote, commit 3.5", r.HardState, tc.want)
		}
		if len(r.Entries) != 8 || r.Applied != got.Entry {
			t.Fatalf("%d entries, applied %s; want 8, %s", len(r.Entries), r.Applied, got.Entry)
		}
		for i, e := range r.Entries[:7] {
			if e.Pos != (core.Pos{Epoch: 3, Seq: core.Seq(i + 1)}) || e.Type != core.EntryEpochStart {
				t.Errorf("entry %d is %s %s: the entries held are not all kept", i+1, e.Pos, e.Type)
			}
		}
		want := core.Members{
			{ID: "a", Kind: core.KindAuto, Store: identity, Addr: "10.0.0.1:8474"},
			{ID: "b", Kind: core.KindAuto, Learner: true, Addr: "10.0.0.2:8474"},
			{ID: "c", Kind: core.KindAuto, Learner: true, Addr: "10.0.0.3:8474"},
			{ID: "o", Kind: core.KindObserver, Addr: "10.0.0.4:8474"},
		}
		last := r.Entries[7]
		inEntry, err := core.DecodeMembers(last.Payload)
		if err != nil || last.Type != core.EntryMembership {
			t.Fatalf("last entry %s %s: %v", last.Pos, last.Type, err)
		}
		for what, ms := range map[string]core.Members{"meta": r.Members, "entry": inEntry} {
			if len(ms) != len(want) {
				t.Fatalf("%s membership %+v, want %+v", what, ms, want)
			}
			for i := range want {
				if ms[i] != want[i] {
					t.Errorf("%s membership[%d] = %+v, want %+v", what, i, ms[i], want[i])
				}
			}
		}
		if r.Members.Voters() != 1 || r.Members.Quorum() != 1 || r.Members.WriteQuorum() != 1 {
			t.Errorf("voters %d quorum %d W %d, want 1 1 1", r.Members.Voters(), r.Members.Quorum(), r.Members.WriteQuorum())
		}
		if r.MaxEpoch != tc.want {
			t.Errorf("max epoch %d, want %d", r.MaxEpoch, tc.want)
		}
	}
}

// TestForceSoleVoterRefusals: a member that is not a data voter, or not a
// member at all, a store that is not the member's (another store recorded
// for it, or this store recorded for another member), and a store with no
// epoch are refused, naming the data voters or the reason, and nothing is
// written.
func TestForceSoleVoterRefusals(t *testing.T) {
	dir, _ := recoverStore(t)
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for id, want := range map[core.NodeID]string{
		"s": "s is a member but not a data voter (a sentinel) of its membership, whose data voters are a, b, c",
		"o": "o is a member but not a data voter (an observer)",
		"x": "x is not a member of its membership, whose data voters are a, b, c",
		// Not this store's member (rule 16): b's recorded store is 22;
		// this store is recorded for a.
		"b": "is not b's: its membership records store 0000000000000016 for b",
		"c": "is a's, not c's: its membership records this store for a; give --node a with it, or c's own data directory",
	} {
		if _, err := s.ForceSoleVoter(id, 0, 0); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--node %s: %v; want %q", id, err, want)
		}
	}
	if hs, last, _ := s.State(); hs.Epoch != 4 || last != (core.Pos{Epoch: 3, Seq: 7}) {
		t.Errorf("after refusals: epoch %d last %s: something was written", hs.Epoch, last)
	}

	empty, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	if _, err := empty.ForceSoleVoter("a", 0, 0); err == nil || !strings.Contains(err.Error(), "has no epoch") {
		t.Errorf("a store with no epoch: %v", err)
	}
}

func ids(ns []core.NodeID) []string {
	var out []string
	for _, n := range ns {
		out = append(out, string(n))
	}
	return out
}
