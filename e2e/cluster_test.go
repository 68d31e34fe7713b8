//go:build unix

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/client"
)

// Fast failure detection for most tests: SDOWN after 3 × 100 ms.
const (
	fastHB    = 100
	fastLease = 1
)

// writeVia writes one engram with a plain POST to n (no client logic) and
// fails the test unless it is acknowledged.
func writeVia(t *testing.T, n *node, vault, durability, content string) (apitypes.WriteResult, string) {
	t.Helper()
	r, err := n.raw("POST", "/api/engrams?durability="+durability, apitypes.WriteRequest{ID: client.NewID(), Vault: vault, Content: content})
	if err != nil {
		t.Fatalf("write via %s: %v", n.id, err)
	}
	if r.status != http.StatusCreated {
		t.Fatalf("write via %s: HTTP %d %s", n.id, r.status, r.body)
	}
	var res apitypes.WriteResult
	if err := json.Unmarshal(r.body, &res); err != nil {
		t.Fatal(err)
	}
	return res, r.node
}

// writeN writes n engrams through cl (which follows the Cortex and rides
// out elections) and returns their ids.
func writeN(t *testing.T, cl *client.Client, vault, durability string, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		res, err := cl.Write(ctx, apitypes.WriteRequest{Vault: vault, Concept: fmt.Sprintf("c%d", i), Content: fmt.Sprintf("engram %d of vault %s", i, vault), Tags: []string{vault}}, client.Durability(durability))
		cancel()
		if err != nil {
			t.Fatalf("%s write %d of %d to vault %s: %v", durability, i, n, vault, err)
		}
		ids = append(ids, res.ID)
	}
	return ids
}

// cortexNow returns the Cortex the running nodes of ns agree on now. With
// heartbeat_ms 100 a loaded machine may hold a spurious election at any
// time, so tests ask just before they act on the Cortex.
func (c *cluster) cortexNow(ns []*node) *node {
	c.t.Helper()
	var up []*node
	for _, n := range ns {
		if n.running() {
			up = append(up, n)
		}
	}
	return c.waitCortex(up, 15*time.Second)
}

// ---------------------------------------------------------------- 1

// TestWalkthrough is the seed's three-node walkthrough with the product's
// default timing: three configs, each listing the other two as seeds; the
// seed's log lines; `muninn cluster info` showing one Cortex and two
// Lobes at the same sequence; writes through a Lobe forwarded and readable
// everywhere.
func TestWalkthrough(t *testing.T) {
	c := newCluster(t, 0, 0)
	ns := c.addN(3)
	c.startAll()
	cx := c.waitCortex(ns, 20*time.Second)
	c.waitFor("every node to log MuninnDB ready", 5*time.Second, func() (bool, string) {
		for _, n := range ns {
			if n.countMsg("MuninnDB ready (role=") == 0 {
				return false, n.id + " has not logged `MuninnDB ready (role=...)`"
			}
		}
		return true, ""
	})

	// The seed's startup lines.
	elected := 0
	for _, n := range ns {
		want := []string{"cluster mode enabled, node_id=" + n.id}
		for _, s := range n.seeds {
			want = append(want, "connecting to seed "+s.mbpAddr()+"...")
		}
		role := "lobe"
		if n == cx {
			role = "cortex"
			want = append(want, "elected as cortex (received 2/3 votes)")
		}
		want = append(want, fmt.Sprintf("MuninnDB ready (role=%s, cluster_size=3)", role))
		for _, w := range want {
			if n.countMsg(w) == 0 {
				t.Errorf("%s's log lacks the seed's line %q", n.id, w)
			}
		}
		if n.countMsg("MuninnDB ready (role=") != 1 {
			t.Errorf("%s logged `MuninnDB ready` %d times, want once", n.id, n.countMsg("MuninnDB ready (role="))
		}
		elected += n.countMsg("elected as cortex (received ")
	}
	if elected != 1 {
		t.Errorf("%d `elected as cortex` lines over the three logs, want exactly 1", elected)
	}
	participated := 0
	for _, n := range ns {
		participated += n.countMsg("participating in election, epoch=1")
	}
	if participated == 0 {
		t.Errorf("no node logged `participating in election, epoch=1`")
	}
	// Two nodes may stand in epoch 1 at the same instant (a split vote);
	// the better one runs again at once, so the first Cortex has epoch 1
	// or 2.
	epoch := cx.mustInfo().Epoch
	switch epoch {
	case 1:
	case 2:
		t.Logf("note: the first election split; %s won epoch 2", cx.id)
	default:
		t.Errorf("the first Cortex %s runs epoch %d, want 1 (or 2 after a split vote)", cx.id, epoch)
	}
	t.Run("connected_lines", func(t *testing.T) {
		for _, n := range ns {
			for _, s := range n.seeds {
				if w := "connecting to seed " + s.mbpAddr() + "... connected"; n.countMsg(w) == 0 {
					t.Errorf("%s's log lacks the seed's line %q", n.id, w)
				}
			}
		}
	})

	// Writes through a Lobe are forwarded to the Cortex.
	lobe := others(ns, cx)[0]
	var written []string
	for i := range 10 {
		dur := "local"
		if i%2 == 0 {
			dur = "quorum"
		}
		res, by := writeVia(t, lobe, "walk", dur, fmt.Sprintf("walkthrough engram %d", i))
		if by != cx.id {
			t.Errorf("a write through Lobe %s was answered by %q, want the Cortex %s (X-Muninn-Node)", lobe.id, by, cx.id)
		}
		if res.Epoch != epoch || res.Seq == 0 || res.Durability != dur {
			t.Errorf("write result %+v: want epoch %d, a seq, durability %s", res, epoch, dur)
		}
		written = append(written, res.ID)
	}
	for _, n := range ns {
		c.waitHasAll(n, "walk", written, 5*time.Second)
		r, err := n.raw("GET", "/api/engrams/"+written[0]+"?vault=walk", nil)
		if err != nil || r.status != http.StatusOK {
			t.Errorf("GET %s on %s: %v HTTP %d %s", written[0], n.id, err, r.status, r.body)
		}
	}

	// `muninn cluster info` (asked of muninn-01, as in the seed): one
	// Cortex and two Lobes, all at the same last seq.
	var out string
	c.waitFor("muninn cluster info to show every member at the same LAST SEQ with lag 0ms", 5*time.Second, func() (bool, string) {
		o, e, code := cli(t, "cluster", "info", "--addr", ns[0].url())
		out = o
		if code != 0 {
			return false, fmt.Sprintf("exit %d: %s", code, e)
		}
		rows := parseTable(o)
		if len(rows) != 3 {
			return false, "not 3 rows:\n" + o
		}
		seqs := map[string]bool{}
		for _, r := range rows {
			seqs[r["LAST SEQ"]] = true
			if r["ROLE"] == "lobe" && r["LAG"] != "0ms" {
				return false, "a Lobe lags:\n" + o
			}
		}
		return len(seqs) == 1, "LAST SEQ differs:\n" + o
	})
	t.Logf("muninn cluster info --addr %s:\n%s", ns[0].url(), out)
	lines := strings.Split(out, "\n")
	if !regexp.MustCompile(`^NODE ID\s{3,}ROLE\s{3,}LAST SEQ\s{3,}LAG$`).MatchString(lines[0]) {
		t.Errorf("header %q, want the seed's NODE ID / ROLE / LAST SEQ / LAG", lines[0])
	}
	roles := map[string]int{}
	for _, r := range parseTable(out) {
		roles[r["ROLE"]]++
		if r["ROLE"] == "cortex" {
			if r["NODE ID"] != cx.id || r["LAG"] != "—" {
				t.Errorf("cortex row %v: want %s with lag —", r, cx.id)
			}
		}
		if r["LAST SEQ"] == "0" || r["LAST SEQ"] == "—" {
			t.Errorf("row %v: want a last seq after 10 writes", r)
		}
	}
	if roles["cortex"] != 1 || roles["lobe"] != 2 {
		t.Errorf("roles %v, want one cortex and two lobes", roles)
	}
	if !strings.Contains(out, fmt.Sprintf("Cortex: %s   Epoch: %d   Fencing token: %d   Members: 3 (quorum 2)   Mode: cluster", cx.id, epoch, epoch)) {
		t.Errorf("summary line missing or wrong:\n%s", out)
	}
}

