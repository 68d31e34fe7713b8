package store

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/core/engram"
)

// filled makes a closed store with flushed tables and a WAL.
func filled(t *testing.T) string {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var es []core.Entry
	for i := core.Seq(1); i <= 200; i++ {
		es = append(es, dataEntry(t, 1, i, strings.Repeat("payload ", 50)))
	}
	if err := s.Save(SaveBatch{HardState: &core.HardState{Epoch: 1}, Entries: es}, true); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(SaveBatch{Entries: []core.Entry{dataEntry(t, 1, 201, "in the wal")}}, true); err != nil {
		t.Fatal(err)
	}
	s.Close()
	return dir
}

func glob(t *testing.T, dir, pattern string) string {
	m, _ := filepath.Glob(filepath.Join(dir, pattern))
	if len(m) == 0 {
		t.Fatalf("no %s in %s", pattern, dir)
	}
	return m[0]
}

// openAndRead opens the store and reads everything, as a starting node does.
func openAndRead(dir string) error {
	s, err := Open(dir, Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := s.Load(); err != nil {
		return err
	}
	_, err = s.List("v", engram.ListOptions{Limit: 1000})
	return err
}

func TestCorruptFiles(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, dir string) string // returns the file name the error must carry
	}{
		{"missing MANIFEST", func(t *testing.T, dir string) string {
			f := glob(t, dir, "MANIFEST-*")
			os.Remove(f)
			return filepath.Base(f)
		}},
		{"truncated MANIFEST", func(t *testing.T, dir string) string {
			f := glob(t, dir, "MANIFEST-*")
			os.Truncate(f, 10)
			return filepath.Base(f)
		}},
		{"corrupt table", func(t *testing.T, dir string) string {
			f := glob(t, dir, "*.sst")
			b, _ := os.ReadFile(f)
			for i := len(b) / 4; i < len(b)/2; i++ {
				b[i] ^= 0x5a
			}
			os.WriteFile(f, b, 0o644)
			return strings.TrimSuffix(filepath.Base(f), ".sst")
		}},
		{"truncated table", func(t *testing.T, dir string) string {
			f := glob(t, dir, "*.sst")
			os.Truncate(f, 100)
			return strings.TrimSuffix(filepath.Base(f), ".sst")
		}},
		{"missing table", func(t *testing.T, dir string) string {
			f := glob(t, dir, "*.sst")
			os.Remove(f)
			return strings.TrimSuffix(filepath.Base(f), ".sst")
		}},
		{"no marker", func(t *testing.T, dir string) string {
			os.Remove(filepath.Join(dir, markerFile))
			os.Remove(glob(t, dir, "MANIFEST-*"))
			return markerFile
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filled(t)
			name := tc.break_(t, dir)
			err := openAndRead(dir)
			if err == nil {
				t.Fatal("damaged store opened without error")
			}
			if !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("error does not name %s in %s: %v", name, dir, err)
			}
		})
	}
}

// walStore makes a closed store whose newest write-ahead log holds n synced
// one-entry saves (never flushed to a table), at Pebble format f, and
// returns its directory and that log.
func walStore(t *testing.T, f pebble.FormatMajorVersion, n int) (string, string) {
	t.Helper()
	defer func(old pebble.FormatMajorVersion) { pebbleFormat = old }(pebbleFormat)
	pebbleFormat = f
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(SaveBatch{HardState: &core.HardState{Epoch: 1}}, true); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		if err := s.Save(SaveBatch{Entries: []core.Entry{dataEntry(t, 1, core.Seq(i), strings.Repeat("acknowledged ", 20))}}, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	if len(logs) == 0 {
		t.Fatalf("no write-ahead log in %s", dir)
	}
	return dir, logs[len(logs)-1] // zero-padded numbers: the newest sorts last
}

func flip(t *testing.T, path string, at, n int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := at; i < at+n; i++ {
		b[i] ^= 0xff
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func size(t *testing.T, path string) int {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return int(st.Size())
}

// lastEntry opens the store and returns its last log position.
func lastEntry(t *testing.T, dir string) core.Pos {
	t.Helper()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("the store does not open: %v", err)
	}
	defer s.Close()
	r, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	return r.Applied
}

// TestCorruptWAL: bytes flipped in the middle of the newest write-ahead
// log, with records synced after them, must refuse the start with an error
// naming the directory, the log and the offset (issue 11 C: Pebble used to
// replay up to the damage and drop the rest without a word). Before the
// fix the store opened with its last entry at 1.3xx of 600.
func TestCorruptWAL(t *testing.T) {
	for _, tc := range []struct {
		name   string
		format pebble.FormatMajorVersion
	}{
		{"sync offsets", pebbleFormat},
		// A store last written by a version before the format upgrade:
		// its logs carry no sync offsets (laterRecord's second look).
		{"legacy log", pebble.FormatFlushableIngest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, log := walStore(t, tc.format, 600)
			sz := size(t, log)
			if sz < 4*walBlockSize {
				t.Fatalf("the log is only %d bytes: the damage would not be in the middle", sz)
			}
			flip(t, log, sz/2, 16)
			s, err := Open(dir, Options{})
			if err == nil {
				r, _ := s.Load()
				s.Close()
				t.Fatalf("a store whose WAL is damaged mid-file opened, with its last entry at %s of 1.600", r.Applied)
			}
			for _, want := range []string{dir, filepath.Base(log), "offset", "refuses to start", "move its data directory aside"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not say %q: %v", want, err)
				}
			}
		})
	}
}

