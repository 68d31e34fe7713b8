package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBackupCommandRefusals(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"backup", "--out", filepath.Join(dir, "b.tar.zst")}, exitUsage, "--addr URL (a running node) or --data-dir DIR"},
		{[]string{"backup", "--addr", "http://127.0.0.1:1", "--data-dir", dir, "--out", "x"}, exitUsage, "can't be used together"},
		{[]string{"backup", "--data-dir", dir, "--out", filepath.Join(dir, "b.tar.zst")}, exitFailure, "holds no muninn store"},
		{[]string{"backup", "--addr", "http://127.0.0.1:1", "--out", dir}, exitFailure, "already exists"},
		{[]string{"backup", "verify", filepath.Join(dir, "missing")}, exitFailure, "missing"},
		{[]string{"restore", "--from", filepath.Join(dir, "missing"), "--data-dir", filepath.Join(dir, "new")}, exitFailure, "missing"},
	} {
		var out, errb bytes.Buffer
		code := run(c.args, &out, &errb, nil)
		if code != c.code || !strings.Contains(errb.String(), c.want) {
			t.Errorf("muninn %s: exit %d, %q; want exit %d and %q", strings.Join(c.args, " "), code, errb.String(), c.code, c.want)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("refused commands left %v", ents[0].Name())
	}
}