// parseTable parses the first whitespace-aligned table of out (columns
// separated by 3+ spaces) into rows keyed by header.
func parseTable(out string) []map[string]string {
	sep := regexp.MustCompile(`\s{3,}`)
	lines := strings.Split(out, "\n")
	if len(lines) == 0 {
		return nil
	}
	head := sep.Split(strings.TrimSpace(lines[0]), -1)
	var rows []map[string]string
	for _, l := range lines[1:] {
		if strings.TrimSpace(l) == "" {
			break
		}
		cells := sep.Split(strings.TrimSpace(l), -1)
		r := map[string]string{}
		for i, h := range head {
			if i < len(cells) {
				r[h] = cells[i]
			}
		}
		rows = append(rows, r)
	}
	return rows
}

// ---------------------------------------------------------------- 2

// TestSentinel: two data nodes and a Sentinel. The Sentinel refuses writes
// (and reads) naming the Cortex; when the Cortex is killed the Lobe wins
// with the Sentinel's vote.
func TestSentinel(t *testing.T) {
	c, a, b, s := sentinelTrio(t)
	all := []*node{a, b, s}
	cx := c.waitCortex(all, 15*time.Second)
	if cx == s {
		t.Fatalf("the Sentinel became Cortex")
	}
	if i := s.mustInfo(); i.Role != "sentinel" || i.Kind != "sentinel" {
		t.Errorf("sentinel info: role %q kind %q, want sentinel", i.Role, i.Kind)
	}

	// The refusal names the Cortex of the moment (asked again each try:
	// an election may move it).
	refused := func() *node {
		t.Helper()
		var cortex *node
		c.waitFor("the Sentinel to refuse a write naming the Cortex", 10*time.Second, func() (bool, string) {
			cortex = c.cortexNow(all)
			r, err := s.raw("POST", "/api/engrams", apitypes.WriteRequest{Content: "to the sentinel"})
			if err != nil {
				return false, err.Error()
			}
			if r.status != http.StatusForbidden || r.err.Code != apitypes.CodeReadOnlyNode {
				t.Fatalf("write to the Sentinel: HTTP %d %s; want 403 read_only_node", r.status, r.body)
			}
			return r.err.Cortex == cortex.id && r.err.CortexAPI == cortex.url() && strings.Contains(r.err.Message, cortex.id),
				fmt.Sprintf("refusal %+v does not name the Cortex %s at %s", r.err, cortex.id, cortex.url())
		})
		return cortex
	}
	refused()
	cl := client.New(a.url(), client.WithEndpoints(b.url()))
	before := writeN(t, cl, "default", "quorum", 5)
	if r, err := s.raw("GET", "/api/engrams/"+before[0], nil); err != nil || r.status != http.StatusForbidden || r.err.Code != apitypes.CodeReadOnlyNode {
		t.Errorf("read from the Sentinel: %v HTTP %d %s; want 403 read_only_node", err, r.status, r.body)
	}

	cx = c.cortexNow(all)
	lobe := others([]*node{a, b}, cx)[0]
	killed := time.Now()
	cx.kill9()
	nc := c.waitCortex([]*node{lobe, s}, 10*time.Second)
	t.Logf("kill -9 %s -> %s is Cortex in %s", cx.id, nc.id, time.Since(killed).Round(time.Millisecond))
	if nc != lobe {
		t.Fatalf("new Cortex %s, want the Lobe %s", nc.id, lobe.id)
	}
	if got := refused(); got != lobe {
		t.Errorf("after the kill the Sentinel names %s, want %s", got.id, lobe.id)
	}
	after := writeN(t, cl, "default", "local", 5)
	c.waitHasAll(lobe, "default", append(before, after...), 3*time.Second)
}

