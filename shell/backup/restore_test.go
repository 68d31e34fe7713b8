package backup

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/muninndb/muninn/shell/store"
)

// smallBackup writes a backup of a store of 20 engrams to a file and
// returns its path.
func smallBackup(t *testing.T) string {
	t.Helper()
	st := fillStore(t, filepath.Join(t.TempDir(), "src"), 20, 50)
	defer st.Close()
	return backupFile(t, st)
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	slices.Sort(out)
	return out
}

// TestRestoreIntoExistingEmptyDir: the target exists (as a mount point
// does) and holds an empty lost+found (as a new ext4 volume's root does).
// The restore stages inside it, never beside it, renames within it, and
// leaves the target itself in place (the same directory, not a new one):
// afterwards it holds db and lost+found, no staging directory, and the
// store opens with every engram.
func TestRestoreIntoExistingEmptyDir(t *testing.T) {
	file := smallBackup(t)
	parent := t.TempDir()
	target := filepath.Join(parent, "vol")
	if err := os.MkdirAll(filepath.Join(target, "lost+found"), 0o700); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	var inside, beside []string
	_, _, err = Restore(file, target, ReadOptions{OnManifest: func(Manifest) {
		inside, _ = filepath.Glob(filepath.Join(target, StagingPrefix+"*"))
		beside = dirNames(t, parent)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(inside) != 1 || !slices.Equal(beside, []string{"vol"}) {
		t.Fatalf("during the restore: staging dirs inside the target %v, beside it %v; want one inside, none beside", inside, beside)
	}
	after, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Fatal("the target directory was replaced: a mount point cannot be")
	}
	if got := dirNames(t, target); !slices.Equal(got, []string{StoreDir, "lost+found"}) {
		t.Fatalf("the target holds %v, want [db lost+found]", got)
	}
	rs, err := store.Open(filepath.Join(target, StoreDir), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	for i := range 20 {
		if _, ok, err := rs.Get("v", engramID(uint64(i))); !ok || err != nil {
			t.Fatalf("engram %d missing after the restore (%v)", i, err)
		}
	}
}

// TestRestoreTargetRefusals: a lost+found with something in it is
// content; a staging directory left by a killed restore is named with the
// command that removes it, and the restore goes ahead once it is gone. A
// failed restore into an existing directory leaves it as it was (empty,
// still there); into a new one, leaves nothing.
func TestRestoreTargetRefusals(t *testing.T) {
	file := smallBackup(t)

	full := t.TempDir()
	os.MkdirAll(filepath.Join(full, "lost+found"), 0o700)
	os.WriteFile(filepath.Join(full, "lost+found", "#1234"), []byte("x"), 0o600)
	if _, _, err := Restore(file, full, ReadOptions{}); err == nil || !strings.Contains(err.Error(), full+" is not empty (it holds lost+found)") {
		t.Fatalf("a lost+found with files: %v", err)
	}

	killed := t.TempDir()
	left := filepath.Join(killed, StagingPrefix+"2k9x")
	os.MkdirAll(filepath.Join(left, StoreDir), 0o755)
	os.WriteFile(filepath.Join(left, StoreDir, "000001.sst"), []byte("half"), 0o644)
	_, _, err := Restore(file, killed, ReadOptions{})
	if err == nil || !strings.Contains(err.Error(), "holds "+left+", the staging directory of a restore that was killed") ||
		!strings.Contains(err.Error(), "rm -rf "+left) {
		t.Fatalf("a leftover staging dir: %v", err)
	}
	if err := os.RemoveAll(left); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Restore(file, killed, ReadOptions{}); err != nil {
		t.Fatalf("after removing the leftover: %v", err)
	}

	bad := filepath.Join(t.TempDir(), "bad.tar.zst")
	b, _ := os.ReadFile(file)
	os.WriteFile(bad, b[:len(b)/2], 0o644)
	empty := t.TempDir()
	if _, _, err := Restore(bad, empty, ReadOptions{}); err == nil {
		t.Fatal("a truncated backup restored")
	}
	if got := dirNames(t, empty); len(got) != 0 {
		t.Fatalf("a failed restore into an existing directory left %v in it", got)
	}
	parent := t.TempDir()
	if _, _, err := Restore(bad, filepath.Join(parent, "new"), ReadOptions{}); err == nil {
		t.Fatal("a truncated backup restored")
	}
	if got := dirNames(t, parent); len(got) != 0 {
		t.Fatalf("a failed restore into a new directory left %v", got)
	}

	// A target this user cannot write: the error names it and the fix.
	if os.Geteuid() != 0 {
		ro := t.TempDir()
		os.Chmod(ro, 0o555)
		defer os.Chmod(ro, 0o755)
		_, _, err := Restore(file, ro, ReadOptions{})
		if err == nil || !strings.Contains(err.Error(), "restore into "+ro+": create the staging directory inside it") || !strings.Contains(err.Error(), "writable") {
			t.Fatalf("an unwritable target: %v", err)
		}
	}
}

// TestRestoreIntoMountPoint: the review's case, a fresh tmpfs mounted on
// the target: the restore succeeds and the target is still the mount
// point. It needs root (mount); without root it skips, or fails when CI
// is set.
func TestRestoreIntoMountPoint(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("TestRestoreIntoMountPoint needs root to mount a tmpfs: CI is set, so it must run")
		}
		t.Skip("not root: cannot mount a tmpfs")
	}
	file := smallBackup(t)
	parent := t.TempDir()
	mnt := filepath.Join(parent, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs on %s: %v: %s", mnt, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	dev := func(p string) uint64 {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		return uint64(st.Dev)
	}
	if dev(mnt) == dev(parent) {
		t.Fatalf("%s is not a mount point after mount", mnt)
	}
	_, op, err := Restore(file, mnt, ReadOptions{})
	if err != nil {
		t.Fatalf("restore into the mount point %s: %v", mnt, err)
	}
	if dev(mnt) == dev(parent) || dev(filepath.Join(mnt, StoreDir)) != dev(mnt) {
		t.Fatal("after the restore the store is not on the mounted file system")
	}
	if got := dirNames(t, mnt); !slices.Equal(got, []string{StoreDir}) {
		t.Fatalf("the mount point holds %v, want [db]", got)
	}
	rs, err := store.Open(filepath.Join(mnt, StoreDir), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	if rs.Identity() != op.Identity {
		t.Fatalf("the store in the mount point has identity %x, the restore reported %x", rs.Identity(), op.Identity)
	}
}

// TestRestoreIntoFullMountPoint: a tmpfs too small for the backup: the
// error names the target and says it is full, and the mount point is
// left empty. Root only, as TestRestoreIntoMountPoint.
func TestRestoreIntoFullMountPoint(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("TestRestoreIntoFullMountPoint needs root to mount a tmpfs: CI is set, so it must run")
		}
		t.Skip("not root: cannot mount a tmpfs")
	}
	st := fillStore(t, filepath.Join(t.TempDir(), "src"), 200, 10_000)
	file := backupFile(t, st)
	st.Close()
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs on %s: %v: %s", mnt, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	_, _, err := Restore(file, mnt, ReadOptions{})
	if err == nil || !strings.Contains(err.Error(), "restore into "+mnt+": its file system is full") || !strings.Contains(err.Error(), "restore onto a larger volume") {
		t.Fatalf("restore of a 2 MB backup into a 256 KiB tmpfs: %v", err)
	}
	if got := dirNames(t, mnt); len(got) != 0 {
		t.Fatalf("the failed restore left %v in the mount point", got)
	}
}