// TestCorruptWALPebble: with the store's format Pebble itself refuses the
// damaged log (checkWAL is the first line, with the better message).
func TestCorruptWALPebble(t *testing.T) {
	dir, log := walStore(t, pebbleFormat, 600)
	flip(t, log, size(t, log)/2, 16)
	db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebbleFormat, ErrorIfNotExists: true})
	if err == nil {
		db.Close()
		t.Fatal("Pebble replayed a WAL damaged mid-file without an error")
	}
	if !pebble.IsCorruptionError(err) {
		t.Fatalf("want a corruption error, got %v", err)
	}
}

// TestCorruptWALLastBlock: damage in the last block of the log, followed
// by synced records in that same block. Pebble's reader checks only later
// blocks and would replay it as a torn tail; laterRecord finds the records.
func TestCorruptWALLastBlock(t *testing.T) {
	dir, log := walStore(t, pebbleFormat, 100)
	sz := size(t, log)
	at := sz - 2000 // a few records before the end, inside the last block
	if at/walBlockSize != (sz-1)/walBlockSize {
		t.Skipf("log of %d bytes: the last block is too short for the test", sz)
	}
	flip(t, log, at, 16)
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), filepath.Base(log)) {
		t.Fatalf("want a refusal naming %s, got %v", filepath.Base(log), err)
	}
}

// TestTornWALTail: a crash mid-write leaves the last record of the newest
// log cut short, or zeroed; that record was never acknowledged, and the
// store opens with everything before it.
func TestTornWALTail(t *testing.T) {
	for _, tc := range []struct {
		name   string
		format pebble.FormatMajorVersion
		tear   func(t *testing.T, path string)
	}{
		{"cut", pebbleFormat, func(t *testing.T, p string) { os.Truncate(p, int64(size(t, p)-40)) }},
		{"zeroed", pebbleFormat, func(t *testing.T, p string) {
			b, _ := os.ReadFile(p)
			clear(b[len(b)-40:])
			os.WriteFile(p, b, 0o644)
		}},
		{"legacy cut", pebble.FormatFlushableIngest, func(t *testing.T, p string) { os.Truncate(p, int64(size(t, p)-40)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, log := walStore(t, tc.format, 300)
			// Close wrote an EOF trailer after the last record: drop it, as
			// a crash leaves none.
			trimTrailer(t, log)
			tc.tear(t, log)
			got := lastEntry(t, dir)
			if got.Seq < 290 || got.Seq >= 300 {
				t.Fatalf("after a torn last record the last entry is %s, want 29x", got)
			}
		})
	}
}

// trimTrailer removes the EOF trailer a clean close writes after the last
// record (an 11-byte chunk header of the next log number): a crashed
// writer leaves none.
func trimTrailer(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tr := b[len(b)-walRecycleHeader:]
	if binary.LittleEndian.Uint32(tr) != 0 || binary.LittleEndian.Uint16(tr[4:]) != 0 || tr[6] != 5 {
		t.Fatalf("the log does not end with an EOF trailer: % x", tr)
	}
	if err := os.Truncate(path, int64(len(b)-walRecycleHeader)); err != nil {
		t.Fatal(err)
	}
}
