package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

func TestBackupProgressLine(t *testing.T) {
	var b bytes.Buffer
	p := &progress{w: &b, on: true, start: time.Now().Add(-10 * time.Second), verb: "backup"}
	p.update(100<<20, 400<<20) // 10 MiB/s, 300 MiB to go: 30 s
	if got := b.String(); !strings.Contains(got, "backup 100.0 MiB of 400.0 MiB (25%)") || !strings.Contains(got, "10.0 MiB/s") || !strings.Contains(got, "ETA 30s") {
		t.Fatalf("progress line %q", got)
	}
	b.Reset()
	p.update(101<<20, 400<<20) // within 200 ms of the last: not printed
	if b.Len() != 0 {
		t.Fatalf("printed again at once: %q", b.String())
	}
	off := newProgress(&b, "backup") // not a terminal
	off.update(1, 2)
	off.end()
	if b.Len() != 0 {
		t.Fatalf("progress on a non-terminal: %q", b.String())
	}
}
