package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestBenchRollingControl runs `muninn bench rolling --control` (H14): after
// each node's restart, an idle window and a control window in which a
// standalone muninn starts on a copy of that node's data directory. It
// checks that every restart got both (the control process answered HTTP),
// with 0 failed and 0 lost writes. The pauses are logged, not asserted.
func TestBenchRollingControl(t *testing.T) {
	needBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, "bench", "rolling", "--down", "200ms", "--control", "--json")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = os.Environ()
	if err := cmd.Run(); err != nil {
		t.Fatalf("muninn bench rolling --control: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	var rep struct {
		Control  bool `json:"control"`
		Restarts []struct {
			Node           string        `json:"node"`
			Role           string        `json:"role"`
			RestartPause   time.Duration `json:"restart_pause_ns"`
			IdlePause      time.Duration `json:"idle_pause_ns"`
			ControlPause   time.Duration `json:"control_pause_ns"`
			ControlServing time.Duration `json:"control_serving_ns"`
		} `json:"restarts"`
		Acked  int `json:"acked"`
		Failed int `json:"failed"`
		Lost   int `json:"lost"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("bench rolling --control --json: %v\n%s", err, out.String())
	}
	var lines []string
	for _, r := range rep.Restarts {
		lines = append(lines, fmt.Sprintf("%s (%s) restart %s, idle %s, control %s (serving after %s)", r.Node, r.Role,
			r.RestartPause.Round(time.Millisecond), r.IdlePause.Round(time.Millisecond), r.ControlPause.Round(time.Millisecond), r.ControlServing.Round(time.Millisecond)))
		// Writers acknowledge every 10 ms, so every window has a pause
		// above 0; 0 means the window was not measured.
		if r.IdlePause <= 0 || r.ControlPause <= 0 || r.ControlServing <= 0 {
			t.Errorf("%s: idle %v, control %v, control serving after %v; want all measured (> 0)", r.Node, r.IdlePause, r.ControlPause, r.ControlServing)
		}
	}
	t.Logf("bench rolling --control: %d acknowledged, %d failed, %d lost; %s", rep.Acked, rep.Failed, rep.Lost, strings.Join(lines, "; "))
	if !rep.Control || len(rep.Restarts) != 3 {
		t.Errorf("control %v, %d restarts; want true and 3", rep.Control, len(rep.Restarts))
	}
	if rep.Acked == 0 || rep.Failed != 0 || rep.Lost != 0 {
		t.Errorf("%d acknowledged, %d failed, %d lost; want some, 0 and 0\n%s", rep.Acked, rep.Failed, rep.Lost, errb.String())
	}
}
