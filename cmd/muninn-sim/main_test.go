package main

import (
	"bytes"
	"io"
	"log/slog"
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
