package backup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/core/engram"
	"github.com/muninndb/muninn/shell/archive"
	"github.com/muninndb/muninn/shell/store"
)

// pitrEntry is the data entry at seq: a write of engram engramID(seq+off),
// made at seq seconds (unix ms At = seq*1000).
func pitrEntry(t testing.TB, seq core.Seq, off uint64) core.Entry {
	t.Helper()
	cmd, err := engram.EncodeCommand(engram.Command{Op: engram.OpWrite, Vault: "v", ID: engramID(uint64(seq) + off), At: uint64(seq) * 1000, Concept: "c", Content: "x", Confidence: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	return core.Entry{Pos: core.Pos{Epoch: 1, Seq: seq}, Type: core.EntryData, Payload: cmd}
}

// pitrSource is a store whose log is a membership entry at seq 1 then data
// entries 2..upto (committed up to commit), and those entries.
func pitrSource(t testing.TB, dir string, upto, commit core.Seq, off uint64) (*store.Store, []core.Entry) {
	t.Helper()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	members := core.Members{{ID: "a"}, {ID: "b"}, {ID: "c"}}
	es := []core.Entry{{Pos: core.Pos{Epoch: 1, Seq: 1}, Type: core.EntryMembership, Payload: core.EncodeMembers(members)}}
	for q := core.Seq(2); q <= upto; q++ {
		es = append(es, pitrEntry(t, q, off))
	}
	hs := core.HardState{Epoch: 1, Commit: core.Pos{Epoch: 1, Seq: commit}}
	if err := st.Save(store.SaveBatch{HardState: &hs, Entries: es, Members: members}, true); err != nil {
		t.Fatal(err)
	}
	return st, es
}

// writeArchive writes es as segments of size entries into dir.
func writeArchive(t testing.TB, dir, node string, es []core.Entry, size int) {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	for i := 0; i < len(es); i += size {
		if _, err := archive.Write(dir, node, 0, es[i:min(i+size, len(es))]); err != nil {
			t.Fatal(err)
		}
	}
}

func backupFile(t testing.TB, st *store.Store) string {
	t.Helper()
	_, b := takeFile(t, st)
	file := filepath.Join(t.TempDir(), "b.tar.zst")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// checkHolds opens the restored store and checks it holds exactly the
// engrams written at seqs 2..upto (with id offset off), none after.
func checkHolds(t *testing.T, dataDir string, upto, max core.Seq, off uint64) {
	t.Helper()
	st, err := store.Open(filepath.Join(dataDir, StoreDir), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for q := core.Seq(2); q <= max; q++ {
		_, ok, err := st.Get("v", engramID(uint64(q)+off))
		if err != nil {
			t.Fatal(err)
		}
		if ok != (q <= upto) {
			t.Fatalf("engram of seq %d: present %v, want %v (restored to seq %d)", q, ok, q <= upto, upto)
		}
	}
	_, last, _ := st.State()
	if last.Seq != upto+1 { // + the restore's membership entry
		t.Fatalf("restored log ends at %s, want seq %d", last, upto+1)
	}
}

func TestPITR(t *testing.T) {
	src, es := pitrSource(t, filepath.Join(t.TempDir(), "src"), 60, 60, 0)
	defer src.Close()
	// The backup: the same history, taken at seq 20.
	early, _ := pitrSource(t, filepath.Join(t.TempDir(), "early"), 20, 20, 0)
	file := backupFile(t, early)
	early.Close()
	arch := filepath.Join(t.TempDir(), "arch")
	writeArchive(t, arch, "a", es, 16) // 1-16, 17-32, 33-48, 49-60

	t.Run("to-seq", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "d")
		_, op, err := RestoreWith(file, dst, RestoreOptions{Archive: []string{arch}, ToSeq: 41})
		if err != nil {
			t.Fatal(err)
		}
		if r := op.Replayed; r.Applied != 21 || r.From != (Pos{1, 21}) || r.To != (Pos{1, 41}) || op.Last != (Pos{1, 41}) {
			t.Fatalf("replayed %+v, last %s", r, op.Last)
		}
		checkHolds(t, dst, 41, 60, 0)
	})
	t.Run("to-time", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "d")
		// Seq 41's write is at 41 s; 41.5 s keeps it, stops before 42.
		_, op, err := RestoreWith(file, dst, RestoreOptions{Archive: []string{arch}, ToTime: time.UnixMilli(41_500)})
		if err != nil {
			t.Fatal(err)
		}
		if op.Replayed.StoppedAt != (Pos{1, 42}) {
			t.Fatalf("stopped at %s", op.Replayed.StoppedAt)
		}
		checkHolds(t, dst, 41, 60, 0)
	})
	t.Run("to the end", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "d")
		if _, _, err := RestoreWith(file, dst, RestoreOptions{Archive: []string{arch}}); err != nil {
			t.Fatal(err)
		}
		checkHolds(t, dst, 60, 60, 0)
	})
	t.Run("to-time before the backup", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "d")
		_, _, err := RestoreWith(file, dst, RestoreOptions{Archive: []string{arch}, ToTime: time.UnixMilli(10_000)})
		if err == nil || !strings.Contains(err.Error(), "use an older backup") {
			t.Fatalf("err = %v", err)
		}
		noTarget(t, dst)
	})
	t.Run("below the backup", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "d")
		_, _, err := RestoreWith(file, dst, RestoreOptions{Archive: []string{arch}, ToSeq: 15})
		if err == nil || !strings.Contains(err.Error(), "the backup is at seq 20") || !strings.Contains(err.Error(), "older backup") {
			t.Fatalf("err = %v", err)
		}
		noTarget(t, dst)
	})
	t.Run("beyond the archive", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "d")
		_, _, err := RestoreWith(file, dst, RestoreOptions{Archive: []string{arch}, ToSeq: 70})
		if err == nil || !strings.Contains(err.Error(), "ends at seq 60") {
			t.Fatalf("err = %v", err)
		}
		noTarget(t, dst)
	})
	t.Run("gap", func(t *testing.T) {
		gapped := filepath.Join(t.TempDir(), "arch")
		writeArchive(t, gapped, "a", es, 16)
		os.Remove(filepath.Join(gapped, archive.SegmentName(33, 48, 0, "a")))
		dst := filepath.Join(t.TempDir(), "d")
		_, _, err := RestoreWith(file, dst, RestoreOptions{Archive: []string{gapped}, ToSeq: 50})
		if err == nil || !strings.Contains(err.Error(), "seqs 33..48") || !strings.Contains(err.Error(), archive.SegmentName(17, 32, 0, "a")) {
			t.Fatalf("err = %v", err)
		}
		noTarget(t, dst)
		// Another node's archive fills the hole.
		other := filepath.Join(t.TempDir(), "arch-b")
		writeArchive(t, other, "b", es[25:50], 25)
		if _, _, err := RestoreWith(file, dst, RestoreOptions{Archive: []string{gapped, other}, ToSeq: 50}); err != nil {
			t.Fatal(err)
		}
		checkHolds(t, dst, 50, 60, 0)
		// Without a target the replay ends where the archive has a hole.
		dst2 := filepath.Join(t.TempDir(), "d")
		_, op, err := RestoreWith(file, dst2, RestoreOptions{Archive: []string{gapped}})
		if err != nil || op.Replayed.Gap == nil || op.Last != (Pos{1, 32}) {
			t.Fatalf("open-ended over a gap: %+v, %v", op, err)
		}
		checkHolds(t, dst2, 32, 60, 0)
		// An archive that does not connect to the backup at all is refused.
		os.Remove(filepath.Join(gapped, archive.SegmentName(17, 32, 0, "a")))
		dst3 := filepath.Join(t.TempDir(), "d")
		_, _, err = RestoreWith(file, dst3, RestoreOptions{Archive: []string{gapped}})
		if err == nil || !strings.Contains(err.Error(), "seqs 21..48") || !strings.Contains(err.Error(), archive.SegmentName(1, 16, 0, "a")) {
			t.Fatalf("err = %v", err)
		}
		noTarget(t, dst3)
	})
	t.Run("archives disagree", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "arch-x")
		other := append([]core.Entry(nil), es[30:40]...)
		other[3] = pitrEntry(t, other[3].Pos.Seq, 5000)
		writeArchive(t, bad, "x", other, 10)
		dst := filepath.Join(t.TempDir(), "d")
		_, _, err := RestoreWith(file, dst, RestoreOptions{Archive: []string{arch, bad}, ToSeq: 50})
		if err == nil || !strings.Contains(err.Error(), "seq 34") || !strings.Contains(err.Error(), archive.SegmentName(31, 40, 0, "x")) {
			t.Fatalf("err = %v", err)
		}
		noTarget(t, dst)
	})
	t.Run("options", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "d")
		if _, _, err := RestoreWith(file, dst, RestoreOptions{ToSeq: 30}); err == nil || !strings.Contains(err.Error(), "need --archive") {
			t.Fatalf("err = %v", err)
		}
		noTarget(t, dst)
	})
}

