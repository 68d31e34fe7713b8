package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/client"
)

// Issue 19 item 1: an acknowledgement says what the state machine did.

func startStandalone(t *testing.T) *node {
	t.Helper()
	c := newCluster(t, 0, 0)
	n := c.add("standalone")
	n.standalone = true
	n.start()
	c.waitFor("the node to serve", 20*time.Second, func() (bool, string) {
		r, err := n.raw("GET", "/v1/cluster/info", nil)
		if err != nil {
			return false, err.Error()
		}
		return r.status == http.StatusOK, fmt.Sprintf("HTTP %d", r.status)
	})
	return n
}

func strongContent(t *testing.T, n *node, id string) (int, string) {
	t.Helper()
	r, err := n.raw("GET", "/api/engrams/"+id+"?consistency=strong", nil)
	if err != nil {
		t.Fatal(err)
	}
	var e apitypes.Engram
	if r.status == http.StatusOK {
		if err := json.Unmarshal(r.body, &e); err != nil {
			t.Fatalf("GET %s: %v: %s", id, err, r.body)
		}
	}
	return r.status, e.Content
}

// TestRecreateAfterForget: POST X, DELETE X, POST X again is stored and
// answered 201 (ids are reusable after DELETE), never a 201 for nothing.
func TestRecreateAfterForget(t *testing.T) {
	n := startStandalone(t)
	for i := range 10 {
		id := client.NewID()
		for step, want := range []struct {
			method, path string
			body         any
			status       int
		}{
			{"POST", "/api/engrams", apitypes.WriteRequest{ID: id, Content: "first"}, http.StatusCreated},
			{"DELETE", "/api/engrams/" + id, nil, http.StatusOK},
			{"POST", "/api/engrams", apitypes.WriteRequest{ID: id, Content: fmt.Sprintf("again %d", i)}, http.StatusCreated},
		} {
			r, err := n.raw(want.method, want.path, want.body)
			if err != nil {
				t.Fatal(err)
			}
			if r.status != want.status {
				t.Fatalf("try %d step %d: %s %s: HTTP %d %s, want %d", i, step, want.method, want.path, r.status, r.body, want.status)
			}
		}
		if st, content := strongContent(t, n, id); st != http.StatusOK || content != fmt.Sprintf("again %d", i) {
			t.Fatalf("try %d: after re-creating %s a strong GET answers %d %q, want 200 %q", i, id, st, content, fmt.Sprintf("again %d", i))
		}
	}
}

// TestConcurrentCreatesOneID: of concurrent POSTs of one client-chosen id
// with different contents, exactly one is acknowledged, and its content is
// the one stored; the others are refused (409).
func TestConcurrentCreatesOneID(t *testing.T) {
	n := startStandalone(t)
	const rounds, writers = 40, 8
	for round := range rounds {
		id := client.NewID()
		dur := []string{"local", "quorum"}[round%2]
		var wg sync.WaitGroup
		status := make([]int, writers)
		bodies := make([]string, writers)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := n.raw("POST", "/api/engrams?durability="+dur, apitypes.WriteRequest{ID: id, Content: fmt.Sprintf("writer %d", w)})
				if err != nil {
					bodies[w] = err.Error()
					return
				}
				status[w], bodies[w] = r.status, string(r.body)
			}()
		}
		wg.Wait()
		winner := -1
		for w, st := range status {
			switch st {
			case http.StatusCreated:
				if winner >= 0 {
					t.Fatalf("round %d (%s): writers %d and %d both got 201 for id %s", round, dur, winner, w, id)
				}
				winner = w
			case http.StatusConflict:
			default:
				t.Fatalf("round %d: writer %d: HTTP %d %s, want 201 or 409", round, w, st, bodies[w])
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no writer got 201: %v", round, status)
		}
		if st, content := strongContent(t, n, id); st != http.StatusOK || content != fmt.Sprintf("writer %d", winner) {
			t.Fatalf("round %d: stored %d %q, but the 201 went to writer %d", round, st, content, winner)
		}
	}
}

