package node

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
)

// cluster.priority reaches the core (a node with NeverCortex never runs)
// and the start line shows it with the effective SDOWN window: lease_ttl
// below 3 heartbeats caps it.
func TestPriorityAndStartLine(t *testing.T) {
	logs := make([]*diskLog, 2)
	tc := startCluster(t, 2, 200*time.Millisecond, func(i int, o *Options) {
		logs[i] = &diskLog{}
		o.Logger = slog.New(slog.NewTextHandler(logs[i], nil))
		o.LeaseTTL = 500 * time.Millisecond
		if i == 0 {
			o.NeverCortex = true
		} else {
			o.Priority = 5
		}
	})
	if cx := tc.cortex(5 * time.Second); cx != tc.nodes[1] {
		t.Fatalf("cortex %v, want n2 (n1 has priority 0)", cx)
	}
	for i, want := range []string{"priority=0", "priority=5"} {
		line := ""
		for _, l := range strings.Split(logs[i].String(), "\n") {
			if strings.Contains(l, "cluster mode enabled, node_id=") {
				line = l
			}
		}
		for _, w := range []string{want, "heartbeat_ms=200", "lease_ttl=500ms", "down_after=500ms"} {
			if !strings.Contains(line, w) {
				t.Errorf("n%d start line %q lacks %s", i+1, line, w)
			}
		}
	}
	if p := tc.nodes[0].Status().Core.Priority; p != 0 {
		t.Errorf("n1 reports priority %d", p)
	}
	if p := tc.nodes[1].Status().Core.Priority; p != 5 {
		t.Errorf("n2 reports priority %d", p)
	}
	// A standalone node is its own Cortex whatever NeverCortex says.
	n, err := Start(Options{DataDir: t.TempDir(), NeverCortex: true})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	deadline := time.Now().Add(5 * time.Second)
	for n.Status().Core.Role != core.RoleCortex {
		if time.Now().After(deadline) {
			t.Fatal("standalone node with NeverCortex never became Cortex")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
