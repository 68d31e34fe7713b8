package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
