package node

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/mbp"
)

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Staging left by a stop or a kill is removed when the node starts.
func TestStagingClearedAtStart(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"snapshot-in/0a1b2c/000001.sst", "snapshot-out/n2/MANIFEST-000001"} {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("stale"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n, err := Start(Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for _, d := range []string{stagingIn, stagingOut} {
		if exists(filepath.Join(dir, d)) {
			t.Errorf("%s survived the start", d)
		}
	}
	if !exists(filepath.Join(dir, "db")) {
		t.Fatal("the store is gone")
	}
}

// lobe returns a non-Cortex node that follows cx.
func (tc *testCluster) lobe(cx *Node) *Node {
	for _, nd := range tc.nodes {
		if nd != cx {
			waitUntil(tc.t, "a Lobe following the Cortex", func() bool { return nd.Status().Core.Cortex == cx.ID() })
			return nd
		}
	}
	return nil
}

// A snapshot is accepted only from the Cortex the node follows, into a
// directory inside snapshot-in: a peer holding cluster_secret that is not
// the Cortex (or a member that is not) cannot replace a node's data, and a
// snapshot id is never a path.
func TestSnapshotOnlyFromTheCortex(t *testing.T) {
	tc := startCluster(t, 3, 100*time.Millisecond)
	cx := tc.cortex(5 * time.Second)
	lb := tc.lobe(cx)

	// An intruder with the secret streams a snapshot to the Lobe.
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "000001.sst"), []byte("not your data"), 0o644); err != nil {
		t.Fatal(err)
	}
	rogue := mbp.New(mbp.Config{ID: "intruder", Secret: tc.opts[0].Secret, ListenAddr: "127.0.0.1:0", BackoffMin: 10 * time.Millisecond})
	defer rogue.Close()
	if err := rogue.Listen(); err != nil {
		t.Fatal(err)
	}
	if err := rogue.Connect(tc.opts[indexOf(tc, lb)].BindAddr); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the intruder connected", func() bool {
		for _, p := range rogue.Peers() {
			if p.ID == lb.ID() && p.Connected {
				return true
			}
		}
		return false
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := rogue.SendSnapshot(ctx, lb.ID(), src)
	if err == nil || !strings.Contains(err.Error(), "accepted only from the Cortex") || !strings.Contains(err.Error(), string(cx.ID())) {
		t.Fatalf("the intruder's snapshot: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(lb.opts.DataDir, stagingIn)); len(ents) != 0 {
		t.Fatalf("staging written for a refused snapshot: %v", ents)
	}

	// Another member is no Cortex either; the Cortex itself is accepted,
	// but never with an id that is not a safe name.
	other := tc.nodes[3-indexOf(tc, lb)-indexOf(tc, cx)]
	if _, err := lb.snapshotStaging(other.ID(), "0a1b2c"); err == nil {
		t.Fatalf("a snapshot from the member %s accepted", other.ID())
	}
	if _, err := lb.snapshotStaging(cx.ID(), "../../canary"); err == nil {
		t.Fatal("snapshot id ../../canary accepted")
	}
	dir, err := lb.snapshotStaging(cx.ID(), "0a1b2c")
	if err != nil || dir != filepath.Join(lb.opts.DataDir, stagingIn, "0a1b2c") {
		t.Fatalf("the Cortex's snapshot: %q %v", dir, err)
	}
	lb.snapshotDone(cx.ID(), "0a1b2c", dir, false)
	if _, err := cx.snapshotStaging(lb.ID(), "0a1b2c"); err == nil {
		t.Fatal("the Cortex accepted a snapshot")
	}
}

func indexOf(tc *testCluster, n *Node) int {
	for i, nd := range tc.nodes {
		if nd == n {
			return i
		}
	}
	tc.t.Fatal("node not in the cluster")
	return -1
}

// Staging is removed after install, and an abandoned snapshot's directory
// is removed when another snapshot starts, never one still being written.
func TestStagingRemovedAfterInstallAndAbandonment(t *testing.T) {
	logs := make([]*syncBuf, 3)
	tc := startCluster(t, 3, 100*time.Millisecond, func(i int, o *Options) {
		logs[i] = &syncBuf{}
		o.Logger = slog.New(slog.NewTextHandler(logs[i], nil))
	})
	cx := tc.cortex(5 * time.Second)
	lb := tc.lobe(cx)
	lbLog := logs[indexOf(tc, lb)]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cx.Write(ctx, writeCmd(t, NewEngramID(), "x"), core.Quorum); err != nil {
		t.Fatal(err)
	}

	touch := func(dir string) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "000001.sst"), []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Snapshot a is interrupted; b starts while c is being written.
	a, err := lb.snapshotStaging(cx.ID(), "aaaa")
	if err != nil {
		t.Fatal(err)
	}
	touch(a)
	lb.snapshotDone(cx.ID(), "aaaa", a, false)
	if !exists(a) {
		t.Fatal("an interrupted snapshot was dropped at once: its sender could not resume it")
	}
	c, err := lb.snapshotStaging(cx.ID(), "cccc")
	if err != nil {
		t.Fatal(err)
	}
	touch(c)
	if exists(a) {
		t.Fatal("the abandoned snapshot aaaa survived a new one")
	}
	b, err := lb.snapshotStaging(cx.ID(), "bbbb")
	if err != nil {
		t.Fatal(err)
	}
	if !exists(c) {
		t.Fatal("snapshot cccc, still being written, was removed")
	}
	lb.snapshotDone(cx.ID(), "cccc", c, false)

	// b completes: a real checkpoint of the Cortex, installed, then gone.
	if err := os.RemoveAll(b); err != nil {
		t.Fatal(err)
	}
	if _, err := cx.Store().Checkpoint(b); err != nil {
		t.Fatal(err)
	}
	lb.snapshotDone(cx.ID(), "bbbb", b, true)
	// The Lobe already holds everything the checkpoint holds, so the
	// driver declines to install it (core.Node.TakesSnapshot): either way
	// the stream was handled and its staging goes.
	waitUntil(t, "the snapshot handled", func() bool {
		l := lbLog.String()
		return strings.Contains(l, "installed snapshot from "+string(cx.ID())) || strings.Contains(l, "snapshot not installed")
	})
	waitUntil(t, "the installed snapshot's staging removed", func() bool { return !exists(b) })
}

// syncBuf is a log destination safe for concurrent writers.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
