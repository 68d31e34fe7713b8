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
	"github.com/muninndb/muninn/shell/backup"
	"github.com/muninndb/muninn/shell/store"
)

// TestArchiverRefusesAnotherHistory (review 15, finding 1): a node restored
// from a backup and started with its source's archive_dir (same node id)
// must not resume after the old history's last seq and append its own
// entries to the old history's directory; it refuses, names the fix, writes
// nothing there, and holds its log unpruned. Pointed at a new directory it
// archives its whole log, and restoring the backup with the old archive
// still gives the old history.
func TestArchiverRefusesAnotherHistory(t *testing.T) {
	d1, arch := t.TempDir(), filepath.Join(t.TempDir(), "arch")
	opts := Options{DataDir: d1, ArchiveDir: arch, ArchiveInterval: 10 * time.Millisecond}
	n, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	writeN(t, n, 5)
	n.Close()
	st, err := backup.OpenStopped(d1)
	if err != nil {
		t.Fatal(err)
	}
	b1 := takeBackup(t, st)
	st.Close()
	m, err := backup.Read(b1, "", backup.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n, err = Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	writeN(t, n, 5)
	n.Close()
	oldLast := archivedMatches(t, arch, d1)
	oldSegs, _ := archive.List(arch)

	d2 := filepath.Join(t.TempDir(), "d2")
	if _, _, err := backup.RestoreWith(b1, d2, backup.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	var buf syncBuffer
	opts2 := Options{DataDir: d2, ArchiveDir: arch, ArchiveInterval: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&buf, nil))}
	n, err = Start(opts2)
	if err != nil {
		t.Fatal(err)
	}
	pos := writeN(t, n, 8)
	if pos.Seq <= core.Seq(m.Position.Seq) {
		t.Fatalf("restored node wrote at %s", pos)
	}
	// The refusal is logged at the first pass (at start).
	if !strings.Contains(buf.String(), "holds another history") || !strings.Contains(buf.String(), "new directory") {
		n.Close()
		t.Fatalf("no refusal logged:\n%s", buf.String())
	}
	if metricValue(t, n, "muninn_archive_errors_total") == 0 {
		t.Fatal("no archive error counted")
	}
	// Held: a compaction up to the last write prunes nothing.
	if err := (nodeStorage{n}).Prune(core.Compaction{Upto: pos}); err != nil {
		t.Fatal(err)
	}
	if _, _, base := n.store.State(); base.Seq != 0 {
		t.Fatalf("log pruned to %s while the archive refused", base)
	}
	n.Close()
	if strings.Contains(buf.String(), "log archive resumes") {
		t.Fatalf("the archiver resumed in another history's directory:\n%s", buf.String())
	}
	segs, err := archive.List(arch)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != len(oldSegs) {
		t.Fatalf("the restored node wrote into the old archive: %d segments, %d before", len(segs), len(oldSegs))
	}
	// The old archive still replays the old history.
	d3 := filepath.Join(t.TempDir(), "d3")
	_, op, err := backup.RestoreWith(b1, d3, backup.RestoreOptions{Archive: []string{arch}})
	if err != nil {
		t.Fatal(err)
	}
	if op.Replayed.To.Seq != uint64(oldLast) {
		t.Fatalf("restore with the old archive reached %+v, want seq %d", op.Replayed.To, oldLast)
	}
	// A new directory: the restored node archives its whole log.
	arch2 := filepath.Join(t.TempDir(), "arch2")
	opts2.ArchiveDir, opts2.Logger = arch2, nil
	n, err = Start(opts2)
	if err != nil {
		t.Fatal(err)
	}
	writeOne(t, n, "new")
	n.Close()
	archivedMatches(t, arch2, d2)
	segs2, _ := archive.List(arch2)
	if c, err := archive.OneCluster(segs2); err != nil || c == 0 {
		t.Fatalf("new archive of cluster %x: %v", c, err)
	}
}

