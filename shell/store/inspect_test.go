package store

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/muninndb/muninn/core"
)

// TestInspect: a stopped store's position, commit point, identity and
// membership are read without changing it; a store still open is refused
// as in use; a directory that holds no store is refused.
func TestInspect(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ms := core.Members{{ID: "a", Kind: core.KindAuto, Store: s.Identity()}, {ID: "b", Kind: core.KindSentinel}}
	hs := core.HardState{Epoch: 3, Commit: core.Pos{Epoch: 2, Seq: 1}}
	if err := s.Save(SaveBatch{HardState: &hs, Members: ms, Entries: []core.Entry{dataEntry(t, 2, 1, "a"), dataEntry(t, 3, 2, "b")}}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := Inspect(dir); !errors.Is(err, ErrInUse) {
		t.Fatalf("inspect of an open store: %v, want ErrInUse", err)
	}
	id := s.Identity()
	s.Close()
	for round := 0; round < 2; round++ { // twice: the first changed nothing
		sum, err := Inspect(dir)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Last != (core.Pos{Epoch: 3, Seq: 2}) || sum.HardState != hs || sum.Identity != id || !slices.Equal(sum.Members, ms) {
			t.Fatalf("round %d: %+v", round, sum)
		}
	}
	if _, err := Inspect(t.TempDir()); err == nil {
		t.Fatal("an empty directory was inspected")
	}
}