// sentinelTrio starts two data nodes and a Sentinel, each seeded with the
// other two.
func sentinelTrio(t *testing.T) (c *cluster, a, b, s *node) {
	c = newCluster(t, fastHB, fastLease)
	a, b = c.add("muninn-01"), c.add("muninn-02")
	s = c.add("sentinel-01")
	s.role = "sentinel"
	a.seeds, b.seeds, s.seeds = []*node{b, s}, []*node{a, s}, []*node{a, b}
	c.startAll()
	return c, a, b, s
}

// ---------------------------------------------------------------- 3

// TestFiveNodesLoseTwo: five data nodes lose the Cortex and a Lobe at once
// (kill -9); the three left elect a Cortex and take quorum writes.
func TestFiveNodesLoseTwo(t *testing.T) {
	c := newCluster(t, fastHB, fastLease)
	ns := c.addN(5)
	c.startAll()
	c.waitCortex(ns, 20*time.Second)
	before := writeN(t, client.New(ns[0].url(), client.WithEndpoints(urls(ns)...)), "five", "quorum", 20)
	cx := c.cortexNow(ns)
	victim := others(ns, cx)[0]
	killed := time.Now()
	cx.signal(syscall.SIGKILL)
	victim.signal(syscall.SIGKILL)
	cx.waitExit(10 * time.Second)
	victim.waitExit(10 * time.Second)
	rest := others(ns, cx, victim)
	nc := c.waitCortex(rest, 15*time.Second)
	t.Logf("kill -9 of %s (Cortex) and %s -> %s is Cortex in %s", cx.id, victim.id, nc.id, time.Since(killed).Round(time.Millisecond))
	if i := nc.mustInfo(); i.Quorum != 3 || len(i.Members) != 5 {
		t.Errorf("new Cortex info: quorum %d, %d members; want 3 of 5", i.Quorum, len(i.Members))
	}

	after := writeN(t, client.New(rest[0].url(), client.WithEndpoints(urls(rest)...)), "five", "quorum", 20)
	for _, n := range rest {
		c.waitHasAll(n, "five", append(slices.Clone(before), after...), 5*time.Second)
	}
}

// ---------------------------------------------------------------- 4

type killFigures struct {
	elect  []time.Duration // kill -> a survivor Cortex followed by all survivors
	resume []time.Duration // kill -> first acknowledged write on the new Cortex
}

// killRun is what killRounds leaves: the cluster, its current Cortex, the
// writer's acknowledgements, the figures, and every restarted node's
// quarantine (by engram id).
type killRun struct {
	c          *cluster
	ns         []*node
	cx         *node
	acks       []ack
	fails      []wfail
	fig        killFigures
	quarantine map[string]apitypes.QuarantineEntry
}

// killRounds runs a 3-node cluster with a client writing every 10 ms
// (durability dur) and kill -9s the Cortex `rounds` times, restarting it
// each time.
func killRounds(t *testing.T, hbMs, leaseTTL int, dur string, rounds int) killRun {
	c := newCluster(t, hbMs, leaseTTL)
	ns := c.addN(3)
	c.startAll()
	cx := c.waitCortex(ns, 20*time.Second)
	cl := client.New(cx.url(), client.WithEndpoints(urls(ns)...))
	vault := "kill-" + dur
	w := startWriter(t, cl, vault, dur, 10*time.Millisecond)
	var fig killFigures
	quarantine := map[string]apitypes.QuarantineEntry{}
	for round := 1; round <= rounds; round++ {
		c.waitAcks(w, 20, 15*time.Second)
		cx = c.cortexNow(ns)
		old := cx.mustInfo()
		survivors := others(ns, cx)
		killed := time.Now()
		cx.kill9()
		nc := c.waitCortex(survivors, 20*time.Second)
		elect := time.Since(killed)
		var first ack
		c.waitFor(fmt.Sprintf("round %d: an acknowledged write on the new Cortex %s", round, nc.id), 20*time.Second, func() (bool, string) {
			acks, fails := w.snapshot()
			for _, a := range acks {
				if a.end.After(killed) && (a.epoch > old.Epoch || a.epoch == 0) {
					first = a
					return true, ""
				}
			}
			if len(fails) > 0 {
				return false, fmt.Sprintf("last failure: %v", fails[len(fails)-1].err)
			}
			return false, ""
		})
		fig.elect = append(fig.elect, elect)
		fig.resume = append(fig.resume, first.end.Sub(killed))
		t.Logf("round %d: kill -9 %s (epoch %d) -> %s Cortex after %s, first acknowledged write after %s (epoch %d)",
			round, cx.id, old.Epoch, nc.id, elect.Round(time.Millisecond), first.end.Sub(killed).Round(time.Millisecond), first.epoch)

		if dur == "quorum" {
			// Every quorum write acknowledged so far is on the new Cortex.
			acks, _ := w.snapshot()
			got, err := nc.listIDs(vault, "strong")
			if err != nil {
				t.Fatal(err)
			}
			checkAcked(t, fmt.Sprintf("the new Cortex %s after round %d", nc.id, round), acks, got)
		}

		// Restart the killed node: it rejoins as a Lobe and catches up.
		cx.start()
		c.waitRejoin(cx, ns, fmt.Sprintf("round %d: restarted %s", round, cx.id))
		collectQuarantine(t, cx, quarantine, fmt.Sprintf("round %d", round))
	}
	c.waitAcks(w, 20, 15*time.Second)
	w.stop()
	cx = c.cortexNow(ns)
	acks, fails := w.snapshot()
	t.Logf("%d writes acknowledged, %d failed", len(acks), len(fails))
	for i, f := range fails[:min(5, len(fails))] {
		t.Logf("failed write %d: %s at %s after %s: %v", i, f.id, f.start.Format("15:04:05.000"), f.end.Sub(f.start).Round(time.Millisecond), f.err)
	}
	return killRun{c: c, ns: ns, cx: cx, acks: acks, fails: fails, fig: fig, quarantine: quarantine}
}

