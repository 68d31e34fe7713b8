package store

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/muninndb/muninn/core"
)

// A cluster id is persisted across reopening, set once, and never changed
// by SetClusterID or AdoptClusterID; only MintClusterID replaces it.
func TestClusterIDPersistedAndSetOnce(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if id := s.ClusterID(); id != 0 {
		t.Fatalf("a new store has cluster id %016x, want 0", id)
	}
	const x, y = 0x1111222233334444, 0x5555666677778888
	if err := s.SetClusterID(0); err == nil {
		t.Fatal("SetClusterID(0) accepted")
	}
	if err := s.SetClusterID(x); err != nil {
		t.Fatal(err)
	}
	if err := s.SetClusterID(x); err != nil {
		t.Fatalf("setting the same id again: %v", err)
	}
	err = s.SetClusterID(y)
	if !errors.Is(err, ErrClusterIDSet) || !strings.Contains(err.Error(), "1111222233334444") || !strings.Contains(err.Error(), "5555666677778888") ||
		!strings.Contains(err.Error(), "fresh data directory") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("changing the id: %v", err)
	}
	if err := s.AdoptClusterID(y); !errors.Is(err, ErrClusterIDSet) {
		t.Fatalf("adopting another id: %v", err)
	}
	s.Close()

	s = openT(t, dir)
	if id := s.ClusterID(); id != x {
		t.Fatalf("after reopen: cluster id %016x, want %016x", id, uint64(x))
	}
	minted, err := s.MintClusterID()
	if err != nil {
		t.Fatal(err)
	}
	if minted == 0 || minted == x || s.ClusterID() != minted {
		t.Fatalf("minted %016x (store says %016x), old %016x", minted, s.ClusterID(), uint64(x))
	}
	s.Close()
	s = openT(t, dir)
	if id := s.ClusterID(); id != minted {
		t.Fatalf("after reopen: %016x, want the minted %016x", id, minted)
	}
}

// A store without a cluster id adopts a peer's only while it is empty:
// once it holds an epoch or entries, its data belongs to the cluster that
// wrote them.
func TestAdoptClusterIDOnlyWhenEmpty(t *testing.T) {
	const x = 0xabcdef0123456789
	s := openT(t, t.TempDir())
	if err := s.AdoptClusterID(x); err != nil || s.ClusterID() != x {
		t.Fatalf("an empty store adopting: %v, id %016x", err, s.ClusterID())
	}

	for name, rd := range map[string]SaveBatch{
		"epoch only": {HardState: &core.HardState{Epoch: 1}},
		"entries": {HardState: &core.HardState{Epoch: 2}, Entries: []core.Entry{
			{Pos: core.Pos{Epoch: 2, Seq: 1}, Type: core.EntryEpochStart}, dataEntry(t, 2, 2, "x")}},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir)
			if err := s.Save(rd, true); err != nil {
				t.Fatal(err)
			}
			err := s.AdoptClusterID(x)
			if !errors.Is(err, ErrNotEmpty) || !strings.Contains(err.Error(), "abcdef0123456789") || !strings.Contains(err.Error(), "belongs to the cluster that wrote it") {
				t.Fatalf("a non-empty store adopting: %v", err)
			}
			if s.ClusterID() != 0 {
				t.Fatalf("the refused adoption left id %016x", s.ClusterID())
			}
			s.Close()
			if s = openT(t, dir); s.ClusterID() != 0 {
				t.Fatalf("after reopen: id %016x", s.ClusterID())
			}
		})
	}
}

// A backup's checkpoint carries the cluster id (a meta key): a restore must
// mint a new one, which is what keeps the restored node out of the cluster
// it came from.
func TestClusterIDInCheckpoint(t *testing.T) {
	s := openT(t, t.TempDir())
	if err := s.SetClusterID(42); err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "cp")
	if _, err := s.CheckpointForBackup(cp); err != nil {
		t.Fatal(err)
	}
	r := openT(t, cp)
	if r.ClusterID() != 42 {
		t.Fatalf("the checkpoint's cluster id is %016x, want 42", r.ClusterID())
	}
	id, err := r.MintClusterID()
	if err != nil || id == 42 || r.ClusterID() != id {
		t.Fatalf("mint on the restored copy: %016x, %v", id, err)
	}
	if s.ClusterID() != 42 {
		t.Fatalf("minting on the copy changed the source: %016x", s.ClusterID())
	}
}

// A damaged cluster id refuses to open, naming the store.
func TestClusterIDDamaged(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Set(metaClusterID, []byte{1, 2, 3}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(dir, Options{}); err == nil {
		s.Close()
		t.Fatal("opened a store with a 3-byte cluster id")
	}
	if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "clusterid") {
		t.Fatalf("err = %v", err)
	}
}

func TestFormatClusterID(t *testing.T) {
	if got := FormatClusterID(0); got != "" {
		t.Fatalf("0: %q", got)
	}
	if got := FormatClusterID(0xab); got != "00000000000000ab" {
		t.Fatalf("0xab: %q", got)
	}
}
