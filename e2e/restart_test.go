//go:build unix

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/client"
)

// Issue 16, parts 3 and 5: restarts. A rolling restart (SIGTERM one node
// at a time under a steady write load through the Go client) fails no
// request and loses no write; a full-cluster restart works in the seed's
// order (the Cortex first, once it reports node-level readiness, then the
// Lobes) and in reverse.

// nodeHealth is one GET /v1/cluster/health?scope=node, with its status code.
func (n *node) nodeHealth() (apitypes.Health, int, error) {
	r, err := n.raw("GET", "/v1/cluster/health?scope=node", nil)
	if err != nil {
		return apitypes.Health{}, 0, err
	}
	var h apitypes.Health
	if err := json.Unmarshal(r.body, &h); err != nil {
		return h, r.status, fmt.Errorf("HTTP %d, body %q: %v", r.status, r.body, err)
	}
	return h, r.status, nil
}

// waitAllHealthy waits until every node of ns answers the cluster-wide
// health with 200.
func (c *cluster) waitAllHealthy(ns []*node, d time.Duration) {
	c.t.Helper()
	c.waitFor("every node to report a healthy cluster", d, func() (bool, string) {
		for _, n := range ns {
			r, err := n.raw("GET", "/v1/cluster/health", nil)
			if err != nil {
				return false, fmt.Sprintf("%s: %v", n.id, err)
			}
			if r.status != http.StatusOK {
				return false, fmt.Sprintf("%s: HTTP %d %s", n.id, r.status, r.body)
			}
		}
		return true, ""
	})
}

// sigtermAll stops every node with SIGTERM, Lobes first then the Cortex
// (the seed's step 2), each exiting with status 0.
func (c *cluster) sigtermAll(ns []*node) {
	c.t.Helper()
	cx := c.cortexNow(ns)
	for _, n := range append(others(ns, cx), cx) {
		n.signal(syscall.SIGTERM)
		if st := n.waitExit(20 * time.Second); st == nil || !st.Success() {
			c.t.Fatalf("%s exited with %v after SIGTERM; want status 0", n.id, st)
		}
	}
}

// TestRollingRestart: SIGTERM each node in turn (restarting it before the
// next) under a steady quorum write load through the Go client: the Cortex
// hands off first, Lobes drain, and the client holds and resends, so no
// write fails and every acknowledged write is present. The longest pause
// per node is logged, not asserted (a loaded 2-core machine).
func TestRollingRestart(t *testing.T) {
	c := newCluster(t, 0, 0)
	ns := c.addN(3)
	c.startAll()
	c.waitCortex(ns, 20*time.Second)
	c.waitAllHealthy(ns, 30*time.Second)
	// Several writers, each with its own client, entering through
	// different nodes: a write is in flight at every moment.
	var ws []*writer
	for i := range envInt("E2E_ROLLING_WRITERS", 4) {
		cl := client.New(ns[i%len(ns)].url(), client.WithEndpoints(urls(ns)...))
		ws = append(ws, startWriter(t, cl, fmt.Sprintf("rolling-%d", i), "quorum", 5*time.Millisecond))
	}
	w := ws[0]
	c.waitAcks(w, 30, 10*time.Second)

	// The Lobes first, then the Cortex (which hands off): every node, and
	// both roles, restarted once.
	cx := c.cortexNow(ns)
	order := append(others(ns, cx), cx)
	var report []string
	for round, n := range order {
		role := "lobe"
		if c.cortexNow(ns) == n {
			role = "cortex"
		}
		from := time.Now()
		n.signal(syscall.SIGTERM)
		if st := n.waitExit(20 * time.Second); st == nil || !st.Success() {
			t.Fatalf("round %d: %s exited with %v after SIGTERM; want status 0", round+1, n.id, st)
		}
		down := time.Since(from)
		c.waitAcks(w, 20, 20*time.Second) // writes go on with the node down
		restart := time.Now()
		n.start()
		c.waitAllHealthy(ns, 60*time.Second)
		c.waitAcks(w, 20, 20*time.Second)
		stop, stopAt := stallIn(ws, from, restart)
		rejoin, rejoinAt := stallIn(ws, restart, time.Now())
		failed := 0
		for _, w := range ws {
			_, fails := w.snapshot()
			failed += len(fails)
		}
		report = append(report, fmt.Sprintf("%s (%s): exited %s after SIGTERM; longest write pause %s across the stop (at %s), %s across the restart (at %s); %d failed so far",
			n.id, role, down.Round(time.Millisecond), stop.Round(time.Millisecond), stopAt.Format("15:04:05.000"),
			rejoin.Round(time.Millisecond), rejoinAt.Format("15:04:05.000"), failed))
	}
	cx = c.cortexNow(ns)
	total, failed := stopAndCheckWriters(t, cx, ws)
	t.Logf("rolling restart, %d writers: %d writes acknowledged (all present), %d failed:\n  %s", len(ws), total, failed, strings.Join(report, "\n  "))
}