// waitRejoin waits until the restarted node n follows the Cortex the
// others follow and holds everything that Cortex had committed.
func (c *cluster) waitRejoin(n *node, ns []*node, what string) {
	c.t.Helper()
	c.waitFor(what+" to rejoin and catch up", 20*time.Second, func() (bool, string) {
		cx, why := c.cortexOf(others(ns, n))
		if cx == nil {
			return false, why
		}
		ci, err := cx.info()
		if err != nil {
			return false, err.Error()
		}
		li, err := n.info()
		if err != nil {
			return false, err.Error()
		}
		return li.Cortex == cx.id && li.LastEpoch == ci.LastEpoch && li.LastSeq >= ci.CommitSeq,
			fmt.Sprintf("%s follows %q at %d.%d; the Cortex %s is at epoch %d commit %d", n.id, li.Cortex, li.LastEpoch, li.LastSeq, cx.id, ci.Epoch, ci.CommitSeq)
	})
}

// collectQuarantine adds n's quarantine (GET /v1/cluster/quarantine) to
// quarantine.
func collectQuarantine(t *testing.T, n *node, quarantine map[string]apitypes.QuarantineEntry, when string) []apitypes.QuarantineEntry {
	t.Helper()
	fl, err := n.api().Quarantine(context.Background())
	if err != nil {
		t.Fatalf("GET /v1/cluster/quarantine on %s: %v", n.id, err)
	}
	if fl.NodeID != n.id {
		t.Errorf("GET /v1/cluster/quarantine on %s answered for %q", n.id, fl.NodeID)
	}
	for _, e := range fl.Entries {
		quarantine[e.ID] = e
		t.Logf("%s: quarantined on the restarted %s: %d.%d %s %s %s vault=%s id=%s (%s)", when, n.id, e.Epoch, e.Seq, e.Type, e.Durability, e.Op, e.Vault, e.ID, e.Reason)
	}
	return fl.Entries
}

// TestKillCortexQuorumWrites: kill -9 of the Cortex while a client writes
// with quorum durability every 10 ms; no acknowledged write is lost.
// E2E_KILLS rounds (default 3); E2E_KILL_HEARTBEAT_MS (default 100).
func TestKillCortexQuorumWrites(t *testing.T) {
	needBinary(t)
	hb := envInt("E2E_KILL_HEARTBEAT_MS", fastHB)
	lease := fastLease
	if hb >= 1000 {
		lease = 0 // the default (10 s)
	}
	rounds := envInt("E2E_KILLS", 3)
	run := killRounds(t, hb, lease, "quorum", rounds)
	fig := run.fig
	got, err := run.cx.listIDs("kill-quorum", "strong")
	if err != nil {
		t.Fatal(err)
	}
	checkAcked(t, "the final Cortex "+run.cx.id, run.acks, got)
	checkRefused(t, "the final Cortex "+run.cx.id, run.fails, got)
	t.Logf("heartbeat_ms=%d: kill -9 -> new Cortex: %s", hb, stats(fig.elect))
	t.Logf("heartbeat_ms=%d: kill -9 -> first acknowledged write: %s", hb, stats(fig.resume))
	// The SDOWN window is 3 heartbeats; an election and the client's retry
	// backoff come on top. A generous bound: 3 beats + 3 s.
	bound := 3*time.Duration(hb)*time.Millisecond + 3*time.Second
	for i, d := range fig.resume {
		if d > bound {
			t.Errorf("round %d: writes resumed %s after the kill, more than %s", i+1, d.Round(time.Millisecond), bound)
		}
	}
}

// TestKillCortexLocalWrites: the same with local durability: every
// acknowledged write is on the final Cortex or in a quarantine. A last
// round makes the loss certain: with both Lobes killed the Cortex still
// acknowledges local writes; it is then killed, the Lobes come back and
// elect a Cortex without them, and the restarted old Cortex must hold
// them in its quarantine.
func TestKillCortexLocalWrites(t *testing.T) {
	needBinary(t)
	rounds := min(envInt("E2E_KILLS", 3), 3)
	run := killRounds(t, fastHB, fastLease, "local", rounds)
	c, cx, acks, quarantine := run.c, run.cx, run.acks, run.quarantine

	// The isolated round.
	cx = c.cortexNow(run.ns)
	lobes := others(run.ns, cx)
	for _, l := range lobes {
		l.kill9()
	}
	cl := client.New(cx.url(), client.WithRetryBudget(0))
	var isolated []ack
	for i := range 5 {
		id := client.NewID()
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		res, err := cl.Write(ctx, apitypes.WriteRequest{ID: id, Vault: "kill-local", Content: fmt.Sprintf("isolated %d", i)}, client.Durability("local"))
		cancel()
		if err != nil {
			t.Logf("local write %d on the isolated Cortex %s: %v", i, cx.id, err)
			break
		}
		isolated = append(isolated, ack{id: id, start: start, end: time.Now(), epoch: res.Epoch, seq: res.Seq})
	}
	if len(isolated) == 0 {
		t.Fatalf("the Cortex %s acknowledged no local write right after losing both Lobes", cx.id)
	}
	acks = append(acks, isolated...)
	cx.kill9()
	for _, l := range lobes {
		l.start()
	}
	c.waitCortex(lobes, 20*time.Second)
	cx.start()
	c.waitRejoin(cx, run.ns, "the isolated old Cortex "+cx.id)
	collectQuarantine(t, cx, quarantine, "isolated round")
	nc := c.cortexNow(run.ns)

	got, err := nc.listIDs("kill-local", "strong")
	if err != nil {
		t.Fatal(err)
	}
	var lost []string
	quarantined := 0
	for _, a := range acks {
		if got[a.id] {
			continue
		}
		if e, ok := quarantine[a.id]; ok {
			quarantined++
			if e.Durability != "local" || e.Vault != "kill-local" || e.Type != "data" {
				t.Errorf("quarantined entry %+v: want a local data write of vault kill-local", e)
			}
			continue
		}
		lost = append(lost, fmt.Sprintf("%s (epoch %d seq %d)", a.id, a.epoch, a.seq))
	}
	for _, a := range isolated {
		if got[a.id] {
			t.Errorf("%s, written only on the isolated Cortex, is on the new Cortex %s", a.id, nc.id)
		}
	}
	t.Logf("local writes: %d acknowledged (%d on the isolated Cortex), %d on the final Cortex %s, %d only in a quarantine",
		len(acks), len(isolated), len(acks)-len(lost)-quarantined, nc.id, quarantined)
	t.Logf("kill -9 -> first acknowledged local write: %s", stats(run.fig.resume))
	if len(lost) > 0 {
		t.Fatalf("%d acknowledged local writes are neither on the Cortex nor in a quarantine: %v", len(lost), lost[:min(10, len(lost))])
	}
}

