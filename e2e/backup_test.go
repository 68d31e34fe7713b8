package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/client"
)

// TestBackupRestore: a standalone node under a steady write load is backed
// up online (`muninn backup --addr`), the backup verified and restored
// into a new data directory, and a node started on it holds every write
// acknowledged before the backup began. A restore into a non-empty
// directory and of a corrupted backup are refused, creating nothing.
func TestBackupRestore(t *testing.T) {
	c := newCluster(t, 0, 0)
	src := c.add("source")
	src.standalone = true
	src.start()
	c.waitFor("the node to serve", 20*time.Second, func() (bool, string) {
		r, err := src.raw("POST", "/api/engrams", apitypes.WriteRequest{Vault: "warmup", Content: "warmup"})
		if err != nil {
			return false, err.Error()
		}
		return r.status == http.StatusCreated, fmt.Sprintf("HTTP %d %s", r.status, r.body)
	})
	w := startWriter(t, client.New(src.url()), "load", "local", 2*time.Millisecond)
	c.waitAcks(w, 200, 20*time.Second)

	before, _ := w.snapshot()
	out := filepath.Join(c.dir, "b.tar.zst")
	stdout, stderr, code := cli(t, "backup", "--addr", src.url(), "--out", out)
	if code != 0 || !strings.Contains(stdout, "backup written: "+out) || !strings.Contains(stdout, "position ") {
		t.Fatalf("backup: exit %d\n%s%s", code, stdout, stderr)
	}
	c.waitAcks(w, 20, 10*time.Second) // the load went on through the backup
	w.stop()
	if left, _ := filepath.Glob(out + ".partial*"); len(left) > 0 {
		t.Fatalf("backup left %v", left)
	}
	if _, err := os.Stat(filepath.Join(src.dir, "data", "backup-tmp")); !os.IsNotExist(err) {
		t.Fatalf("the node kept its backup checkpoint: %v", err)
	}

	stdout, stderr, code = cli(t, "backup", "verify", out)
	if code != 0 || !strings.Contains(stdout, "is good") {
		t.Fatalf("verify: exit %d\n%s%s", code, stdout, stderr)
	}

	// Refused: a non-empty target, left as it was.
	busy := filepath.Join(c.dir, "busy")
	os.MkdirAll(busy, 0o755)
	os.WriteFile(filepath.Join(busy, "keep"), []byte("x"), 0o644)
	_, stderr, code = cli(t, "restore", "--from", out, "--data-dir", busy)
	if code == 0 || !strings.Contains(stderr, busy+" is not empty") {
		t.Fatalf("restore into a non-empty dir: exit %d, %s", code, stderr)
	}
	if ents, _ := os.ReadDir(busy); len(ents) != 1 {
		t.Fatalf("the refused restore changed %s: %d entries", busy, len(ents))
	}

	// Refused: a corrupted backup, nothing created.
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(c.dir, "bad.tar.zst")
	b[len(b)/2] ^= 0x5a
	os.WriteFile(bad, b, 0o644)
	badTarget := filepath.Join(c.dir, "bad-restore")
	_, stderr, code = cli(t, "restore", "--from", bad, "--data-dir", badTarget)
	if code == 0 || !strings.Contains(stderr, bad) {
		t.Fatalf("restore of a corrupted backup: exit %d, %s", code, stderr)
	}
	if left, _ := filepath.Glob(badTarget + "*"); len(left) > 0 {
		t.Fatalf("the refused restore created %v", left)
	}
	if _, stderr, code = cli(t, "backup", "verify", bad); code == 0 || !strings.Contains(stderr, bad) {
		t.Fatalf("verify of a corrupted backup: exit %d, %s", code, stderr)
	}

	// Restore and start: every write acknowledged before the backup.
	dst := c.add("restored")
	dst.standalone = true
	stdout, stderr, code = cli(t, "restore", "--from", out, "--data-dir", filepath.Join(dst.dir, "data"))
	if code != 0 || !strings.Contains(stdout, "new store identity") || !strings.Contains(stdout, "muninn start --data-dir") {
		t.Fatalf("restore: exit %d\n%s%s", code, stdout, stderr)
	}
	dst.start()
	c.waitFor("the restored node to serve", 20*time.Second, func() (bool, string) {
		r, err := dst.raw("POST", "/api/engrams", apitypes.WriteRequest{Vault: "after", Content: "after restore"})
		if err != nil {
			return false, err.Error()
		}
		return r.status == http.StatusCreated, fmt.Sprintf("HTTP %d %s", r.status, r.body)
	})
	got, err := dst.listIDs("load", "")
	if err != nil {
		t.Fatal(err)
	}
	checkAcked(t, "the restored node", before, got)
	if len(before) < 200 {
		t.Fatalf("only %d writes before the backup", len(before))
	}
	si, di := src.mustInfo(), dst.mustInfo()
	if len(di.Members) != 1 || di.Members[0].Store == "" || di.Members[0].Store == si.Members[0].Store {
		t.Fatalf("restored membership %+v, source %+v: want one voter with a new store identity", di.Members, si.Members)
	}

	// Offline: refused while the node runs (its LOCK), then taken from
	// the stopped node's data directory and verified.
	off := filepath.Join(c.dir, "offline.tar.zst")
	_, stderr, code = cli(t, "backup", "--data-dir", filepath.Join(src.dir, "data"), "--out", off)
	if code == 0 || !strings.Contains(stderr, "a node is running on it") {
		t.Fatalf("offline backup of a running node: exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(off); !os.IsNotExist(err) {
		t.Fatalf("a refused backup created %s", off)
	}
	src.signal(syscall.SIGTERM)
	src.waitExit(10 * time.Second)
	stdout, stderr, code = cli(t, "backup", "--data-dir", filepath.Join(src.dir, "data"), "--out", off)
	if code != 0 || !strings.Contains(stdout, "backup written: "+off) {
		t.Fatalf("offline backup: exit %d\n%s%s", code, stdout, stderr)
	}
	if stdout, stderr, code = cli(t, "backup", "verify", off); code != 0 {
		t.Fatalf("verify offline backup: exit %d\n%s%s", code, stdout, stderr)
	}
}

// TestBackupIntoNewCluster is the seed's Scenario 2 with real commands: a
// 3-node cluster under quorum writes is backed up from a Lobe, then lost
// whole; the backup is restored as the first node of a new cluster (a new
// node id, a new cluster secret, no seeds), which holds every write the
// backup's position covers, and a fresh node joins it by snapshot.
func TestBackupIntoNewCluster(t *testing.T) {
	c := newCluster(t, fastHB, fastLease)
	ns := c.addN(3)
	c.startAll()
	cx := c.waitCortex(ns, 20*time.Second)
	w := startWriter(t, client.New(cx.url()), "load", "quorum", 2*time.Millisecond)
	c.waitAcks(w, 100, 20*time.Second)
	lobe := others(ns, cx)[0]
	out := filepath.Join(c.dir, "cluster.tar.zst")
	stdout, stderr, code := cli(t, "backup", "--addr", lobe.url(), "--out", out)
	if code != 0 {
		t.Fatalf("backup from %s: exit %d\n%s%s", lobe.id, code, stdout, stderr)
	}
	var epoch, seq uint64
	if i := strings.Index(stdout, "position "); i < 0 {
		t.Fatalf("no position in %q", stdout)
	} else if _, err := fmt.Sscanf(stdout[i:], "position %d:%d", &epoch, &seq); err != nil {
		t.Fatalf("position in %q: %v", stdout, err)
	}
	w.stop()
	acks, _ := w.snapshot()
	for _, n := range ns {
		n.kill9()
	}

	newSecret := "e2e-restored-cluster-secret-0123456789"
	first := c.add("new-01")
	first.secret = newSecret
	if stdout, stderr, code = cli(t, "restore", "--from", out, "--data-dir", filepath.Join(first.dir, "data")); code != 0 {
		t.Fatalf("restore: exit %d\n%s%s", code, stdout, stderr)
	}
	first.start()
	c.waitCortex([]*node{first}, 20*time.Second)
	var covered []ack
	for _, a := range acks {
		if a.seq <= seq {
			covered = append(covered, a)
		}
	}
	if len(covered) < 50 {
		t.Fatalf("only %d of %d acknowledged writes at or below the backup's position %d:%d", len(covered), len(acks), epoch, seq)
	}
	got, err := first.listIDs("load", "")
	if err != nil {
		t.Fatal(err)
	}
	checkAcked(t, first.id, covered, got)
	if i := first.mustInfo(); len(i.Members) != 1 || i.Members[0].ID != first.id {
		t.Fatalf("the restored node's membership: %+v", i.Members)
	}

	// A fresh node joins the new cluster by snapshot.
	second := c.add("new-02")
	second.secret, second.seeds = newSecret, []*node{first}
	second.start()
	c.waitFor(second.id+" to wait to be added", 15*time.Second, func() (bool, string) {
		i, err := second.info()
		return err == nil && i.Joining, fmt.Sprint(err)
	})
	if stdout, stderr, code = cli(t, "cluster", "add-node", "--node", second.id, "--addr", first.url()); code != 0 {
		t.Fatalf("add-node: exit %d\n%s%s", code, stdout, stderr)
	}
	c.waitFor(second.id+" to become a voter", 20*time.Second, func() (bool, string) {
		i, err := first.info()
		if err != nil {
			return false, err.Error()
		}
		m := memberOf(i, second.id)
		return m != nil && !m.Learner, fmt.Sprintf("%+v", m)
	})
	ids := make([]string, 0, len(covered))
	for _, a := range covered {
		ids = append(ids, a.id)
	}
	c.waitHasAll(second, "load", ids, 15*time.Second)
}

// TestRestoreIntoMountPoint: review 15's finding 5 with the real binary.
// The new node's data directory is a fresh file system's root (a tmpfs
// mounted on it, with an empty lost+found as ext4 makes): `muninn restore`
// into it succeeds, the mount point stays in place, and a node started on
// it serves every engram of the backup. A staging directory left in it
// (as by a killed restore) is refused by name with the command that
// removes it. Needs root (mount): without it the test skips, or fails when
// CI is set.
func TestRestoreIntoMountPoint(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("TestRestoreIntoMountPoint needs root to mount a tmpfs: CI is set, so it must run")
		}
		t.Skip("not root: cannot mount a tmpfs")
	}
	c := newCluster(t, 0, 0)
	src := c.add("source")
	src.standalone = true
	src.start()
	var ids []string
	c.waitFor("the node to serve", 20*time.Second, func() (bool, string) {
		r, err := src.raw("POST", "/api/engrams", apitypes.WriteRequest{Vault: "mnt", Content: "first"})
		if err != nil {
			return false, err.Error()
		}
		return r.status == http.StatusCreated, fmt.Sprintf("HTTP %d %s", r.status, r.body)
	})
	cl := client.New(src.url())
	for i := range 50 {
		id := client.NewID()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := cl.Write(ctx, apitypes.WriteRequest{ID: id, Vault: "mnt", Concept: "e2e", Content: fmt.Sprintf("engram %d", i)}, client.Durability("local"))
		cancel()
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		ids = append(ids, id)
	}
	out := filepath.Join(c.dir, "b.tar.zst")
	if stdout, stderr, code := cli(t, "backup", "--addr", src.url(), "--out", out); code != 0 {
		t.Fatalf("backup: exit %d\n%s%s", code, stdout, stderr)
	}

	dst := c.add("restored")
	dst.standalone = true
	mnt := filepath.Join(dst.dir, "data")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs on %s: %v: %s", mnt, err, b)
	}
	mounted := true
	umount := func() {
		if mounted {
			if b, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v: %s", mnt, err, b)
			}
			mounted = false
		}
	}
	// Registered after the node's own cleanup, so it runs first: the node
	// is stopped below before the test ends; -l covers a failure.
	t.Cleanup(func() {
		if mounted {
			exec.Command("umount", "-l", mnt).Run()
		}
	})
	dev := func(p string) uint64 {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		return uint64(st.Dev)
	}
	if dev(mnt) == dev(dst.dir) {
		t.Fatalf("%s is not a mount point", mnt)
	}
	if err := os.Mkdir(filepath.Join(mnt, "lost+found"), 0o700); err != nil {
		t.Fatal(err)
	}

	left := filepath.Join(mnt, ".restore-killed")
	os.MkdirAll(filepath.Join(left, "db"), 0o755)
	_, stderr, code := cli(t, "restore", "--from", out, "--data-dir", mnt)
	if code == 0 || !strings.Contains(stderr, "rm -rf "+left) {
		t.Fatalf("restore with a leftover staging dir: exit %d, %s", code, stderr)
	}
	if err := os.RemoveAll(left); err != nil {
		t.Fatal(err)
	}

	stdout, stderr, code := cli(t, "restore", "--from", out, "--data-dir", mnt)
	if code != 0 || !strings.Contains(stdout, "restored "+out+" into "+mnt) {
		t.Fatalf("restore into the mount point %s: exit %d\n%s%s", mnt, code, stdout, stderr)
	}
	if dev(mnt) == dev(dst.dir) || dev(filepath.Join(mnt, "db")) != dev(mnt) {
		t.Fatalf("after the restore %s is no longer the mount point, or the store is not on it", mnt)
	}
	dst.start()
	c.waitFor("the restored node to serve", 20*time.Second, func() (bool, string) {
		_, err := dst.info()
		return err == nil, fmt.Sprint(err)
	})
	c.waitHasAll(dst, "mnt", ids, 15*time.Second)
	dst.signal(syscall.SIGTERM)
	dst.waitExit(15 * time.Second)
	umount()
}