// TestArchiverReadBoundedByBytes (review 15, finding 4): the archiver reads
// its backlog at most archiveReadBytes (plus one entry) per round, not the
// next 65536 entries whatever their size.
func TestArchiverReadBoundedByBytes(t *testing.T) {
	const limit = 64 << 10
	oldBytes, oldRead := archiveReadBytes, archiveRead
	var mu syncCounter
	archiveReadBytes = limit
	archiveRead = func(st *store.Store, lo, hi core.Seq, maxBytes int) ([]core.Entry, error) {
		es, err := oldRead(st, lo, hi, maxBytes)
		size, big := 0, 0
		for _, e := range es {
			size += e.Size()
			big = max(big, e.Size())
		}
		mu.note(size, big)
		return es, err
	}
	defer func() { archiveReadBytes, archiveRead = oldBytes, oldRead }()

	dataDir, parent := t.TempDir(), t.TempDir()
	arch := filepath.Join(parent, "archive")
	blocker := filepath.Join(parent, "blocker")
	// The archive directory cannot be made (its parent is a file) while the
	// backlog builds.
	if err := writeFile(blocker); err != nil {
		t.Fatal(err)
	}
	n, err := Start(Options{DataDir: dataDir, ArchiveDir: filepath.Join(blocker, "arch"), ArchiveInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	pos := writeBig(t, n, 200, 4<<10) // about 800 KiB of backlog
	n.Close()
	if maxSize, _, calls := mu.get(); calls != 0 {
		t.Fatalf("read %d bytes from the store while the directory was blocked", maxSize)
	}
	n, err = Start(Options{DataDir: dataDir, ArchiveDir: arch, ArchiveInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	pos = writeOne(t, n, "after")
	n.Close()
	archivedMatches(t, arch, dataDir)
	maxSize, big, calls := mu.get()
	if maxSize > limit+big || calls < 10 {
		t.Fatalf("archiving %d entries: %d reads, the largest %d bytes (limit %d, largest entry %d)", pos.Seq, calls, maxSize, limit, big)
	}
	t.Logf("%d reads, largest %d bytes (limit %d)", calls, maxSize, limit)
}

func writeBig(t *testing.T, n *Node, k, size int) core.Pos {
	t.Helper()
	var pos core.Pos
	pad := strings.Repeat("x", size)
	for i := range k {
		pos = writeOne(t, n, fmt.Sprintf("%d-%s", i, pad))
	}
	return pos
}

func writeOne(t *testing.T, n *Node, content string) core.Pos {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := n.Write(ctx, writeCmd(t, NewEngramID(), content), core.Quorum)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func writeFile(path string) error { return os.WriteFile(path, []byte("x"), 0o644) }

// syncCounter records the largest read (bytes) and entry, and the reads.
type syncCounter struct {
	mu              sync.Mutex
	max, big, calls int
}

func (c *syncCounter) note(size, big int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.max, c.big, c.calls = max(c.max, size), max(c.big, big), c.calls+1
}

func (c *syncCounter) get() (int, int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.max, c.big, c.calls
}

// takeBackup backs the stopped store st up into a .tar.zst file.
func takeBackup(t *testing.T, st *store.Store) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ckpt")
	m, err := backup.Take(st, dir, "standalone")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "b.tar.zst")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := backup.Encode(f, m, dir, nil); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestArchiverRefusesNewStoreSameID: a new standalone node (an empty data
// directory: cluster id 0, like its predecessor's) started with an old
// node's archive_dir and node id is not of that history either: once its
// log holds data the archive's entries are compared and it is refused,
// writing nothing there.
func TestArchiverRefusesNewStoreSameID(t *testing.T) {
	arch := filepath.Join(t.TempDir(), "arch")
	n, err := Start(Options{DataDir: t.TempDir(), ArchiveDir: arch, ArchiveInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	writeN(t, n, 5)
	n.Close()
	before, _ := archive.List(arch)
	var buf syncBuffer
	n, err = Start(Options{DataDir: t.TempDir(), ArchiveDir: arch, ArchiveInterval: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	writeN(t, n, 10)
	n.Close()
	if !strings.Contains(buf.String(), "holds another history") {
		t.Fatalf("no refusal logged:\n%s", buf.String())
	}
	if after, _ := archive.List(arch); len(after) != len(before) {
		t.Fatalf("the new node wrote into the old archive: %d segments, %d before", len(after), len(before))
	}
}

// TestPruneCapWhileRefused: while the archive_dir is refused as another
// history's, the log is held from the last archived seq, but at most
// archiveHoldMax entries below the compaction point: the node's log does
// not grow without bound.
func TestPruneCapWhileRefused(t *testing.T) {
	a := &archiver{}
	n := &Node{archiver: a}
	a.archived.Store(7)
	if got := n.pruneCap(archiveHoldMax + 100); got != 7 {
		t.Fatalf("archiving: cap %d, want the archived seq 7", got)
	}
	a.holding.Store(true)
	if got := n.pruneCap(archiveHoldMax + 100); got != 100 {
		t.Fatalf("refused: cap %d, want 100 (%d entries held)", got, archiveHoldMax)
	}
	if got := n.pruneCap(50); got != 7 {
		t.Fatalf("refused, short log: cap %d, want 7", got)
	}
}