// TestPITRUndoesUncommittedSuffix: a backup (of a Lobe) holding entries
// above its commit point that the committed history replaced: they are
// undone and the archive's entries take their place.
func TestPITRUndoesUncommittedSuffix(t *testing.T) {
	src, es := pitrSource(t, filepath.Join(t.TempDir(), "src"), 40, 40, 0)
	defer src.Close()
	arch := filepath.Join(t.TempDir(), "arch")
	writeArchive(t, arch, "a", es, 10)
	// The Lobe: 1..20 as committed, commit at 17, then 21..23 of its own
	// (never committed: another id offset).
	lobe, _ := pitrSource(t, filepath.Join(t.TempDir(), "lobe"), 20, 17, 0)
	var own []core.Entry
	for q := core.Seq(21); q <= 23; q++ {
		own = append(own, pitrEntry(t, q, 9000))
	}
	if err := lobe.Save(store.SaveBatch{Entries: own}, true); err != nil {
		t.Fatal(err)
	}
	file := backupFile(t, lobe)
	lobe.Close()
	dst := filepath.Join(t.TempDir(), "d")
	_, op, err := RestoreWith(file, dst, RestoreOptions{Archive: []string{arch}, ToSeq: 30})
	if err != nil {
		t.Fatal(err)
	}
	if op.Replayed.Undone != 3 || op.Replayed.From != (Pos{1, 21}) || op.Last != (Pos{1, 30}) {
		t.Fatalf("replayed %+v, last %s", op.Replayed, op.Last)
	}
	checkHolds(t, dst, 30, 40, 0)
	st, err := store.Open(filepath.Join(dst, StoreDir), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for q := uint64(21); q <= 23; q++ {
		if _, ok, _ := st.Get("v", engramID(q+9000)); ok {
			t.Fatalf("the backup's uncommitted write at seq %d is still there", q)
		}
	}
}

func noTarget(t *testing.T, dst string) {
	t.Helper()
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Fatalf("%s exists after a failed restore: %v", dst, err)
	}
	ents, _ := os.ReadDir(filepath.Dir(dst))
	if len(ents) != 0 {
		t.Fatalf("a failed restore left %s", ents[0].Name())
	}
}

