//go:build linux

package cluster

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTimedLog: LogsSince starts at the first write at or after the time
// asked, Logs returns the last lines.
func TestTimedLog(t *testing.T) {
	l, err := openTimedLog(filepath.Join(t.TempDir(), "n.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Write([]byte("one\ntwo\n"))
	// The marks are compared, not the clock's progress: make the second
	// write's mark strictly later than mid whatever the clock's grain.
	mid := l.marks[0].at.Add(time.Nanosecond)
	l.Write([]byte("three\n"))
	l.marks[1].at = mid
	got, err := l.since(mid, 1<<20)
	if err != nil || string(got) != "three\n" {
		t.Errorf("since: %q %v", got, err)
	}
	if got, _ := l.since(time.Time{}, 1<<20); string(got) != "one\ntwo\nthree\n" {
		t.Errorf("since the start: %q", got)
	}
	if got, _ := l.since(mid.Add(time.Hour), 1<<20); len(got) != 0 {
		t.Errorf("since later: %q", got)
	}
	if got, _ := l.since(time.Time{}, 6); string(got) != "three\n" {
		t.Errorf("bounded: %q", got)
	}
	r := &netnsRuntime{logs: map[string]*timedLog{"n": l}}
	if got := r.Logs(context.Background(), "n", 2); got != "two\nthree\n" {
		t.Errorf("Logs: %q", got)
	}
}

// TestNetns runs one short round in the netns runtime: the three-node
// topology as processes in network namespaces, the Cortex killed for 2 s
// of a 4 s segment. No anomaly, and afterwards nothing the run made is
// left: processes, namespaces, the host's veth, mounts, data directories.
// It needs root and the ip command; without them it skips, or fails when
// CI is set.
func TestNetns(t *testing.T) {
	if err := NetnsReady(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v: CI is set, so the netns fault test must run", err)
		}
		t.Skipf("%v: skipping the netns fault test", err)
	}
	deploy, err := FindDeployDir("")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	wl := DefaultWorkload
	wl.MaxOps = 1500
	var clusters []*Cluster
	o := Options{Runtime: "netns", Topologies: Topologies[:1], Nemeses: []string{"kill"}, Duration: 4 * time.Second, Rounds: 1, HeartbeatMs: 250,
		Workload: wl, DeployDir: deploy, Out: &out, afterUp: func(c *Cluster) { clusters = append(clusters, c) }}
	s, err := Run(ctx, o)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	if n := s.Anomalies(); n > 0 || len(s.Segments) != 1 {
		t.Fatalf("%d anomalies in %d segments", n, len(s.Segments))
	}
	if r := s.Segments[0]; r.TotalOps == 0 || r.Linear.Ops == 0 || len(r.Failovers) != 1 {
		t.Errorf("kill: %d operations, %d linearizability operations, failovers %v", r.TotalOps, r.Linear.Ops, r.Failovers)
	}
	if len(clusters) != 1 {
		t.Fatalf("%d clusters came up, want 1", len(clusters))
	}
	c := clusters[0]
	rt := c.rt.(*netnsRuntime)
	// Every node process started (3, and the killed Cortex again) is gone.
	if len(rt.started) < len(c.Topo.Nodes)+1 {
		t.Errorf("%d processes started, want at least %d", len(rt.started), len(c.Topo.Nodes)+1)
	}
	for _, pid := range rt.started {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("node process %d is still there (kill -0: %v)", pid, err)
		}
	}
	list, err := ipCmd(context.Background(), "netns", "list")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(list, c.Project) {
		t.Errorf("namespaces of %s left:\n%s", c.Project, list)
	}
	if _, err := ipCmd(context.Background(), "link", "show", hostVeth(c.Project)); err == nil {
		t.Errorf("the host's veth %s is left", hostVeth(c.Project))
	}
	if m := mountsUnder(c.data.root); len(m) > 0 {
		t.Errorf("mounts left: %v", m)
	}
	if _, err := os.Stat(c.data.root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data directories left in %s (%v)", c.data.root, err)
	}
	if n := c.Topo.Nodes[0]; c.api.isAllowed(n.Addr) {
		t.Errorf("the API still dials %s after the run", n.Addr)
	}
}

// TestNetnsChurn runs one short churn round in the netns runtime: the
// spare is added, promoted, the Cortex handed off and removed, under the
// workload, with the event subscribers on. No anomaly; the strong reads of
// the clients bound to the added and the removed node are in the
// checked history.
func TestNetnsChurn(t *testing.T) {
	if err := NetnsReady(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v: CI is set, so the netns fault test must run", err)
		}
		t.Skipf("%v: skipping the netns fault test", err)
	}
	deploy, err := FindDeployDir("")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	wl := DefaultWorkload
	wl.MaxOps = 1500
	o := Options{Runtime: "netns", Topologies: Topologies[:1], Nemeses: []string{"churn"}, Duration: 4 * time.Second, Rounds: 1, HeartbeatMs: 250,
		Workload: wl, DeployDir: deploy, Out: &out}
	s, err := Run(ctx, o)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	if n := s.Anomalies(); n > 0 || len(s.Segments) != 1 {
		t.Fatalf("%d anomalies in %d segments", n, len(s.Segments))
	}
	r := s.Segments[0]
	m := r.Membership
	if m == nil || m.Added != "spare-01" || m.Removed == "" || m.Removed != r.Faults[0].Cortex {
		t.Fatalf("membership: %+v (Cortex before: %s)", m, r.Faults[0].Cortex)
	}
	if r.FinalCortex == m.Removed {
		t.Errorf("the removed node %s is the final Cortex", m.Removed)
	}
	if r.Events == nil || len(r.Events.Subscribers) != 2 || len(r.Events.Elections) == 0 {
		t.Errorf("events: %+v", r.Events)
	}
	if r.Linear.Ops == 0 {
		t.Errorf("no linearizability operations")
	}
}

// TestBinaryOf: a node of an earlier release runs its binary, every
// other node this build's, restarts included.
func TestBinaryOf(t *testing.T) {
	r := &netnsRuntime{binary: "/b/muninn", binaries: map[string]string{"muninn-01": "/tmp/muninn-release-x/muninn"}}
	if r.binaryOf("muninn-01") != "/tmp/muninn-release-x/muninn" || r.binaryOf("muninn-02") != "/b/muninn" || r.binaryOf("spare-01") != "/b/muninn" {
		t.Errorf("%s %s %s", r.binaryOf("muninn-01"), r.binaryOf("muninn-02"), r.binaryOf("spare-01"))
	}
}
