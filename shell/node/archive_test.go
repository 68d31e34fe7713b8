package node

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/archive"
	"github.com/muninndb/muninn/shell/store"
)

func writeN(t *testing.T, n *Node, k int) core.Pos {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var pos core.Pos
	for i := range k {
		p, err := n.Write(ctx, writeCmd(t, NewEngramID(), fmt.Sprintf("c%d", i)), core.Quorum)
		if err != nil {
			t.Fatal(err)
		}
		pos = p
	}
	return pos
}

// archivedMatches checks the archive in dir holds exactly the log of the
// store in dataDir from seq 1 to its last entry, contiguous.
func archivedMatches(t *testing.T, dir, dataDir string) core.Seq {
	t.Helper()
	st, err := store.Open(filepath.Join(dataDir, "db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, last, _ := st.State()
	want, err := st.Entries(1, last.Seq)
	if err != nil {
		t.Fatal(err)
	}
	segs, err := archive.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []core.Entry
	if _, err := archive.Walk(segs, 1, last.Seq, func(e core.Entry, _ string) error { got = append(got, e); return nil }); err != nil {
		t.Fatalf("archive of %d segments: %v", len(segs), err)
	}
	if len(got) != len(want) {
		t.Fatalf("archive holds %d entries, the log %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Pos != want[i].Pos || string(got[i].Payload) != string(want[i].Payload) || got[i].Type != want[i].Type {
			t.Fatalf("entry %d: archive %s, log %s", i, got[i].Pos, want[i].Pos)
		}
	}
	for _, s := range segs {
		if s.Node != "standalone" {
			t.Fatalf("segment of node %q", s.Node)
		}
	}
	return last.Seq
}

// TestArchiverWritesCommittedLog: a node with ArchiveDir archives its whole
// committed log, in segments; after a restart it resumes where its archive
// ends and rewrites nothing.
func TestArchiverWritesCommittedLog(t *testing.T) {
	dataDir, arch := t.TempDir(), filepath.Join(t.TempDir(), "archive")
	opts := Options{DataDir: dataDir, ArchiveDir: arch, ArchiveInterval: 20 * time.Millisecond}
	n, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	pos := writeN(t, n, 40)
	// The archiver catches up on its own (bounded poll), before the stop's
	// final pass.
	deadline := time.Now().Add(10 * time.Second)
	for float64(n.archiver.archived.Load()) < float64(pos.Seq) {
		if time.Now().After(deadline) {
			t.Fatalf("archived seq %v, want %d", float64(n.archiver.archived.Load()), pos.Seq)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if v := metricValue(t, n, "muninn_archive_seq"); v < float64(pos.Seq) {
		t.Fatalf("muninn_archive_seq = %v, want %d", v, pos.Seq)
	}
	n.Close()
	first := archivedMatches(t, arch, dataDir)
	segs1, _ := archive.List(arch)

	n, err = Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	writeN(t, n, 15)
	n.Close() // the stop archives what is committed
	last := archivedMatches(t, arch, dataDir)
	if last <= first {
		t.Fatalf("nothing archived after the restart: %d, %d", first, last)
	}
	segs2, _ := archive.List(arch)
	for i, s := range segs1 {
		if segs2[i] != s {
			t.Fatalf("segment %s changed after the restart: %s", s.Path, segs2[i].Path)
		}
	}
	for i := 1; i < len(segs2); i++ {
		if segs2[i].First != segs2[i-1].Last+1 {
			t.Fatalf("segments %s and %s overlap or leave a gap", segs2[i-1].Path, segs2[i].Path)
		}
	}
}

// TestArchiverCapsPrune: while the archive cannot be written, the node keeps
// running and its log is not pruned past what was archived; once the
// directory works again the archive catches up and the prune goes through.
func TestArchiverCapsPrune(t *testing.T) {
	dataDir, parent := t.TempDir(), t.TempDir()
	arch := filepath.Join(parent, "archive")
	// A regular file where the directory should be: every pass fails.
	if err := os.WriteFile(arch, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := Start(Options{DataDir: dataDir, ArchiveDir: arch, ArchiveInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	pos := writeN(t, n, 30)
	if err := (nodeStorage{n}).Prune(core.Compaction{Upto: core.Pos{Epoch: pos.Epoch, Seq: 20}}); err != nil {
		t.Fatal(err)
	}
	if _, _, base := n.store.State(); base.Seq != 0 {
		t.Fatalf("log pruned to %s while nothing was archived", base)
	}
	if metricValue(t, n, "muninn_archive_errors_total") == 0 {
		t.Fatal("no archive error counted")
	}
	// Fix the directory; the archiver resumes.
	if err := os.Remove(arch); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for float64(n.archiver.archived.Load()) < float64(pos.Seq) {
		if time.Now().After(deadline) {
			t.Fatalf("archived seq %v, want %d", float64(n.archiver.archived.Load()), pos.Seq)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := (nodeStorage{n}).Prune(core.Compaction{Upto: core.Pos{Epoch: pos.Epoch, Seq: 20}}); err != nil {
		t.Fatal(err)
	}
	if _, _, base := n.store.State(); base.Seq != 20 {
		t.Fatalf("log base %s after the archive caught up, want seq 20", base)
	}
	if segs, err := archive.List(arch); err != nil || len(segs) == 0 || segs[0].First != 1 {
		t.Fatalf("archive: %v, %v", segs, err)
	}
}

func metricValue(t *testing.T, n *Node, name string) float64 {
	t.Helper()
	mfs, err := n.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestArchiverLogJump: a node whose log starts after what it archived (a
// snapshot install; here a log pruned before archiving was switched on)
// logs the gap and archives from its log's start on.
func TestArchiverLogJump(t *testing.T) {
	dataDir, arch := t.TempDir(), filepath.Join(t.TempDir(), "archive")
	n, err := Start(Options{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	writeN(t, n, 30)
	n.Close()
	st, err := store.Open(filepath.Join(dataDir, "db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Prune(20); err != nil {
		t.Fatal(err)
	}
	st.Close()

	var buf syncBuffer
	n, err = Start(Options{DataDir: dataDir, ArchiveDir: arch, ArchiveInterval: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	n.Close()
	if !strings.Contains(buf.String(), "log archive gap") || !strings.Contains(buf.String(), "missing_from=1 missing_to=20") {
		t.Fatalf("no gap logged:\n%s", buf.String())
	}
	segs, err := archive.List(arch)
	if err != nil || len(segs) == 0 || segs[0].First != 21 {
		t.Fatalf("archive %v, %v: want it to start at seq 21", segs, err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
