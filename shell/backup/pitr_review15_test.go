package backup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/archive"
	"github.com/muninndb/muninn/shell/store"
)

// TestPITRHoleAboveLobeCommit (review 15, finding 2): a Lobe's backup holds
// uncommitted entries 18..23 (commit 17); the archive holds the committed
// history 1..10 and 21..40 but not 11..20. The replay must not start at
// the archive's first segment after the commit point (21), keeping the
// never-committed 18..20 and appending 21..30 after them: the hole at 18
// is refused, naming it.
func TestPITRHoleAboveLobeCommit(t *testing.T) {
	src, es := pitrSource(t, filepath.Join(t.TempDir(), "src"), 40, 40, 0)
	defer src.Close()
	arch := filepath.Join(t.TempDir(), "arch")
	writeArchive(t, arch, "a", es[:10], 10) // seqs 1..10
	writeArchive(t, arch, "a", es[20:], 10) // seqs 21..40
	lobe, _ := pitrSource(t, filepath.Join(t.TempDir(), "lobe"), 17, 17, 0)
	var own []core.Entry
	for q := core.Seq(18); q <= 23; q++ {
		own = append(own, pitrEntry(t, q, 9000))
	}
	if err := lobe.Save(store.SaveBatch{Entries: own}, true); err != nil {
		t.Fatal(err)
	}
	file := backupFile(t, lobe)
	lobe.Close()
	for _, o := range []RestoreOptions{{ToSeq: 30}, {}, {ToTime: time.UnixMilli(30_500)}} {
		o.Archive = []string{arch}
		dst := filepath.Join(t.TempDir(), "d")
		_, op, err := RestoreWith(file, dst, o)
		if err == nil || !strings.Contains(err.Error(), "seqs 18..20") || !strings.Contains(err.Error(), archive.SegmentName(1, 10, 0, "a")) {
			t.Fatalf("restore %+v: replayed %+v, last %s, err %v; want the hole at 18..20 refused", o, op.Replayed, op.Last, err)
		}
		noTarget(t, dst)
	}
	// With the hole filled, the backup's 18..23 are undone and the
	// committed 18..30 replayed.
	writeArchive(t, arch, "b", es[10:20], 10) // seqs 11..20
	dst := filepath.Join(t.TempDir(), "d")
	_, op, err := RestoreWith(file, dst, RestoreOptions{Archive: []string{arch}, ToSeq: 30})
	if err != nil || op.Replayed.Undone != 6 || op.Last != (Pos{1, 30}) {
		t.Fatalf("filled: %+v, %v", op, err)
	}
	checkHolds(t, dst, 30, 40, 0)
}

// TestPITRRefusesWrongArchive (review 15, findings 1 and 3): an archive
// that is not of the backup's history, or holds nothing for it, or a time
// after its end, is refused with what to do, not restored to the backup's
// point (or the archive's end) as a success.
func TestPITRRefusesWrongArchive(t *testing.T) {
	src, es := pitrSource(t, filepath.Join(t.TempDir(), "src"), 60, 60, 0)
	defer src.Close()
	early, _ := pitrSource(t, filepath.Join(t.TempDir(), "early"), 20, 20, 0)
	file := backupFile(t, early)
	early.Close()
	// Another history of the same cluster id: the same seqs, other writes.
	_, otherEs := pitrSource(t, filepath.Join(t.TempDir(), "other"), 60, 60, 5000)
	otherArch := filepath.Join(t.TempDir(), "other-arch")
	writeArchive(t, otherArch, "a", otherEs, 16)
	// The right history under another cluster id (a restored cluster's).
	foreign := filepath.Join(t.TempDir(), "foreign")
	os.MkdirAll(foreign, 0o755)
	if _, err := archive.Write(foreign, "a", 0x77, es); err != nil {
		t.Fatal(err)
	}
	below := filepath.Join(t.TempDir(), "below")
	writeArchive(t, below, "a", es[:16], 16) // 1..16: ends before the backup
	atEnd := filepath.Join(t.TempDir(), "at-end")
	writeArchive(t, atEnd, "a", es[:20], 20) // 1..20: ends at the backup
	full := filepath.Join(t.TempDir(), "full")
	writeArchive(t, full, "a", es, 16)
	mixed := filepath.Join(t.TempDir(), "mixed")
	writeArchive(t, mixed, "a", es[:30], 30)
	if _, err := archive.Write(mixed, "a", 0x77, es[30:]); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()

	for _, c := range []struct {
		name string
		o    RestoreOptions
		want string
	}{
		{"another history", RestoreOptions{Archive: []string{otherArch}}, "another history: its entry at seq 20"},
		{"another history to-seq", RestoreOptions{Archive: []string{otherArch}, ToSeq: 40}, "another history"},
		{"another cluster", RestoreOptions{Archive: []string{foreign}}, "cluster 0000000000000077, the backup of cluster 0000000000000000"},
		{"two clusters", RestoreOptions{Archive: []string{mixed}}, "two histories"},
		{"empty", RestoreOptions{Archive: []string{empty}}, "holds no archive segment"},
		{"ends below", RestoreOptions{Archive: []string{below}}, "the archive ends at seq 16"},
		{"to-time after the end", RestoreOptions{Archive: []string{full}, ToTime: time.UnixMilli(90_000)}, "the archive ends at seq 60 (last write 1:60 at 1970-01-01T00:01:00Z), before 1970-01-01T00:01:30Z"},
		{"to-time after an archive at the backup", RestoreOptions{Archive: []string{atEnd}, ToTime: time.UnixMilli(25_000)}, "the archive ends at seq 20"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "d")
			_, op, err := RestoreWith(file, dst, c.o)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("replayed %+v, last %s, err %v; want %q", op.Replayed, op.Last, err, c.want)
			}
			noTarget(t, dst)
		})
	}
	// An archive ending at the backup's position: nothing to apply, fine.
	dst := filepath.Join(t.TempDir(), "d")
	if _, op, err := RestoreWith(file, dst, RestoreOptions{Archive: []string{atEnd}}); err != nil || op.Replayed.Applied != 0 || op.Last != (Pos{1, 20}) {
		t.Fatalf("archive at the backup: %+v, %v", op, err)
	}
}