// stallIn is the longest time any writer of ws went without an
// acknowledgement within [from, to] (longestStall over the acks that
// ended in it), and when it began.
func stallIn(ws []*writer, from, to time.Time) (time.Duration, time.Time) {
	var worst time.Duration
	var at time.Time
	for _, w := range ws {
		acks, _ := w.snapshot()
		var in []ack
		for _, a := range acks {
			if !a.end.Before(from) && !a.end.After(to) {
				in = append(in, a)
			}
		}
		if d, dat := longestStall(in); d > worst {
			worst, at = d, dat
		}
	}
	return worst, at
}

// waitNodeReady waits for the node-level readiness of a member restarted
// alone or before a quorum: GET /v1/cluster/health?scope=node answering
// status waiting_for_quorum (503: it cannot serve yet) or ok (200), the
// signal the seed's "wait for it to be ready" step waits for. It returns
// the answer.
func (c *cluster) waitNodeReady(n *node, d time.Duration) apitypes.Health {
	c.t.Helper()
	var h apitypes.Health
	c.waitFor(n.id+"'s node-level readiness (health?scope=node: waiting_for_quorum or ok)", d, func() (bool, string) {
		got, code, err := n.nodeHealth()
		if err != nil {
			return false, err.Error()
		}
		h = got
		switch {
		case got.Status == "waiting_for_quorum" && code == http.StatusServiceUnavailable,
			got.Status == apitypes.HealthOK && code == http.StatusOK:
			return true, ""
		}
		return false, fmt.Sprintf("HTTP %d status %q reason %q", code, got.Status, got.Reason)
	})
	return h
}

// fullRestart writes, stops every node (Lobes first, then the Cortex),
// starts them one at a time in order (each after the previous one reports
// node-level readiness), and checks that a Cortex is elected, every
// acknowledged write is present on every node, and writes work again.
func fullRestart(t *testing.T, order func(cortex *node, lobes []*node) []*node) {
	c := newCluster(t, fastHB*2, fastLease)
	ns := c.addN(3)
	c.startAll()
	cx := c.waitCortex(ns, 20*time.Second)
	cl := client.New(cx.url(), client.WithEndpoints(urls(ns)...))
	before := writeN(t, cl, "restart", "quorum", 50)
	cl.Close()
	cx = c.cortexNow(ns)
	start := order(cx, others(ns, cx))
	c.sigtermAll(ns)

	// The first node alone: its store is open, it waits for a quorum, and
	// says so on health?scope=node and once in its log.
	first := start[0]
	first.start()
	h := c.waitNodeReady(first, 30*time.Second)
	want := "store open, waiting for a quorum: 1/3 voters"
	if h.Status != "waiting_for_quorum" || !strings.HasPrefix(h.Reason, want) || h.ReachableVoters != 1 || h.Voters != 3 {
		t.Fatalf("%s restarted alone: health?scope=node = %+v; want status waiting_for_quorum, reason %q..., reachable_voters 1 of 3", first.id, h, want)
	}
	c.waitFor(first.id+"'s log to say it waits for a quorum", 10*time.Second, func() (bool, string) {
		return first.countMsg(want) == 1, fmt.Sprintf("%d lines", first.countMsg(want))
	})
	// The cluster-wide answer says the same.
	if r, err := first.raw("GET", "/v1/cluster/health", nil); err != nil || r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), want) {
		t.Fatalf("%s alone: GET /v1/cluster/health = %v %d %s; want 503 with %q", first.id, err, r.status, r.body, want)
	}
	for _, n := range start[1:] {
		n.start()
		c.waitNodeReady(n, 30*time.Second)
	}
	cx = c.waitCortex(ns, 30*time.Second)
	c.waitAllHealthy(ns, 30*time.Second)
	if n := first.countMsg("quorum reached: "); n != 1 {
		t.Errorf("%s's log says %d times that it reached a quorum; want once", first.id, n)
	}
	if n := first.countMsg("store open, waiting for a quorum: "); n > 3 {
		t.Errorf("%s's log repeats the readiness line %d times; want it once and again only when the count changes", first.id, n)
	}
	for _, n := range ns {
		c.waitHasAll(n, "restart", before, 20*time.Second)
	}
	cl = client.New(cx.url(), client.WithEndpoints(urls(ns)...))
	defer cl.Close()
	after := writeN(t, cl, "restart", "quorum", 20)
	got, err := cx.listIDs("restart", "strong")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range append(before, after...) {
		if !got[id] {
			t.Fatalf("write %s is missing on the Cortex %s after the restart", id, cx.id)
		}
	}
	t.Logf("started %s in that order; Cortex %s elected; %d writes before, %d after, all present", ids(start), cx.id, len(before), len(after))
}

