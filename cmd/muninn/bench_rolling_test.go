package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRollingMedian: the median of the per-node pauses the --control
// summary prints (odd, even, empty; the input is not reordered).
func TestRollingMedian(t *testing.T) {
	ms := time.Millisecond
	in := []time.Duration{30 * ms, 10 * ms, 20 * ms}
	cases := []struct {
		ds   []time.Duration
		want time.Duration
	}{
		{in, 20 * ms},
		{[]time.Duration{40 * ms, 10 * ms, 30 * ms, 20 * ms}, 25 * ms},
		{nil, 0},
	}
	for _, c := range cases {
		if got := median(c.ds); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.ds, got, c.want)
		}
	}
	if in[0] != 30*ms || in[1] != 10*ms {
		t.Errorf("median reordered its input: %v", in)
	}
}

// TestRollingCopyDir: the control's data directory is a copy of the
// stopped node's: every file, nested directories, the same bytes.
func TestRollingCopyDir(t *testing.T) {
	src := filepath.Join(t.TempDir(), "node")
	files := map[string]string{"db/000008.sst": "sst bytes", "db/000010.log": strings.Repeat("wal", 1000), "MUNINN-STORE": "x", "db/sub/deep": ""}
	for name, body := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dst := filepath.Join(t.TempDir(), "copy")
	if err := copyDir(src, dst); err != nil {
		t.Fatalf("copyDir: %v", err)
	}
	for name, body := range files {
		b, err := os.ReadFile(filepath.Join(dst, name))
		if err != nil {
			t.Errorf("copy of %s: %v", name, err)
		} else if string(b) != body {
			t.Errorf("copy of %s: %d bytes, want %d", name, len(b), len(body))
		}
	}
	if err := copyDir(filepath.Join(src, "missing"), filepath.Join(dst, "x")); err == nil {
		t.Errorf("copyDir of a missing directory: no error")
	}
}

// TestRollingReportControl: with --control the table has the idle and
// control columns and a line of per-node medians; without, neither.
func TestRollingReportControl(t *testing.T) {
	ms := time.Millisecond
	rep := &RollingReport{Nodes: 3, HeartbeatMs: 1000, Writers: 4, WriteEvery: 10 * ms, Down: time.Second, Target: rollingTarget, Control: true,
		Restarts: []RollingNode{
			{Round: 1, Node: "bench-02", Role: "lobe", StopPause: 20 * ms, RestartPause: 60 * ms, IdlePause: 30 * ms, ControlPause: 50 * ms},
			{Round: 1, Node: "bench-03", Role: "lobe", StopPause: 10 * ms, RestartPause: 40 * ms, IdlePause: 20 * ms, ControlPause: 70 * ms},
			{Round: 1, Node: "bench-01", Role: "cortex", StopPause: 30 * ms, RestartPause: 80 * ms, IdlePause: 10 * ms, ControlPause: 90 * ms},
		}}
	var out bytes.Buffer
	rep.WriteText(&out)
	text := out.String()
	for _, want := range []string{"pause (idle)", "pause (control)", "median pause per node: stop 20ms, restart 60ms, idle 20ms, control (a standalone start, no cluster) 70ms"} {
		if !strings.Contains(text, want) {
			t.Errorf("report with --control lacks %q:\n%s", want, text)
		}
	}
	rep.Control = false
	out.Reset()
	rep.WriteText(&out)
	if text := out.String(); strings.Contains(text, "control") || strings.Contains(text, "idle") {
		t.Errorf("report without --control mentions the control:\n%s", text)
	}
}

// TestRollingPauseAt: the longest gap between acknowledgements in a
// window, and when it began, across writers; a write still waiting at the
// window's end counts from its last acknowledgement.
func TestRollingPauseAt(t *testing.T) {
	ms := time.Millisecond
	t0 := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	ack := func(offs ...int) []rollAck {
		var as []rollAck
		for _, o := range offs {
			as = append(as, rollAck{end: t0.Add(time.Duration(o) * ms)})
		}
		return as
	}
	a := &rollWriter{acks: ack(0, 10, 20, 90, 100)}    // gap 70 ms from +20
	b := &rollWriter{acks: ack(0, 10, 40, 50, 60, 70)} // gap 30 ms from +10
	p, at := maxPauseAt([]*rollWriter{b, a}, t0.Add(5*ms), t0.Add(100*ms))
	if p != 70*ms || at != 15*ms {
		t.Errorf("maxPauseAt = %v beginning %v after from, want 70ms beginning 15ms", p, at)
	}
	// b's last acknowledgement is at +70: waiting 80 ms at +150.
	p, at = maxPauseAt([]*rollWriter{a, b}, t0.Add(50*ms), t0.Add(150*ms))
	if p != 80*ms || at != 20*ms {
		t.Errorf("maxPauseAt with a write waiting = %v beginning %v after from, want 80ms beginning 20ms", p, at)
	}
	if p := maxPause([]*rollWriter{a, b}, t0, t0.Add(100*ms)); p != 70*ms {
		t.Errorf("maxPause = %v, want 70ms", p)
	}
}
