package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/core/engram"
	"github.com/muninndb/muninn/shell/archive"
	"github.com/muninndb/muninn/shell/backup"
	"github.com/muninndb/muninn/shell/store"
)

// pitrFixture is a backup of a store at seq 20 (writes at seq seconds
// after 1970) and the archive of the same history up to seq 40.
func pitrFixture(t *testing.T) (file, arch string) {
	t.Helper()
	members := core.Members{{ID: "a"}}
	es := []core.Entry{{Pos: core.Pos{Epoch: 1, Seq: 1}, Type: core.EntryMembership, Payload: core.EncodeMembers(members)}}
	for q := core.Seq(2); q <= 40; q++ {
		cmd, err := engram.EncodeCommand(engram.Command{Op: engram.OpWrite, Vault: "v", ID: engram.NewID(1_700_000_000_000+uint64(q), [10]byte{9: byte(q)}), At: uint64(q) * 1000, Concept: "c", Content: "x", Confidence: 0.5})
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, core.Entry{Pos: core.Pos{Epoch: 1, Seq: q}, Type: core.EntryData, Payload: cmd})
	}
	st, err := store.Open(filepath.Join(t.TempDir(), "src"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hs := core.HardState{Epoch: 1, Commit: core.Pos{Epoch: 1, Seq: 20}}
	if err := st.Save(store.SaveBatch{HardState: &hs, Entries: es[:20], Members: members}, true); err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(t.TempDir(), "ckpt")
	m, err := backup.Take(st, ckpt, "a")
	if err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(t.TempDir(), "b.tar.zst")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := backup.Encode(f, m, ckpt, nil); err != nil {
		t.Fatal(err)
	}
	arch = filepath.Join(t.TempDir(), "arch")
	os.MkdirAll(arch, 0o755)
	if _, err := archive.Write(arch, "a", st.ClusterID(), es); err != nil {
		t.Fatal(err)
	}
	return file, arch
}

// TestRestorePITRTargets (review 15, finding 3): a point-in-time target
// that cannot be met is refused with a non-zero exit and what to do, not
// restored to another point with exit 0; a given --to-seq 0 or zero time
// is told from the flag left out.
func TestRestorePITRTargets(t *testing.T) {
	file, arch := pitrFixture(t)
	empty := t.TempDir()
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"to-seq 0", []string{"--archive", arch, "--to-seq", "0"}, exitUsage, "--to-seq 0 names no entry"},
		{"zero time", []string{"--archive", arch, "--to-time", "0001-01-01T00:00:00Z"}, exitUsage, "--to-time 0001-01-01T00:00:00Z is not after 1970"},
		{"time after the end", []string{"--archive", arch, "--to-time", "1970-01-01T00:01:00Z"}, exitFailure, "the archive ends at seq 40 (last write 1:40 at 1970-01-01T00:00:40Z), before 1970-01-01T00:01:00Z"},
		{"empty archive", []string{"--archive", empty}, exitFailure, "holds no archive segment"},
		{"empty archive with a seq", []string{"--archive", empty, "--to-seq", "30"}, exitFailure, "holds no archive segment"},
		{"seq after the end", []string{"--archive", arch, "--to-seq", "50"}, exitFailure, "the archive ends at seq 40"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "d")
			code, out, errOut := cli(t, append([]string{"restore", "--from", file, "--data-dir", dst}, c.args...)...)
			if code != c.code || !strings.Contains(errOut, c.want) {
				t.Fatalf("exit %d (want %d), stdout:\n%s\nstderr:\n%s\nwant %q", code, c.code, out, errOut, c.want)
			}
			if _, err := os.Stat(filepath.Join(dst, "db")); err == nil {
				t.Fatalf("a refused restore left a store in %s", dst)
			}
		})
	}
	// Met targets: exit 0, and the Next: lines say to archive elsewhere.
	for _, args := range [][]string{{"--to-seq", "30"}, {"--to-time", "1970-01-01T00:00:30.5Z"}, {}} {
		dst := filepath.Join(t.TempDir(), "d")
		code, out, errOut := cli(t, append([]string{"restore", "--from", file, "--data-dir", dst, "--archive", arch}, args...)...)
		if code != 0 || !strings.Contains(out, "new, empty archive directory") {
			t.Fatalf("%v: exit %d, stdout:\n%s\nstderr:\n%s", args, code, out, errOut)
		}
	}
}
