package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muninndb/muninn/shell/api"
	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/node"
)

// sseWrite writes one event and flushes it.
func sseWrite(w http.ResponseWriter, e apitypes.ClusterEvent) {
	b, _ := json.Marshal(e)
	if e.ID != "" {
		fmt.Fprintf(w, "id: %s\n", e.ID)
	}
	fmt.Fprintf(w, "event: %s\ndata: %s\n\n", e.Type, b)
	w.(http.Flusher).Flush()
}

func sseHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(200)
	w.(http.Flusher).Flush()
}

// TestEvents: Events streams a real node's events, starting with its
// hello; the channel closes when the context ends.
func TestEvents(t *testing.T) {
	c := New(standaloneAPI(t))
	x, cancel := contextWithCancel(t)
	ch, err := c.Events(x)
	if err != nil {
		t.Fatal(err)
	}
	e := <-ch
	if e.Type != apitypes.EventHello || e.Role != "cortex" || e.Cortex != "standalone" || e.CortexAPI != c.Addr() || e.ID == "" || !strings.Contains(string(e.Raw), `"type":"hello"`) || e.From != c.Addr() {
		t.Fatalf("first event %+v", e)
	}
	cancel()
	for range ch {
	}
}

// TestEventsResume: a dropped stream is reopened with the last id seen, and
// the client says it was disconnected.
func TestEventsResume(t *testing.T) {
	var conns atomic.Int32
	lastIDs := make(chan string, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/cluster/events" {
			w.WriteHeader(404)
			return
		}
		n := conns.Add(1)
		lastIDs <- r.Header.Get("Last-Event-ID")
		sseHeaders(w)
		sseWrite(w, apitypes.ClusterEvent{Type: "hello", ID: fmt.Sprintf("b-%d", n), Epoch: 3})
		sseWrite(w, apitypes.ClusterEvent{Type: "sdown", ID: fmt.Sprintf("b-%d", n+10), Epoch: 3})
		if n > 1 {
			<-r.Context().Done()
		}
		// The first stream ends here.
	}))
	defer srv.Close()
	x, cancel := contextWithCancel(t)
	ch, err := New(srv.URL).EventsAfter(x, "b-0")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for e := range ch {
		got = append(got, e.Type)
		if len(got) == 5 {
			cancel()
		}
	}
	if strings.Join(got[:5], " ") != "hello sdown disconnected hello sdown" {
		t.Fatalf("events %v", got)
	}
	if a, b := <-lastIDs, <-lastIDs; a != "b-0" || b != "b-11" {
		t.Fatalf("Last-Event-ID sent: %q then %q; want b-0 then b-11", a, b)
	}
}

// TestEventsSilentStream: a stream that sends nothing, not even a ping (a
// proxy that buffers, a dead connection), is reopened.
func TestEventsSilentStream(t *testing.T) {
	defer func(d time.Duration) { eventsIdle = d }(eventsIdle)
	eventsIdle = 200 * time.Millisecond
	var conns atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conns.Add(1)
		sseHeaders(w)
		<-r.Context().Done()
	}))
	defer srv.Close()
	x, cancel := contextWithCancel(t)
	defer cancel()
	ch, err := New(srv.URL).Events(x)
	if err != nil {
		t.Fatal(err)
	}
	e := <-ch
	if e.Type != EventDisconnected || !strings.Contains(e.Reason, "sent nothing, not even a ping") {
		t.Fatalf("first event of a silent stream: %+v", e)
	}
	waitFor(t, "a second connection", func() bool { return conns.Load() >= 2 })
	cancel()
	for range ch {
	}
}

// TestEventsNotServed: a node without the endpoint answers the first
// connection with an error.
func TestEventsNotServed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		apiErr(w, 404, "not_found", "", "")
	}))
	defer srv.Close()
	_, err := New(srv.URL).Events(ctx(t))
	if !IsCode(err, "not_found") {
		t.Fatalf("events from a node without them: %v", err)
	}
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<html>")
	}))
	defer plain.Close()
	if _, err := New(plain.URL).Events(ctx(t)); err == nil || !strings.Contains(err.Error(), "not an event stream") {
		t.Fatalf("events from a proxy page: %v", err)
	}
}

