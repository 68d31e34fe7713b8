package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
)

// TestBackupBadInput covers issue 15's bad inputs with the real binary,
// each refused by `muninn backup verify` and by `muninn restore` with an
// error naming the backup and what is wrong in it, and nothing created in
// the restore's target: a truncated backup file, a file of a backup
// directory whose checksum no longer matches, and a backup of a newer
// format. (A corrupted stream and a non-empty target: TestBackupRestore;
// an archive with a gap: TestPITR.)
func TestBackupBadInput(t *testing.T) {
	c := newCluster(t, 0, 0)
	src := c.add("source")
	src.standalone = true
	src.start()
	for i := 0; i < 50; i++ {
		c.waitFor("a write", 20*time.Second, func() (bool, string) {
			r, err := src.raw("POST", "/api/engrams", apitypes.WriteRequest{Vault: "v", Content: fmt.Sprintf("engram %d %s", i, strings.Repeat("x", 200))})
			if err != nil {
				return false, err.Error()
			}
			return r.status == http.StatusCreated, fmt.Sprintf("HTTP %d %s", r.status, r.body)
		})
	}
	file := filepath.Join(c.dir, "b.tar.zst")
	dir := filepath.Join(c.dir, "b-dir")
	for _, args := range [][]string{{"--out", file}, {"--out", dir, "--dir"}} {
		if stdout, stderr, code := cli(t, append([]string{"backup", "--addr", src.url()}, args...)...); code != 0 {
			t.Fatalf("backup %v: exit %d\n%s%s", args, code, stdout, stderr)
		}
	}

	refused := func(name, backup string, want ...string) {
		t.Helper()
		target := filepath.Join(c.dir, "restore-"+name)
		for _, cmd := range [][]string{{"backup", "verify", backup}, {"restore", "--from", backup, "--data-dir", target}} {
			_, stderr, code := cli(t, cmd...)
			if code == 0 {
				t.Fatalf("%s: %v succeeded", name, cmd)
			}
			for _, w := range append([]string{backup}, want...) {
				if !strings.Contains(stderr, w) {
					t.Fatalf("%s: %v: the error does not say %q:\n%s", name, cmd, w, stderr)
				}
			}
		}
		if left, _ := filepath.Glob(target + "*"); len(left) > 0 {
			t.Fatalf("%s: the refused restore created %v", name, left)
		}
	}

	// A truncated file: the stream ends inside a file the manifest lists.
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(c.dir, "short.tar.zst")
	if err := os.WriteFile(short, b[:len(b)*2/3], 0o644); err != nil {
		t.Fatal(err)
	}
	refused("truncated", short, "truncated")

	// A checksum mismatch: one byte of the directory backup's largest
	// file changed, its size kept.
	sum := filepath.Join(c.dir, "sum-dir")
	copyDir(t, dir, sum)
	victim, size := "", int64(-1)
	filepath.Walk(sum, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && fi.Name() != "MANIFEST.json" && fi.Size() > size {
			victim, size = p, fi.Size()
		}
		return nil
	})
	vb, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	vb[len(vb)/2] ^= 0xff
	if err := os.WriteFile(victim, vb, 0o644); err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(sum, victim)
	refused("checksum", sum, "checksum mismatch", filepath.ToSlash(rel))

	// A newer format: the manifest's version above this binary's.
	newer := filepath.Join(c.dir, "newer-dir")
	copyDir(t, dir, newer)
	mf := filepath.Join(newer, "MANIFEST.json")
	mb, err := os.ReadFile(mf)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mb), `"format": 1,`) {
		t.Fatalf("MANIFEST.json has no \"format\": 1: %s", mb[:min(len(mb), 200)])
	}
	if err := os.WriteFile(mf, []byte(strings.Replace(string(mb), `"format": 1,`, `"format": 9,`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	refused("newer", newer, "newer format version 9", "use a newer muninn")
}

// copyDir copies a directory of regular files (a backup directory).
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
