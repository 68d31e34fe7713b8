package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/api"
	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/node"
)

// TestWatch: `muninn cluster watch` prints a standalone node's hello, and
// with --last-event-id the events it keeps, as JSON lines or text.
func TestWatch(t *testing.T) {
	n, err := node.Start(node.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	a := api.New(n, api.Options{})
	srv := httptest.NewServer(a)
	defer func() { a.Close(); srv.Close(); n.Close() }()
	for n.Status().Core.Cortex == "" {
		time.Sleep(5 * time.Millisecond)
	}
	// The event hub sees the election a step after the status (a hello
	// would still say lobe).
	for n.Status().Core.Role != core.RoleCortex || n.Events().Hello().Role != "cortex" {
		time.Sleep(5 * time.Millisecond)
	}

	code, out, stderr := cli(t, "cluster", "watch", "--json", "--count", "1", "--addr", srv.URL)
	var hello apitypes.ClusterEvent
	if code != 0 || strings.Count(out, "\n") != 1 || json.Unmarshal([]byte(out), &hello) != nil ||
		hello.Type != "hello" || hello.Role != "cortex" || hello.Cortex != "standalone" {
		t.Fatalf("watch --json --count 1: exit %d\n%s%s", code, out, stderr)
	}

	code, out, stderr = cli(t, "cluster", "watch", "--json", "--count", "4", "--last-event-id", n.Events().Boot()+"-0", "--addr", srv.URL)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 4 {
		t.Fatalf("watch --count 4 from the start: exit %d\n%s%s", code, out, stderr)
	}
	for i, l := range lines {
		var e apitypes.ClusterEvent
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("line %d is not JSON: %q", i, l)
		}
		if i > 0 && (e.Seq != uint64(i) || e.Source != "standalone") {
			t.Errorf("line %d: %+v; want the event numbered %d", i, e, i)
		}
	}

	code, out, _ = cli(t, "cluster", "watch", "--count", "1", "--addr", srv.URL)
	if code != 0 || !strings.Contains(out, " hello node=standalone role=cortex cortex=standalone epoch=") || !strings.Contains(out, " source=standalone id=") {
		t.Fatalf("watch --count 1 (text): exit %d %q", code, out)
	}
}

// TestWatchReconnects: a dropped stream is resumed with the last id; the
// drop is said on stderr and not counted. --timeout ends the watch: a
// failure only when --count events did not come.
func TestWatchReconnects(t *testing.T) {
	var conns atomic.Int32
	var resumed atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/cluster/events" {
			w.WriteHeader(404)
			return
		}
		k := conns.Add(1)
		if k == 2 {
			resumed.Store(r.Header.Get("Last-Event-ID"))
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for _, e := range []apitypes.ClusterEvent{
			{Type: "hello", Epoch: 4, Cortex: "muninn-01", Role: "lobe", Node: "muninn-02"},
			{Type: "cortex_changed", ID: fmt.Sprintf("b-%d", k), Epoch: 5, Cortex: "muninn-03", CortexAPI: "http://10.0.1.12:8475", PrevCortex: "muninn-01"},
		} {
			b, _ := json.Marshal(e)
			if e.ID != "" {
				fmt.Fprintf(w, "id: %s\n", e.ID)
			}
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", e.Type, b)
		}
		w.(http.Flusher).Flush()
		if k > 1 {
			<-r.Context().Done()
		}
	}))
	defer srv.Close()
	code, out, stderr := cli(t, "cluster", "watch", "--count", "4", "--timeout", "20s", "--addr", srv.URL)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 4 || !strings.Contains(stderr, "reconnecting") {
		t.Fatalf("watch across a drop: exit %d\n%s%s", code, out, stderr)
	}
	if !strings.Contains(lines[1], " cortex_changed cortex=muninn-03 api=http://10.0.1.12:8475 epoch=5 prev_cortex=muninn-01") {
		t.Errorf("cortex_changed line: %q", lines[1])
	}
	if got := resumed.Load(); got != "b-1" {
		t.Errorf("reconnected with Last-Event-ID %v; want b-1", got)
	}

	// --timeout: short of --count is a failure; without --count it is
	// how a watch ends.
	code, out, stderr = cli(t, "cluster", "watch", "--count", "100", "--timeout", "300ms", "--addr", srv.URL)
	if code != 1 || !strings.Contains(stderr, "timed out") || !strings.Contains(stderr, "of the 100 events") {
		t.Errorf("watch short of --count: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, stderr = cli(t, "cluster", "watch", "--timeout", "300ms", "--addr", srv.URL); code != 0 || !strings.Contains(out, "hello") {
		t.Errorf("watch --timeout: exit %d\n%s%s", code, out, stderr)
	}
	// A node without the endpoint.
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	if code, _, stderr = cli(t, "cluster", "watch", "--addr", plain.URL); code != 1 || !strings.Contains(stderr, "does not serve GET /v1/cluster/events") {
		t.Errorf("watch a node without events: exit %d %s", code, stderr)
	}
	if code, _, stderr = cli(t, "cluster", "watch", "--count", "-1", "--addr", plain.URL); code != 2 {
		t.Errorf("--count -1: exit %d %s", code, stderr)
	}
}