// BenchmarkPITRReplay restores a backup taken at seq 20 and replays 100 000
// archived writes over it; reports archived entries applied per second.
func BenchmarkPITRReplay(b *testing.B) {
	const n = 100_000
	early, _ := pitrSource(b, filepath.Join(b.TempDir(), "early"), 20, 20, 0)
	file := backupFile(b, early)
	early.Close()
	es := []core.Entry{{Pos: core.Pos{Epoch: 1, Seq: 1}, Type: core.EntryMembership, Payload: core.EncodeMembers(core.Members{{ID: "a"}, {ID: "b"}, {ID: "c"}})}}
	for q := core.Seq(2); q <= n; q++ {
		es = append(es, pitrEntry(b, q, 0))
	}
	arch := filepath.Join(b.TempDir(), "arch")
	writeArchive(b, arch, "a", es, archive.MaxSegmentEntries)
	for b.Loop() {
		dst := filepath.Join(b.TempDir(), "d")
		_, op, err := RestoreWith(file, dst, RestoreOptions{Archive: []string{arch}})
		if err != nil || op.Replayed.Applied != n-20 {
			b.Fatalf("%+v %v", op.Replayed, err)
		}
	}
	b.ReportMetric(float64(b.N*(n-20))/b.Elapsed().Seconds(), "entries/s")
}
