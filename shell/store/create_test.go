package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/muninndb/muninn/core"
)

// TestInterruptedCreation: a process killed on its first start, after
// Pebble made its files and before the store's marker was written, left a
// directory that the next start refused forever (found by the cluster
// soak: a fresh node killed while creating its store). The creating file
// tells such a directory from a damaged store: it is created again. Files
// without it are still refused.
func TestInterruptedCreation(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// What the kill left: the creating file and Pebble's own files.
	if err := os.WriteFile(filepath.Join(dir, creatingFile), []byte(formatValue+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebbleFormat})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set([]byte("half"), []byte("made"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("an interrupted creation is refused: %v", err)
	}
	if err := s.Save(SaveBatch{HardState: &core.HardState{Epoch: 1}}, true); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.get([]byte("half")); ok {
		t.Fatal("the interrupted creation's keys survived")
	}
	s.Close()
	if _, err := os.Stat(filepath.Join(dir, creatingFile)); !os.IsNotExist(err) {
		t.Fatalf("%s is still there after the store was created: %v", creatingFile, err)
	}
	// Reopened: the same store, not created again.
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if hs, _, _ := s.State(); hs.Epoch != 1 {
		t.Fatalf("reopened store at epoch %d, want 1", hs.Epoch)
	}
	s.Close()

	// Pebble files without the creating file: a damaged store, refused
	// with the way out named.
	os.Remove(filepath.Join(dir, markerFile))
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "no "+markerFile+" marker") || !strings.Contains(err.Error(), "move the directory aside") {
		t.Fatalf("a store without its marker: %v", err)
	}
}
