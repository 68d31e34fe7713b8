package cluster

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/store"
)

// TestWALProvenTo checks the corrupt-wal nemesis's aim on a real store:
// damage below walProvenTo is refused by the store, naming the log.
func TestWALProvenTo(t *testing.T) {
	src := t.TempDir() // a data directory: the store is in db/
	s, err := store.Open(filepath.Join(src, "db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(store.SaveBatch{HardState: &core.HardState{Epoch: 1}}, true); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 100; i++ {
		e := core.Entry{Pos: core.Pos{Epoch: 1, Seq: core.Seq(i)}, Type: core.EntryEpochStart}
		if err := s.Save(store.SaveBatch{Entries: []core.Entry{e}}, true); err != nil {
			t.Fatal(err)
		}
	}
	// The last record, written without a sync: nothing after it proves it.
	tail := core.Entry{Pos: core.Pos{Epoch: 1, Seq: 101}, Type: core.EntryEpochStart, Payload: []byte(strings.Repeat("t", 4000))}
	if err := s.Save(store.SaveBatch{Entries: []core.Entry{tail}}, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wal, size, err := newestWAL(src, 64)
	if err != nil {
		t.Fatal(err)
	}
	proven, err := walProvenTo(wal)
	if err != nil {
		t.Fatal(err)
	}
	if proven < 1000 || proven > size {
		t.Fatalf("walProvenTo = %d of a %d-byte log: want past the 100 synced records (>= 1000 bytes)", proven, size)
	}
	damaged := func(at int64) error {
		dir := filepath.Join(t.TempDir(), "copy")
		if _, err := copyTree(src, dir); err != nil {
			t.Fatal(err)
		}
		if err := flipBytes(filepath.Join(dir, "db", filepath.Base(wal)), at, 16); err != nil {
			t.Fatal(err)
		}
		s, err := store.Open(filepath.Join(dir, "db"), store.Options{})
		if err == nil {
			s.Close()
		}
		return err
	}
	if err := damaged(proven/2 - 8); err == nil || !strings.Contains(err.Error(), filepath.Base(wal)) {
		t.Fatalf("damage at %d, half the proven part: Open = %v, want a refusal naming %s", proven/2-8, err, filepath.Base(wal))
	}
	if _, err := os.Stat(wal); err != nil {
		t.Fatal(err)
	}
}

// TestWALProvenToChunks checks walProvenTo on hand-made chunks: the start
// of the last record for the recyclable types, the highest recorded sync
// offset for the sync-offset types, padding skipped.
func TestWALProvenToChunks(t *testing.T) {
	chunk := func(typ byte, payload int, sync uint64) []byte {
		h := make([]byte, walRecycleHeader, walSyncHeader+payload)
		binary.LittleEndian.PutUint16(h[4:], uint16(payload))
		h[6] = typ
		if typ >= 9 {
			h = binary.LittleEndian.AppendUint64(h, sync)
		}
		return append(h, make([]byte, payload)...)
	}
	write := func(b []byte) string {
		p := filepath.Join(t.TempDir(), "000001.log")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		log  []byte
		want int64
	}{
		{"recyclable: the last record's start", slices.Concat(chunk(5, 89, 0), chunk(6, 89, 0), chunk(8, 89, 0), chunk(5, 40, 0)), 300},
		{"recyclable: a middle chunk starts no record", slices.Concat(chunk(5, 89, 0), chunk(6, 89, 0), chunk(7, 89, 0)), 100},
		{"sync offsets: the highest", slices.Concat(chunk(9, 81, 0), chunk(9, 81, 100), chunk(9, 81, 150), chunk(9, 81, 20)), 150},
		{"nothing proven", chunk(9, 100, 0), 0},
		{"padding: the next block", slices.Concat(chunk(5, 10, 0), make([]byte, walBlock-21), chunk(5, 10, 0), chunk(5, 10, 0)), walBlock + 21},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := walProvenTo(write(tc.log))
			if err != nil || got != tc.want {
				t.Fatalf("walProvenTo = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}