// TestDegradedSentinelAnswers is issue 19 item 3: two data nodes and a
// Sentinel, the Lobe killed. The Cortex keeps its quorum (the Sentinel) but
// cannot commit (W = 2): strong reads and quorum writes are refused at once
// with quorum_unavailable, local writes keep flowing, and health says why.
// Before, one strong read froze every later write.
func TestDegradedSentinelAnswers(t *testing.T) {
	c, a, b, s := sentinelTrio(t)
	cx := c.waitCortex([]*node{a, b, s}, 15*time.Second)
	lobe := others([]*node{a, b}, cx)[0]
	lobe.kill9()
	// After an SDOWN window (300 ms at heartbeat_ms 100) without the
	// Lobe's answer, the Cortex knows it cannot commit, and health says so.
	c.waitFor("health to say the cluster cannot commit", 10*time.Second, func() (bool, string) {
		r, err := cx.raw("GET", "/v1/cluster/health", nil)
		if err != nil {
			return false, err.Error()
		}
		return r.status == http.StatusServiceUnavailable && bytesContains(r.body, "cannot commit"), string(r.body)
	})

	timed := func(method, path string, body any) (rawResp, time.Duration) {
		t.Helper()
		start := time.Now()
		r, err := cx.raw(method, path, body)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return r, time.Since(start)
	}
	r, d := timed("GET", "/api/engrams?consistency=strong", nil)
	if r.status != http.StatusServiceUnavailable || r.err.Code != "quorum_unavailable" {
		t.Fatalf("strong read with the Lobe down: HTTP %d %s (after %s); want 503 quorum_unavailable", r.status, r.body, d)
	}
	t.Logf("strong read refused in %s: %s", d.Round(time.Millisecond), r.err.Message)
	for i := range 5 {
		r, d = timed("POST", "/api/engrams?durability=local", apitypes.WriteRequest{Content: fmt.Sprintf("local %d", i)})
		if r.status != http.StatusCreated {
			t.Fatalf("local write %d after a strong read: HTTP %d %s (after %s); want 201", i, r.status, r.body, d)
		}
	}
	r, d = timed("POST", "/api/engrams?durability=quorum", apitypes.WriteRequest{Content: "quorum"})
	if r.status != http.StatusServiceUnavailable || r.err.Code != "quorum_unavailable" {
		t.Fatalf("quorum write with the Lobe down: HTTP %d %s (after %s); want 503 quorum_unavailable", r.status, r.body, d)
	}
	lobe.start()
	c.waitFor("quorum writes to work again", 20*time.Second, func() (bool, string) {
		r, err := cx.raw("POST", "/api/engrams?durability=quorum", apitypes.WriteRequest{Content: "quorum again"})
		if err != nil {
			return false, err.Error()
		}
		return r.status == http.StatusCreated, fmt.Sprintf("HTTP %d %s", r.status, r.body)
	})
}

func bytesContains(b []byte, s string) bool { return strings.Contains(string(b), s) }

// TestAmbiguousWrites is issue 19 item 7 with real processes: a client with
// a short retry budget writes through two kill -9s of the Cortex, so some
// writes fail. Every acknowledged write exists; every write reported as a
// definite failure does not; only client.ErrAmbiguous may go either way.
func TestAmbiguousWrites(t *testing.T) {
	c := newCluster(t, fastHB, fastLease)
	ns := c.addN(3)
	c.startAll()
	cx := c.waitCortex(ns, 20*time.Second)
	cl := client.New(cx.url(), client.WithEndpoints(urls(ns)...), client.WithRetryBudget(150*time.Millisecond),
		client.WithHTTPClient(&http.Client{Timeout: 300 * time.Millisecond}))
	w := startWriter(t, cl, "ambiguous", "quorum", 5*time.Millisecond)
	for round := 1; round <= 2; round++ {
		c.waitAcks(w, 20, 15*time.Second)
		cx = c.cortexNow(ns)
		cx.kill9()
		c.waitCortex(others(ns, cx), 20*time.Second)
		c.waitAcks(w, 20, 15*time.Second)
		cx.start()
		c.waitRejoin(cx, ns, fmt.Sprintf("round %d: restarted %s", round, cx.id))
	}
	w.stop()
	acks, fails := w.snapshot()
	got, err := c.cortexNow(ns).listIDs("ambiguous", "strong")
	if err != nil {
		t.Fatal(err)
	}
	checkAcked(t, "the final Cortex", acks, got)
	checkRefused(t, "the final Cortex", fails, got)
	t.Logf("%d acknowledged", len(acks))
}