// ---------------------------------------------------------------- 5

// TestLobePaused: a Lobe SIGSTOPped for 3 s and resumed; the cluster keeps
// taking writes and the Lobe catches up.
func TestLobePaused(t *testing.T) {
	c := newCluster(t, fastHB, fastLease)
	ns := c.addN(3)
	c.startAll()
	cx := c.waitCortex(ns, 20*time.Second)
	cl := client.New(cx.url(), client.WithEndpoints(urls(ns)...))
	w := startWriter(t, cl, "pause", "quorum", 10*time.Millisecond)
	// With one Lobe stopped, every commit needs the other's answer within
	// the 300 ms SDOWN window of this test's 100 ms heartbeat; on a loaded
	// machine it can miss it, and the write's honest answer is
	// unknown_outcome: settle those by writing the same id again, and
	// fail only on a write that cannot be settled.
	w.settle = true
	c.waitAcks(w, 20, 10*time.Second)

	cx = c.cortexNow(ns)
	epoch := cx.mustInfo().Epoch
	lobe := others(ns, cx)[0]
	lobe.signal(syscall.SIGSTOP)
	stopped := time.Now()
	n0 := w.ackCount()
	time.Sleep(3 * time.Second)
	acksDuring := w.ackCount() - n0
	_, fails := w.snapshot()
	h, err := cx.api().Health(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	lobe.signal(syscall.SIGCONT)
	resumed := time.Now()
	t.Logf("%s stopped for %s: %d writes acknowledged meanwhile; Cortex health %s (%s)", lobe.id, resumed.Sub(stopped).Round(time.Millisecond), acksDuring, h.Status, h.Reason)
	if acksDuring < 20 {
		t.Errorf("only %d writes acknowledged in the 3 s the Lobe was stopped", acksDuring)
	}
	if len(fails) > 0 {
		t.Errorf("%d writes failed while the Lobe was stopped; first: %v", len(fails), fails[0].err)
	}
	if h.Status != apitypes.HealthDegraded {
		t.Errorf("Cortex health while %s was stopped: %s (%s); want degraded", lobe.id, h.Status, h.Reason)
	}

	c.waitAcks(w, 30, 10*time.Second)
	w.stop()
	c.waitFor(lobe.id+" to catch up with the Cortex", 5*time.Second, func() (bool, string) {
		cx, why := c.cortexOf(others(ns, lobe))
		if cx == nil {
			return false, why
		}
		ci, err := cx.info()
		if err != nil {
			return false, err.Error()
		}
		li, err := lobe.info()
		if err != nil {
			return false, err.Error()
		}
		return li.LastSeq >= ci.LastSeq && li.Cortex == cx.id, fmt.Sprintf("%s at %d following %q; Cortex %s at %d", lobe.id, li.LastSeq, li.Cortex, cx.id, ci.LastSeq)
	})
	t.Logf("%s caught up within %s of SIGCONT", lobe.id, time.Since(resumed).Round(time.Millisecond))
	acks, fails := w.snapshot()
	if len(fails) > 0 {
		t.Errorf("%d writes failed; first: %v", len(fails), fails[0].err)
	}
	w.mu.Lock()
	if w.settled > 0 {
		t.Logf("%d unknown outcomes settled by writing the same id again", w.settled)
	}
	w.mu.Unlock()
	c.waitHasAll(lobe, "pause", ackIDs(acks), 3*time.Second)
	// Not asserted: on a loaded machine a 300 ms SDOWN window can expire
	// spuriously, and then a resumed Lobe may win an election.
	if i := c.cortexNow(ns).mustInfo(); i.NodeID != cx.id || i.Epoch != epoch {
		t.Logf("note: the Cortex moved during the test: %s at epoch %d, then %s at epoch %d", cx.id, epoch, i.NodeID, i.Epoch)
	}
}

func ackIDs(acks []ack) []string {
	var out []string
	for _, a := range acks {
		out = append(out, a.id)
	}
	return out
}

// ---------------------------------------------------------------- 6

// TestGracefulFailover: `muninn cluster failover --yes` while a client
// writes: the Cortex changes and no acknowledged write is lost.
func TestGracefulFailover(t *testing.T) {
	c := newCluster(t, fastHB, fastLease)
	ns := c.addN(3)
	c.startAll()
	cx := c.waitCortex(ns, 20*time.Second)
	cl := client.New(cx.url(), client.WithEndpoints(urls(ns)...))
	w := startWriter(t, cl, "graceful", "quorum", 10*time.Millisecond)
	c.waitAcks(w, 30, 10*time.Second)

	// Refused without --yes.
	if _, e, code := cli(t, "cluster", "failover", "--addr", cx.url()); code != 2 || !strings.Contains(e, "--yes") {
		t.Errorf("failover without --yes: exit %d, stderr %q; want 2 naming --yes", code, e)
	}
	cx = c.cortexNow(ns)
	start := time.Now()
	out, e, code := cli(t, "cluster", "failover", "--yes", "--addr", cx.url())
	took := time.Since(start)
	if code != 0 {
		t.Fatalf("muninn cluster failover --yes: exit %d\nstdout: %s\nstderr: %s", code, out, e)
	}
	m := regexp.MustCompile(`Handed off: (\S+) -> (\S+) \(epoch (\d+)\)\.`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("failover output %q, want `Handed off: A -> B (epoch N).`", out)
	}
	t.Logf("muninn cluster failover --yes (%s): %s", took.Round(time.Millisecond), strings.TrimSpace(out))
	if m[1] != cx.id || m[2] == cx.id {
		t.Errorf("handed off %s -> %s; want from the Cortex %s to another node", m[1], m[2], cx.id)
	}
	nc := c.waitCortex(ns, 5*time.Second)
	if nc == cx || nc.id != m[2] {
		t.Errorf("Cortex after the failover: %s; want %s", nc.id, m[2])
	}
	c.waitAcks(w, 30, 10*time.Second)
	w.stop()
	acks, fails := w.snapshot()
	got, err := nc.listIDs("graceful", "strong")
	if err != nil {
		t.Fatal(err)
	}
	checkAcked(t, "the new Cortex "+nc.id, acks, got)
	stall, at := longestStall(acks)
	var worst time.Duration
	for _, a := range acks {
		worst = max(worst, a.end.Sub(a.start))
	}
	t.Logf("graceful failover: %d writes acknowledged, %d failed; longest stall between acknowledgements %s (at %s, failover started %s); slowest write %s",
		len(acks), len(fails), stall.Round(time.Millisecond), at.Format("15:04:05.000"), start.Format("15:04:05.000"), worst.Round(time.Millisecond))
	if len(fails) > 0 {
		t.Errorf("%d writes failed during a graceful failover; first: %v", len(fails), fails[0].err)
	}
	if stall > 2*time.Second {
		t.Errorf("writes stalled %s during a graceful failover; want well under a second (bound 2 s)", stall.Round(time.Millisecond))
	}
}

// ---------------------------------------------------------------- 7

// TestJoinWithData: a fourth node joins a cluster holding 200 engrams with
// `muninn cluster add-node --node ID`; it is a learner (outside every
// quorum) until it has caught up, then a voter, and holds all the data.
func TestJoinWithData(t *testing.T) {
	c := newCluster(t, fastHB, fastLease)
	ns := c.addN(3)
	c.startAll()
	cx := c.waitCortex(ns, 20*time.Second)
	cl := client.New(cx.url(), client.WithEndpoints(urls(ns)...))
	want := writeN(t, cl, "join", "quorum", 200)

	n4 := c.add("muninn-04")
	n4.seeds = ns
	n4.start()
	c.waitFor("muninn-04 to wait to be added", 10*time.Second, func() (bool, string) {
		i, err := n4.info()
		if err != nil {
			return false, err.Error()
		}
		return i.Joining, fmt.Sprintf("joining=%v role=%s", i.Joining, i.Role)
	})
	if n4.countMsg("waiting to be added") == 0 {
		t.Errorf("muninn-04's log does not say it waits to be added")
	}

	// Hold the newcomer (and one Lobe) still, so the learner state is
	// observable and it is clear the learner is outside the quorum: with
	// one of three voters stopped, quorum writes succeed only if the
	// learner is not counted (2 of 3, not 3 of 4).
	n4.signal(syscall.SIGSTOP)
	cx = c.cortexNow(ns)
	paused := others(ns, cx)[0]
	paused.signal(syscall.SIGSTOP)
	out, e, code := cli(t, "cluster", "add-node", "--node", "muninn-04", "--addr", cx.url())
	if code != 0 {
		t.Fatalf("muninn cluster add-node --node muninn-04: exit %d\n%s\n%s", code, out, e)
	}
	t.Logf("add-node: %s", strings.TrimSpace(out))
	if !strings.Contains(out, "Added muninn-04 as a learner") {
		t.Errorf("add-node output %q, want `Added muninn-04 as a learner`", out)
	}
	cx = c.cortexNow(others(ns, paused))
	info := cx.mustInfo()
	m := memberOf(info, "muninn-04")
	if m == nil || !m.Learner || m.Role != "learner" {
		t.Fatalf("Cortex info after add-node: muninn-04 is %+v; want a learner", m)
	}
	if info.Quorum != 2 || info.WriteQuorum != 2 {
		t.Errorf("with a learner the Cortex's quorum is %d (write %d); want 2: a learner does not count", info.Quorum, info.WriteQuorum)
	}
	for i := range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := cl.Write(ctx, apitypes.WriteRequest{Vault: "join", Content: fmt.Sprintf("while joining %d", i)}, client.Durability("quorum"))
		cancel()
		if err != nil {
			t.Fatalf("quorum write with %s stopped and muninn-04 a stopped learner: %v (is the learner counted in the quorum?)", paused.id, err)
		}
		want = append(want, res.ID)
	}
	cx = c.cortexNow(others(ns, paused))
	if m := memberOf(cx.mustInfo(), "muninn-04"); m == nil || !m.Learner {
		t.Errorf("muninn-04 became a voter on %s while it was stopped and behind: %+v", cx.id, m)
	}
	paused.signal(syscall.SIGCONT)
	n4.signal(syscall.SIGCONT)
	resumed := time.Now()

	c.waitHasAll(n4, "join", want, 15*time.Second)
	all := append(slices.Clone(ns), n4)
	c.waitFor("muninn-04 to be promoted to voter", 10*time.Second, func() (bool, string) {
		cx, why := c.cortexOf(all)
		if cx == nil {
			return false, why
		}
		i, err := cx.info()
		if err != nil {
			return false, err.Error()
		}
		m := memberOf(i, "muninn-04")
		return m != nil && !m.Learner && i.Quorum == 3, fmt.Sprintf("muninn-04 %+v, quorum %d", m, i.Quorum)
	})
	t.Logf("muninn-04 caught up (%d engrams) and became a voter within %s of resuming", len(want), time.Since(resumed).Round(time.Millisecond))
	cx = c.cortexNow(all)
	i4 := n4.mustInfo()
	if i4.Joining || i4.Role != "lobe" || i4.Cortex != cx.id {
		t.Errorf("muninn-04's own view: joining=%v role=%s cortex=%s; want a lobe following %s", i4.Joining, i4.Role, i4.Cortex, cx.id)
	}
	if n4.countMsg("connecting to seed ") == 0 {
		t.Errorf("muninn-04's log does not show its seeds")
	}
}

