package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
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
