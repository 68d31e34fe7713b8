package store

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/muninndb/muninn/core"
)

// TestInstallAsksFirst: the driver is asked before the store judges the
// snapshot against its own commit point. A node whose log already holds the
// snapshot's position, with a commit point past it, must get to decline it
// as not needed (Pebble seed 301461: refused as behind the commit point, the
// node answered its compacted prefix and the Cortex resent it forever).
func TestInstallAsksFirst(t *testing.T) {
	root := t.TempDir()
	a := openT(t, filepath.Join(root, "a"))
	var es []core.Entry
	for i := core.Seq(1); i <= 10; i++ {
		es = append(es, dataEntry(t, 4, i, "x"))
	}
	if err := a.Save(SaveBatch{HardState: &core.HardState{Epoch: 4, Commit: core.Pos{Epoch: 4, Seq: 8}}, Entries: es}, true); err != nil {
		t.Fatal(err)
	}
	snapDir := filepath.Join(root, "snap")
	if _, err := a.Checkpoint(snapDir); err != nil {
		t.Fatal(err)
	}
	b := openT(t, filepath.Join(root, "b"))
	if err := b.Save(SaveBatch{HardState: &core.HardState{Epoch: 4, Commit: core.Pos{Epoch: 4, Seq: 9}}, Entries: es}, true); err != nil {
		t.Fatal(err)
	}
	declined := errors.New("not needed")
	var asked core.Pos
	_, err := b.InstallSnapshotIf(snapDir, func(p core.Pos) error { asked = p; return declined })
	if !errors.Is(err, declined) || asked != (core.Pos{Epoch: 4, Seq: 8}) {
		t.Fatalf("install: %v (asked about %v); want the driver asked about 4.8 and its refusal returned", err, asked)
	}
}