// TestJoinSnapshot: a node joining a cluster whose log was compacted
// (more than 2 × the 10,000-entry log tail) gets the Cortex's snapshot
// over MBP, then the tail, then becomes a voter with all the data.
func TestJoinSnapshot(t *testing.T) {
	c := newCluster(t, fastHB, fastLease)
	ns := c.addN(3)
	c.startAll()
	c.waitCortex(ns, 20*time.Second)
	cl := client.New(ns[0].url(), client.WithEndpoints(urls(ns)...))
	const total = 21000
	start := time.Now()
	var (
		mu   sync.Mutex
		want []string
		next atomic.Int64
		wg   sync.WaitGroup
		errs = make(chan error, 16)
	)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= total {
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				res, err := cl.Write(ctx, apitypes.WriteRequest{Vault: "snap", Content: "bulk engram for a snapshot"}, client.Durability("local"))
				cancel()
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				want = append(want, res.ID)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("bulk write: %v", err)
	}
	want = append(want, writeN(t, cl, "snap", "quorum", 1)...)
	t.Logf("%d writes in %s", len(want), time.Since(start).Round(time.Millisecond))

	n4 := c.add("muninn-04")
	n4.seeds = ns
	n4.start()
	c.waitFor("muninn-04 to wait to be added", 10*time.Second, func() (bool, string) {
		i, err := n4.info()
		if err != nil {
			return false, err.Error()
		}
		return i.Joining, fmt.Sprintf("joining=%v", i.Joining)
	})
	cx := c.cortexNow(ns)
	added := time.Now()
	if out, e, code := cli(t, "cluster", "add-node", "--node", "muninn-04", "--kind", "auto", "--addr", cx.url()); code != 0 {
		t.Fatalf("add-node: exit %d\n%s\n%s", code, out, e)
	}
	c.waitHasAll(n4, "snap", want, 30*time.Second)
	all := append(slices.Clone(ns), n4)
	c.waitFor("muninn-04 to be promoted to voter", 10*time.Second, func() (bool, string) {
		cx, why := c.cortexOf(all)
		if cx == nil {
			return false, why
		}
		m := memberOf(cx.mustInfo(), "muninn-04")
		return m != nil && !m.Learner, fmt.Sprintf("muninn-04: %+v", m)
	})
	t.Logf("muninn-04 holds all %d engrams and is a voter %s after add-node", len(want), time.Since(added).Round(time.Millisecond))
	if n4.countMsg("installed snapshot from ") == 0 {
		t.Errorf("muninn-04 did not install a snapshot (its log has no `installed snapshot from`): the join did not take the snapshot path")
	}
	sent := 0
	for _, n := range ns {
		sent += n.countMsg("mbp snapshot sent")
	}
	if sent == 0 {
		t.Errorf("no node logged `mbp snapshot sent`")
	}
	// Staging does not outlive the snapshot: the disk holds the data, not
	// the data plus leftover copies.
	staged := func(n *node, sub string) []string {
		ents, _ := os.ReadDir(filepath.Join(n.dir, "data", sub))
		var out []string
		for _, e := range ents {
			out = append(out, filepath.Join(sub, e.Name()))
		}
		return out
	}
	c.waitFor("snapshot staging to be removed", 10*time.Second, func() (bool, string) {
		left := staged(n4, "snapshot-in")
		for _, n := range ns {
			left = append(left, staged(n, "snapshot-out")...)
		}
		return len(left) == 0, fmt.Sprintf("left: %v", left)
	})
}

