package main

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRun50Seeds(t *testing.T) {
	var out bytes.Buffer
	r := runCmd{common: common{Duration: 20 * time.Second, Faults: "all", Broken: "none"}, Seeds: 50, SeedStart: 1}
	if code := r.run(&out, slog.New(slog.NewTextHandler(io.Discard, nil))); code != exitOK {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), "violations               none") {
		t.Fatalf("summary:\n%s", out.String())
	}
}

func TestCanaryExitCode(t *testing.T) {
	var out bytes.Buffer
	r := runCmd{common: common{Duration: 20 * time.Second, Faults: "all", Broken: "no-log-check"}, Seeds: 200, SeedStart: 1}
	code := r.run(&out, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if code != exitSafety && code != exitLiveness {
		t.Fatalf("canary not caught: exit %d\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), "muninn-sim replay --seed") {
		t.Fatalf("no replay command printed:\n%s", out.String())
	}
}

// TestLogNoColorInFiles checks that a log written to a file (CI logs, a
// pipe) carries no ANSI escape codes, the level included.
func TestLogNoColorInFiles(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	newLog(f, false).Warn("round failed", "seed", 7)
	var buf bytes.Buffer
	newLog(&buf, false).Error("not a file either")
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{string(b), buf.String()} {
		if strings.Contains(out, "\x1b[") || !strings.Contains(out, "WRN") && !strings.Contains(out, "ERR") {
			t.Fatalf("log %q: want plain text with its level, no escape codes", out)
		}
	}
}
