package store

import (
	"path/filepath"
	"testing"

	"github.com/muninndb/muninn/core"
)

// TestCapBelowMembershipChange: a checkpoint capped at a commit point below
// an uncommitted membership change, with no change left between the log
// base and the cap, still knows the membership at the cap once the store
// has pruned with the core's record of it (PruneAt), and survives a
// restart. Without that record the install fails (model seed 15: no
// snapshot could ever be sent, and no commit).
func TestCapBelowMembershipChange(t *testing.T) {
	root := t.TempDir()
	old := core.Members{{ID: "a"}, {ID: "b"}, {ID: "c"}}
	next := core.Members{{ID: "a"}, {ID: "b"}, {ID: "d"}}
	build := func(name string, recordBase bool) string {
		s := openT(t, filepath.Join(root, name))
		var es []core.Entry
		for i := core.Seq(1); i <= 10; i++ {
			es = append(es, dataEntry(t, 1, i, "x"))
		}
		if err := s.Save(SaveBatch{HardState: &core.HardState{Epoch: 1, Commit: core.Pos{Epoch: 1, Seq: 10}}, Entries: es, Members: old}, true); err != nil {
			t.Fatal(err)
		}
		var members core.Members
		if recordBase {
			members = old
		}
		if _, err := s.PruneAt(10, members); err != nil {
			t.Fatal(err)
		}
		// Above the commit point: a write, then the change (uncommitted).
		change := core.Entry{Pos: core.Pos{Epoch: 1, Seq: 12}, Type: core.EntryMembership, Payload: core.EncodeMembers(next)}
		if err := s.Save(SaveBatch{Entries: []core.Entry{dataEntry(t, 1, 11, "y"), change}, Members: next}, true); err != nil {
			t.Fatal(err)
		}
		if err := s.Save(SaveBatch{HardState: &core.HardState{Epoch: 1, Commit: core.Pos{Epoch: 1, Seq: 11}}}, true); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s = openT(t, filepath.Join(root, name)) // the record survives a restart
		dir := filepath.Join(root, name+"-snap")
		if _, err := s.Checkpoint(dir); err != nil {
			t.Fatal(err)
		}
		return dir
	}

	b := openT(t, filepath.Join(root, "b"))
	got, err := b.InstallSnapshot(build("a", true))
	if err != nil || got != (core.Pos{Epoch: 1, Seq: 11}) {
		t.Fatalf("install capped below the change: %v %v", got, err)
	}
	r, err := b.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Members) != 3 || r.Members[2].ID != "c" {
		t.Fatalf("membership at the cap %v, want the one before the uncommitted change %v", r.Members, old)
	}

	// Without the record (a store from before it) the cap cannot tell.
	c := openT(t, filepath.Join(root, "c"))
	if _, err := c.InstallSnapshot(build("legacy", false)); err == nil {
		t.Fatal("a copy that cannot tell its membership at the cap was installed")
	}
}