func memberOf(i apitypes.Info, id string) *apitypes.Member {
	for k := range i.Members {
		if i.Members[k].ID == id {
			return &i.Members[k]
		}
	}
	return nil
}

// TestEnableStandalone: `muninn cluster enable` on a standalone node with
// data prints the restart procedure; following it, the node comes back as
// the Cortex of a one-node cluster with its data, and a fresh node joins
// it with add-node and catches up.
func TestEnableStandalone(t *testing.T) {
	c := newCluster(t, fastHB, fastLease)
	n1 := c.add("muninn-01")
	n1.standalone = true
	n1.start()
	c.waitFor("the standalone node to serve", 10*time.Second, func() (bool, string) {
		i, err := n1.info()
		if err != nil {
			return false, err.Error()
		}
		return !i.ClusterEnabled && i.Role == "cortex", fmt.Sprintf("cluster_enabled=%v role=%s", i.ClusterEnabled, i.Role)
	})
	want := writeN(t, client.New(n1.url()), "solo", "local", 50)

	out, e, code := cli(t, "cluster", "enable", "--addr", n1.url())
	if code != 1 || !strings.Contains(out, "(1) stop the node") || !strings.Contains(out, "(4) start each new node") || !strings.Contains(e, "was not enabled") {
		t.Errorf("muninn cluster enable on a standalone node: exit %d\nstdout: %s\nstderr: %s\nwant exit 1 with the numbered restart procedure", code, out, e)
	}
	n1.signal(syscall.SIGTERM)
	if st := n1.waitExit(15 * time.Second); !st.Success() {
		t.Fatalf("standalone node exited with %v after SIGTERM; want 0", st)
	}

	// Step (2)-(3): cluster mode, a new node id, no seeds.
	n1.standalone = false
	n1.start()
	c.waitCortex([]*node{n1}, 15*time.Second)
	if i := n1.mustInfo(); !i.ClusterEnabled || len(i.Members) != 1 || i.Members[0].ID != "muninn-01" {
		t.Fatalf("after the restart: cluster_enabled=%v members=%+v; want a one-node cluster of muninn-01", i.ClusterEnabled, i.Members)
	}
	c.waitHasAll(n1, "solo", want, 5*time.Second)

	// Step (4): a fresh node joins it.
	n2 := c.add("muninn-02")
	n2.seeds = []*node{n1}
	n2.start()
	c.waitFor("muninn-02 to wait to be added", 10*time.Second, func() (bool, string) {
		i, err := n2.info()
		if err != nil {
			return false, err.Error()
		}
		return i.Joining, fmt.Sprintf("joining=%v", i.Joining)
	})
	if out, e, code := cli(t, "cluster", "add-node", "--node", "muninn-02", "--addr", n1.url()); code != 0 {
		t.Fatalf("add-node: exit %d\n%s\n%s", code, out, e)
	}
	c.waitHasAll(n2, "solo", want, 10*time.Second)
	both := []*node{n1, n2}
	c.waitFor("muninn-02 to be a voter", 10*time.Second, func() (bool, string) {
		cx, why := c.cortexOf(both)
		if cx == nil {
			return false, why
		}
		m := memberOf(cx.mustInfo(), "muninn-02")
		return m != nil && !m.Learner, fmt.Sprintf("muninn-02: %+v", m)
	})
	more := writeN(t, client.New(n2.url(), client.WithEndpoints(n1.url())), "solo", "quorum", 10)
	for _, n := range both {
		c.waitHasAll(n, "solo", append(slices.Clone(want), more...), 5*time.Second)
	}
}