// TestWatcherWakesRetry: a write waiting in its retry backoff (the old
// Cortex answers no_cortex) is sent to the new Cortex as soon as the
// watcher hears cortex_changed, instead of after its backoff. The write's
// id is the same on every attempt, so the resend stays idempotent.
func TestWatcherWakesRetry(t *testing.T) {
	type hit struct {
		id string
		at time.Time
	}
	var mu sync.Mutex
	var newHits []hit
	newCortex := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/engrams" {
			w.WriteHeader(503)
			return
		}
		var req apitypes.WriteRequest
		json.NewDecoder(r.Body).Decode(&req)
		mu.Lock()
		newHits = append(newHits, hit{req.ID, time.Now()})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(201)
		json.NewEncoder(w).Encode(apitypes.WriteResult{ID: req.ID, Vault: "default", Epoch: 4, Seq: 1, Durability: "local"})
	}))
	defer newCortex.Close()

	announce := make(chan struct{})
	var announced atomic.Int64 // unix ns
	var oldIDs []string
	var once sync.Once
	var old *httptest.Server
	old = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/cluster/events":
			sseHeaders(w)
			sseWrite(w, apitypes.ClusterEvent{Type: "hello", ID: "a-0", Epoch: 3, Cortex: "a", CortexAPI: old.URL})
			select {
			case <-announce:
				announced.Store(time.Now().UnixNano())
				sseWrite(w, apitypes.ClusterEvent{Type: "cortex_changed", ID: "a-1", Epoch: 4, Cortex: "b", CortexAPI: newCortex.URL, PrevCortex: "a"})
			case <-r.Context().Done():
				return
			}
			<-r.Context().Done()
		case "/api/engrams":
			var req apitypes.WriteRequest
			json.NewDecoder(r.Body).Decode(&req)
			mu.Lock()
			oldIDs = append(oldIDs, req.ID)
			k := len(oldIDs)
			mu.Unlock()
			apiErr(w, 503, "no_cortex", "", "")
			w.(http.Flusher).Flush()
			if k == 6 {
				// The client now sleeps 0.5 to 1 s before its 7th
				// attempt; announce the new Cortex early in that sleep.
				once.Do(func() { time.AfterFunc(20*time.Millisecond, func() { close(announce) }) })
			}
		default:
			w.WriteHeader(503)
		}
	}))
	defer old.Close()

	c := New(old.URL, WithEvents(true))
	defer c.Close()
	waitFor(t, "the watcher's hello", func() bool { return c.currentCortex() == old.URL })
	res, err := c.Write(ctx(t), apitypes.WriteRequest{Content: "redirected"})
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(newHits) != 1 || len(oldIDs) != 6 {
		t.Fatalf("attempts: %d on the old Cortex, %d on the new; want 6 then 1", len(oldIDs), len(newHits))
	}
	for _, id := range oldIDs {
		if id != res.ID || newHits[0].id != res.ID {
			t.Fatalf("ids sent: %v then %s; want %s every time", oldIDs, newHits[0].id, res.ID)
		}
	}
	// Without the wake the 7th attempt would come 480 ms or more after
	// the announcement (the rest of a 0.5 to 1 s backoff); with it, as
	// soon as the event is read (a few ms). 400 ms leaves room for a slow
	// machine and still fails if the backoff is slept out.
	took := newHits[0].at.Sub(time.Unix(0, announced.Load()))
	t.Logf("the write reached the new Cortex %s after cortex_changed was sent", took)
	if took > 400*time.Millisecond {
		t.Fatalf("the write reached the new Cortex %s after cortex_changed: its backoff was not woken", took)
	}
}