// TestFullRestartSeedOrder: the seed's procedure, step 4: start the
// (previous) Cortex, wait for it to be ready, then start the Lobes.
func TestFullRestartSeedOrder(t *testing.T) {
	fullRestart(t, func(cx *node, lobes []*node) []*node { return append([]*node{cx}, lobes...) })
}

// TestFullRestartReverseOrder: the Lobes first, the previous Cortex last.
func TestFullRestartReverseOrder(t *testing.T) {
	fullRestart(t, func(cx *node, lobes []*node) []*node { return append([]*node{lobes[1], lobes[0]}, cx) })
}

// TestBenchRolling runs `muninn bench rolling` (its own 3-process
// cluster, every node restarted in turn by SIGTERM under 4 writers) and
// checks its report: every node restarted, 0 failed and 0 lost writes. The
// pauses are logged, not asserted.
func TestBenchRolling(t *testing.T) {
	needBinary(t)
	out, errOut, code := cli(t, "bench", "rolling", "--down", "200ms", "--json")
	if code != 0 {
		t.Fatalf("muninn bench rolling: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	var rep struct {
		Restarts []struct {
			Node  string        `json:"node"`
			Role  string        `json:"role"`
			Pause time.Duration `json:"pause_ns"`
		} `json:"restarts"`
		Acked  int `json:"acked"`
		Failed int `json:"failed"`
		Lost   int `json:"lost"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("bench rolling --json: %v\n%s", err, out)
	}
	var lines []string
	roles := map[string]int{}
	for _, r := range rep.Restarts {
		roles[r.Role]++
		lines = append(lines, fmt.Sprintf("%s (%s) pause %s", r.Node, r.Role, r.Pause.Round(time.Millisecond)))
	}
	t.Logf("bench rolling: %d acknowledged, %d failed, %d lost; %s", rep.Acked, rep.Failed, rep.Lost, strings.Join(lines, "; "))
	if len(rep.Restarts) != 3 || roles["cortex"] != 1 || roles["lobe"] != 2 {
		t.Errorf("restarts: %+v; want 3 (2 Lobes, then the Cortex)", rep.Restarts)
	}
	if rep.Acked == 0 || rep.Failed != 0 || rep.Lost != 0 {
		t.Errorf("bench rolling: %d acknowledged, %d failed, %d lost; want some, 0 and 0\n%s", rep.Acked, rep.Failed, rep.Lost, errOut)
	}
}

// stopAndCheckWriters stops the writers and checks on the Cortex cx, with
// strong reads, that every acknowledged write is there and no refused one
// is; every failed write is an error (the rolling restart and upgrade
// targets: 0 failed). It returns the writes acknowledged and failed.
func stopAndCheckWriters(t *testing.T, cx *node, ws []*writer) (total, failed int) {
	t.Helper()
	for _, w := range ws {
		w.stop()
	}
	for _, w := range ws {
		acks, fails := w.snapshot()
		got, err := cx.listIDs(w.vault, "strong")
		if err != nil {
			t.Fatal(err)
		}
		checkAcked(t, "the Cortex "+cx.id, acks, got)
		checkRefused(t, "the Cortex "+cx.id, fails, got)
		for i, f := range fails[:min(len(fails), 3)] {
			t.Errorf("vault %s: failed write %d of %d at %s (after %s): %v", w.vault, i+1, len(fails), f.end.Format("15:04:05.000"), f.end.Sub(f.start).Round(time.Millisecond), f.err)
		}
		total, failed = total+len(acks), failed+len(fails)
	}
	return total, failed
}