// ---------------------------------------------------------------- 8

// TestWrongSecret: a node with another cluster_secret is refused: both
// sides log it and it never becomes a member.
func TestWrongSecret(t *testing.T) {
	c := newCluster(t, fastHB, fastLease)
	ns := c.addN(3)
	c.startAll()
	cx := c.waitCortex(ns, 20*time.Second)
	bad := c.add("muninn-04")
	bad.seeds = ns
	bad.secret = "a-different-secret-fedcba9876543210"
	bad.start()
	const refusal = "authentication failed, check cluster_secret"
	c.waitFor("the refusal in the logs", 10*time.Second, func() (bool, string) {
		if bad.countMsg(refusal) == 0 {
			return false, "muninn-04's log does not say it was refused"
		}
		for _, n := range ns {
			if n.countMsg(refusal) == 0 {
				return false, n.id + "'s log does not say it refused muninn-04"
			}
		}
		return true, ""
	})
	time.Sleep(time.Second) // give it every chance to get in
	if !bad.running() {
		t.Logf("muninn-04 exited (%v)", bad.waitExit(time.Second))
	}
	cx = c.cortexNow(ns)
	for _, n := range ns {
		i := n.mustInfo()
		if memberOf(i, "muninn-04") != nil {
			t.Errorf("%s lists muninn-04 as a member", n.id)
		}
		if len(i.Members) != 3 {
			t.Errorf("%s: %d members; want 3", n.id, len(i.Members))
		}
	}
	st, err := cx.api().Status(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st.Members {
		if m.ID == "muninn-04" {
			t.Errorf("cluster status lists muninn-04: %+v", m)
		}
	}
	if i, err := bad.info(); err == nil && (i.Cortex != "" || i.Epoch != 0) {
		t.Errorf("muninn-04 (wrong secret) follows Cortex %q at epoch %d", i.Cortex, i.Epoch)
	}
	c.waitFor("cluster health ok with a refused stranger around", 5*time.Second, func() (bool, string) {
		h, err := c.cortexNow(ns).api().Health(context.Background())
		if err != nil {
			return false, err.Error()
		}
		return h.Status == apitypes.HealthOK, fmt.Sprintf("%s: %s", h.Status, h.Reason)
	})
}

// ---------------------------------------------------------------- 9

// TestSigtermHandoff: SIGTERM of the Cortex (default heartbeat) hands off
// before shutting down: a Lobe is Cortex well within the 3 s SDOWN window,
// and no acknowledged write is lost.
func TestSigtermHandoff(t *testing.T) {
	c := newCluster(t, 0, 0)
	ns := c.addN(3)
	c.startAll()
	cx := c.waitCortex(ns, 20*time.Second)
	cl := client.New(cx.url(), client.WithEndpoints(urls(ns)...))
	w := startWriter(t, cl, "sigterm", "quorum", 10*time.Millisecond)
	c.waitAcks(w, 30, 10*time.Second)
	cx = c.cortexNow(ns)
	old := cx.mustInfo()

	survivors := others(ns, cx)
	termAt := time.Now()
	cx.signal(syscall.SIGTERM)
	nc := c.waitCortex(survivors, 10*time.Second)
	elect := time.Since(termAt)
	var first ack
	c.waitFor("an acknowledged write on the new Cortex", 10*time.Second, func() (bool, string) {
		acks, _ := w.snapshot()
		for _, a := range acks {
			if a.end.After(termAt) && (a.epoch > old.Epoch || a.epoch == 0) {
				first = a
				return true, ""
			}
		}
		return false, ""
	})
	st := cx.waitExit(10 * time.Second)
	t.Logf("SIGTERM %s -> %s Cortex after %s; first acknowledged write after %s; %s exited (%v) after %s",
		cx.id, nc.id, elect.Round(time.Millisecond), first.end.Sub(termAt).Round(time.Millisecond), cx.id, st, time.Since(termAt).Round(time.Millisecond))
	if elect > 1500*time.Millisecond {
		t.Errorf("a Lobe became Cortex %s after SIGTERM; a handoff should take ~1 s at most, not the 3 s SDOWN window", elect.Round(time.Millisecond))
	}
	if st == nil || !st.Success() {
		t.Errorf("%s exited with %v after SIGTERM; want status 0", cx.id, st)
	}
	if cx.countMsg("handed off the Cortex role to "+nc.id) == 0 {
		t.Errorf("%s's log does not say it handed off to %s", cx.id, nc.id)
	}
	c.waitAcks(w, 20, 10*time.Second)
	w.stop()
	acks, fails := w.snapshot()
	got, err := nc.listIDs("sigterm", "strong")
	if err != nil {
		t.Fatal(err)
	}
	checkAcked(t, "the new Cortex "+nc.id, acks, got)
	stall, _ := longestStall(acks)
	t.Logf("SIGTERM handoff: %d writes acknowledged, %d failed, longest stall %s", len(acks), len(fails), stall.Round(time.Millisecond))
	if len(fails) > 0 {
		t.Errorf("%d writes failed across a SIGTERM handoff; first: %v", len(fails), fails[0].err)
	}
}