// clientGoroutines counts the goroutines running the client's code (not
// its tests) or an HTTP client connection.
func clientGoroutines() int {
	n, _ := clientGoroutineStacks()
	return n
}

func clientGoroutineStacks() (int, []string) {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	var stacks []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		ours := strings.Contains(g, "net/http.(*persistConn)")
		for _, line := range strings.Split(g, "\n") {
			if strings.Contains(line, "/shell/client/") && !strings.Contains(line, "_test.go") {
				ours = true
			}
		}
		if ours {
			n++
			stacks = append(stacks, g)
		}
	}
	return n, stacks
}

// TestWatcherClose: Close stops the watcher and leaves no goroutine
// behind, also when the node does not serve events (the client then works
// as without the watcher).
func TestWatcherClose(t *testing.T) {
	real := standaloneAPI(t)
	noEvents := newFake(t, real, func(n int64, w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/v1/cluster/events" {
			apiErr(w, 404, "not_found", "", "")
			return true
		}
		return false
	})
	before := clientGoroutines()
	for _, addr := range []string{real, noEvents.srv.URL} {
		c := New(addr, WithEvents(true))
		defer c.Close() // before the servers' cleanup, which waits for open streams
		if _, err := c.Write(ctx(t), apitypes.WriteRequest{Content: "with a watcher"}); err != nil {
			t.Fatalf("%s: write: %v", addr, err)
		}
		if addr == real {
			waitFor(t, "the watcher's hello", func() bool {
				c.mu.Lock()
				defer c.mu.Unlock()
				return c.epoch > 0
			})
		}
		c.Close()
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		// The fake's proxy connections are not the client's.
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		if clientGoroutines() <= before {
			break
		}
		if time.Now().After(deadline) {
			_, stacks := clientGoroutineStacks()
			t.Fatalf("%d goroutines of the client or its connections left, %d before:\n%s", len(stacks), before, strings.Join(stacks, "\n\n"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// standaloneAPI is standalone with the node knowing its API's URL, which
// its events then name.
func standaloneAPI(t *testing.T) string {
	t.Helper()
	var h atomic.Pointer[api.Server]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := h.Load(); a != nil {
			a.ServeHTTP(w, r)
			return
		}
		w.WriteHeader(503)
	}))
	n, err := node.Start(node.Options{DataDir: t.TempDir(), APIAddr: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	a := api.New(n, api.Options{})
	h.Store(a)
	t.Cleanup(func() {
		a.Close() // ends open streams first
		srv.Close()
		n.Close()
	})
	waitFor(t, "the node to lead", func() bool { return n.Status().Core.Cortex != "" })
	// The event hub sees the election once its Ready is carried out, a
	// step after the status says Cortex: wait for it too, or the hello
	// may still say lobe (CI flake).
	waitFor(t, "the event hub to see the election", func() bool { return n.Events().Hello().Role == "cortex" })
	return srv.URL
}

func contextWithCancel(t *testing.T) (context.Context, context.CancelFunc) {
	x, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return x, cancel
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestEventsDataBound: a stream whose event never ends (data lines with no
// blank line) is cut off at maxEventData instead of filling memory.
func TestEventsDataBound(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sseHeaders(w)
		sseWrite(w, apitypes.ClusterEvent{ID: "b-1", Type: apitypes.EventHello})
		line := "data: " + strings.Repeat("x", 64<<10) + "\n"
		for range 3 * maxEventData / len(line) {
			if _, err := io.WriteString(w, line); err != nil {
				return
			}
		}
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	ctx, cancel := contextWithCancel(t)
	defer cancel()
	ch, err := New(srv.URL).Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-ch:
			if e.Type != EventDisconnected {
				continue
			}
			if !strings.Contains(e.Reason, "more than") {
				t.Fatalf("disconnected: %s", e.Reason)
			}
			return
		case <-timeout:
			t.Fatal("the client kept reading an event that never ends")
		}
	}
}
