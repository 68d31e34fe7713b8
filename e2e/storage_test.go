//go:build unix

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/client"
	"github.com/muninndb/muninn/shell/store"
)

// Storage faults with real processes (issue 11, parts C and D).

func (n *node) dataDir() string { return filepath.Join(n.dir, "data") }

// quorumWrites writes k engrams to vault through cl with quorum
// durability and returns their ids; every one must be acknowledged.
func quorumWrites(t *testing.T, cl *client.Client, vault, what string, k int) []string {
	t.Helper()
	var ids []string
	resent := 0
	for i := range k {
		id := client.NewID()
		req := apitypes.WriteRequest{ID: id, Vault: vault, Concept: "e2e", Content: fmt.Sprintf("%s %d: %s", what, i, strings.Repeat("payload ", 20))}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		_, n, err := writeSettled(ctx, cl, req, "quorum")
		resent += n
		cancel()
		if err != nil {
			t.Fatalf("%s: write %d: %v", what, i, err)
		}
		ids = append(ids, id)
	}
	if resent > 0 {
		t.Logf("%s: %d writes sent again with their id after an unknown outcome or a lost quorum", what, resent)
	}
	return ids
}

// TestCorruptWALRefusesStart: a Lobe of a three-node cluster is killed
// with SIGKILL after quorum writes, 16 bytes in the middle of its newest
// write-ahead log are flipped, and it is started again. It must exit
// non-zero naming the damaged log (before the fix it started silently
// with fewer entries than it had acknowledged). Restored as the error says
// — data directory moved aside, started empty — it rejoins and holds
// every acknowledged write.
func TestCorruptWALRefusesStart(t *testing.T) {
	c := newCluster(t, fastHB, fastLease)
	ns := c.addN(3)
	c.startAll()
	cx := c.waitCortex(ns, 20*time.Second)
	lobe := others(ns, cx)[0]
	cl := client.New(cx.url())
	ids := quorumWrites(t, cl, "wal", "before the kill", 400)
	var want uint64
	c.waitFor(lobe.id+" to hold every write", 10*time.Second, func() (bool, string) {
		ci, err := cx.info()
		if err != nil {
			return false, err.Error()
		}
		li, err := lobe.info()
		if err != nil {
			return false, err.Error()
		}
		want = ci.LastSeq
		return li.LastSeq == ci.LastSeq, fmt.Sprintf("%s at %d, the Cortex at %d", lobe.id, li.LastSeq, ci.LastSeq)
	})
	lobe.kill9()

	logs, _ := filepath.Glob(filepath.Join(lobe.dataDir(), "db", "*.log"))
	if len(logs) == 0 {
		t.Fatalf("no write-ahead log in %s", filepath.Join(lobe.dataDir(), "db"))
	}
	// The largest log: the writes may span a rotation (a memtable flush
	// starts a new log), and damage in any log with records after it must
	// stop the node.
	var wal string
	var walSize int64 = -1
	for _, l := range logs {
		if st, err := os.Stat(l); err == nil {
			t.Logf("%s: %s, %d bytes", lobe.id, filepath.Base(l), st.Size())
			if st.Size() > walSize {
				wal, walSize = l, st.Size()
			}
		}
	}
	b, err := os.ReadFile(wal)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2*32<<10 {
		t.Fatalf("%s is only %d bytes: the writes are not in it (flushed to a table?)", wal, len(b))
	}
	for i := len(b) / 2; i < len(b)/2+16; i++ {
		b[i] ^= 0xff
	}
	if err := os.WriteFile(wal, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: flipped 16 bytes at offset %d of %d; it had acknowledged up to seq %d", lobe.id, len(b)/2, len(b), want)

	lobe.start()
	st := lobe.waitExit(30 * time.Second)
	if st == nil || st.ExitCode() == 0 {
		t.Fatalf("%s started on a damaged write-ahead log (exit %v)", lobe.id, st)
	}
	out := lobe.logText()
	for _, w := range []string{filepath.Base(wal), "damaged at offset", "refuses to start", "move its data directory aside"} {
		if !strings.Contains(out, w) {
			t.Errorf("%s's output does not say %q", lobe.id, w)
		}
	}
	t.Logf("%s exited with %d", lobe.id, st.ExitCode())

	// Restore it as the message says.
	if err := os.Rename(lobe.dataDir(), lobe.dataDir()+".damaged"); err != nil {
		t.Fatal(err)
	}
	lobe.start()
	c.waitHasAll(lobe, "wal", ids, 30*time.Second)
}

// TestDiskFullCluster: the disk of a Lobe, then of the Cortex, goes below
// the store's reserve (simulated: store.TestFreeFileEnv makes the node read
// its free space from a file in its data directory). The Lobe takes no
// replicated entries and says why in its health and log; its memory stays
// flat; the cluster keeps acknowledging quorum writes. The Cortex hands
// its role to a caught-up Lobe well inside the SDOWN window. Once space is
// freed both catch up with nothing acknowledged lost. (Issue 11 D: the
// Lobe spun creating tables and grew to 1.8 GB; the Cortex hung writes,
// grew to 8.9 GB and still said cortex after a new epoch.)
func TestDiskFullCluster(t *testing.T) {
	t.Setenv(store.TestFreeFileEnv, "disk-free")
	c := newCluster(t, fastHB, fastLease)
	ns := c.addN(3)
	c.startAll()
	cx := c.waitCortex(ns, 20*time.Second)
	cl := client.New(ns[0].url(), client.WithEndpoints(urls(ns)...))
	acked := quorumWrites(t, cl, "full", "before", 50)

	// A Lobe's disk fills.
	lobe := others(ns, cx)[0]
	fill(t, lobe)
	c.waitFor(lobe.id+"'s health to say its disk is full", 5*time.Second, func() (bool, string) {
		return healthSays(lobe, "disk full", lobe.dataDir())
	})
	rss0 := rssKB(t, lobe)
	acked = append(acked, quorumWrites(t, cl, "full", "with a full Lobe", 200)...)
	rss1 := rssKB(t, lobe)
	ci, li := cx.mustInfo(), lobe.mustInfo()
	if li.LastSeq >= ci.LastSeq {
		t.Fatalf("%s, whose disk is full, is at seq %d with the Cortex at %d: it took replicated entries", lobe.id, li.LastSeq, ci.LastSeq)
	}
	t.Logf("%s (disk full): last seq %d, Cortex %d; RSS %d -> %d KiB over 200 quorum writes", lobe.id, li.LastSeq, ci.LastSeq, rss0, rss1)
	if rss1 > rss0+100<<10 {
		t.Errorf("%s's RSS grew from %d to %d KiB while its disk was full", lobe.id, rss0, rss1)
	}
	if lobe.countMsg("disk below the reserve") == 0 {
		t.Errorf("%s did not log that its disk is below the reserve", lobe.id)
	}
	free(t, lobe)
	c.waitHasAll(lobe, "full", acked, 20*time.Second)

	// The Cortex's disk fills.
	cx = c.cortexNow(ns)
	filled := time.Now()
	fill(t, cx)
	var nx *node
	c.waitFor("another node to take over from "+cx.id, 10*time.Second, func() (bool, string) {
		var why string
		nx, why = c.cortexOf(ns)
		if nx == nil {
			return false, why
		}
		return nx != cx, nx.id + " is still Cortex"
	})
	took := time.Since(filled)
	t.Logf("%s's disk filled; %s was Cortex %s later (the SDOWN window is %d ms)", cx.id, nx.id, took.Round(time.Millisecond), 3*fastHB)
	if cx.countMsg("demoted to lobe: disk full") == 0 {
		t.Errorf("%s did not log its step-down", cx.id)
	}
	if ok, why := healthSays(cx, "disk full", cx.dataDir()); !ok {
		t.Errorf("%s's health: %s", cx.id, why)
	}
	acked = append(acked, quorumWrites(t, client.New(nx.url()), "full", "after the step-down", 100)...)
	free(t, cx)
	for _, n := range ns {
		c.waitHasAll(n, "full", acked, 20*time.Second)
	}
	c.waitFor(cx.id+"'s health to clear", 5*time.Second, func() (bool, string) {
		ok, why := healthSays(cx, "disk full", "")
		return !ok, why
	})
}

// TestDiskFullStandalone: a lone node cannot hand off: it refuses writes
// at once with HTTP 507 insufficient_storage naming its data directory,
// the free space and the reserve, keeps serving reads, and takes writes
// again once space is freed.
func TestDiskFullStandalone(t *testing.T) {
	t.Setenv(store.TestFreeFileEnv, "disk-free")
	c := newCluster(t, 0, 0)
	n := c.add("standalone")
	n.standalone = true
	n.start()
	c.waitFor("the node to serve", 20*time.Second, func() (bool, string) {
		r, err := n.raw("POST", "/api/engrams", apitypes.WriteRequest{Content: "before"})
		if err != nil {
			return false, err.Error()
		}
		return r.status == http.StatusCreated, fmt.Sprintf("HTTP %d %s", r.status, r.body)
	})
	fill(t, n)
	var r rawResp
	c.waitFor("a write to be refused for space", 5*time.Second, func() (bool, string) {
		var err error
		start := time.Now()
		r, err = n.raw("POST", "/api/engrams", apitypes.WriteRequest{Content: "refused"})
		if err != nil {
			return false, err.Error()
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("a write took %s to be answered on a full disk", d)
		}
		return r.status == http.StatusInsufficientStorage, fmt.Sprintf("HTTP %d %s", r.status, r.body)
	})
	if r.err.Code != string(core.CodeInsufficientStorage) {
		t.Errorf("code %q, want %q", r.err.Code, string(core.CodeInsufficientStorage))
	}
	for _, w := range []string{n.dataDir(), "0 B free", "reserve of"} {
		if !strings.Contains(r.err.Message, w) {
			t.Errorf("the 507's message does not say %q: %s", w, r.err.Message)
		}
	}
	if g, err := n.raw("GET", "/api/engrams?vault=default", nil); err != nil || g.status != http.StatusOK {
		t.Errorf("a read on the full node: %v %+v", err, g)
	}
	if ok, why := healthSays(n, "disk full", n.dataDir()); !ok {
		t.Errorf("health: %s", why)
	}
	free(t, n)
	c.waitFor("writes to resume", 5*time.Second, func() (bool, string) {
		r, err := n.raw("POST", "/api/engrams", apitypes.WriteRequest{Content: "after"})
		if err != nil {
			return false, err.Error()
		}
		return r.status == http.StatusCreated, fmt.Sprintf("HTTP %d %s", r.status, r.body)
	})
	if !n.running() {
		t.Fatal("the node exited")
	}
}

// fill makes the node see 0 bytes free (store.TestFreeFileEnv).
func fill(t *testing.T, n *node) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(n.dataDir(), "disk-free"), []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// free gives the node back its real free space.
func free(t *testing.T, n *node) {
	t.Helper()
	if err := os.Remove(filepath.Join(n.dataDir(), "disk-free")); err != nil {
		t.Fatal(err)
	}
}

// healthSays reports whether the node's own health is degraded with a
// reason containing every one of want.
func healthSays(n *node, want ...string) (bool, string) {
	r, err := n.raw("GET", "/v1/cluster/health?scope=node", nil)
	if err != nil {
		return false, err.Error()
	}
	body := string(r.body)
	if r.status != http.StatusServiceUnavailable {
		return false, fmt.Sprintf("HTTP %d %s", r.status, body)
	}
	for _, w := range want {
		if !strings.Contains(body, w) {
			return false, fmt.Sprintf("health does not say %q: %s", w, body)
		}
	}
	return true, body
}

// rssKB is the node process's resident set size.
func rssKB(t *testing.T, n *node) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.pid()))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			v, _ := strconv.Atoi(f[1])
			return v
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", n.pid())
	return 0
}
