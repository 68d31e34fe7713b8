package api

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/node"
)

// sse is one server-sent event as read off the wire; a comment (": ping")
// comes alone, in comment.
type sse struct {
	id, event, data string
	hasID           bool
	comment         string
	ev              apitypes.ClusterEvent
}

// stream is an open GET /v1/cluster/events.
type stream struct {
	t      *testing.T
	res    *http.Response
	cancel context.CancelFunc
	c      chan sse
}

// openEvents opens the stream of base with the given Last-Event-ID ("" for
// none) and reads it in the background.
func openEvents(t *testing.T, base, last string) *stream {
	t.Helper()
	return openEventsURL(t, base+"/v1/cluster/events", last)
}

func openEventsURL(t *testing.T, url, last string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	if last != "" {
		req.Header.Set("Last-Event-ID", last)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &stream{t: t, res: res, cancel: cancel, c: make(chan sse, 4096)}
	t.Cleanup(s.close)
	if res.StatusCode != 200 {
		return s
	}
	go func() {
		defer close(s.c)
		br := bufio.NewReader(res.Body)
		var cur sse
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "":
				if cur.data != "" {
					json.Unmarshal([]byte(cur.data), &cur.ev)
				}
				s.c <- cur
				cur = sse{}
			case strings.HasPrefix(line, ":"):
				s.c <- sse{comment: strings.TrimSpace(line[1:])}
			case strings.HasPrefix(line, "id: "):
				cur.id, cur.hasID = line[4:], true
			case strings.HasPrefix(line, "event: "):
				cur.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				cur.data = line[6:]
			}
		}
	}()
	return s
}

func (s *stream) close() {
	s.cancel()
	s.res.Body.Close()
}

// next returns the next event (comments skipped unless comments).
func (s *stream) next(comments bool) (sse, bool) {
	s.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e, ok := <-s.c:
			if !ok {
				return sse{}, false
			}
			if e.comment != "" && !comments {
				continue
			}
			return e, true
		case <-timeout:
			s.t.Fatal("no event within 10 s")
		}
	}
}

func (s *stream) mustNext() sse {
	s.t.Helper()
	e, ok := s.next(false)
	if !ok {
		s.t.Fatal("the stream ended")
	}
	return e
}

// until reads events until one of type typ satisfying ok, and returns
// every event read.
func (s *stream) until(typ string, ok func(sse) bool) []sse {
	s.t.Helper()
	var out []sse
	for {
		e := s.mustNext()
		out = append(out, e)
		if e.event == typ && (ok == nil || ok(e)) {
			return out
		}
	}
}

// TestEventsStandalone: the stream starts with a hello carrying the node's
// state; Last-Event-ID resumes from the ring, or says events were missed.
func TestEventsStandalone(t *testing.T) {
	e := standalone(t, Options{})
	e.api.streams.ping = 20 * time.Millisecond
	boot := e.n.Events().Boot()

	s := openEvents(t, e.srv.URL, "")
	if ct := s.res.Header.Get("Content-Type"); s.res.StatusCode != 200 || ct != "text/event-stream" || s.res.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("status %d, content type %q", s.res.StatusCode, ct)
	}
	hello := s.mustNext()
	if hello.event != "hello" || hello.ev.Role != "cortex" || hello.ev.Cortex != "standalone" || hello.ev.Node != "standalone" ||
		hello.ev.Epoch == 0 || !hello.hasID || hello.id != hello.ev.ID || !strings.HasPrefix(hello.id, boot+"-") || hello.ev.Seq == 0 {
		t.Fatalf("hello: %+v", hello)
	}
	// Idle: pings.
	if p, ok := s.next(true); !ok || p.comment != "ping" {
		t.Fatalf("want a ping comment, got %+v", p)
	}
	s.close()

	// Resuming from the start replays the election; the hello carries no
	// id, so a drop during the replay resumes where the client was.
	s = openEventsURL(t, e.srv.URL+"/v1/cluster/events?last_event_id="+boot+"-0", "")
	hello = s.mustNext()
	if hello.event != "hello" || hello.hasID {
		t.Fatalf("hello before a replay: %+v", hello)
	}
	replay := s.until("cortex_changed", nil)
	var last uint64
	for _, r := range replay {
		if !r.hasID || r.ev.Seq <= last || r.id != r.ev.ID || r.ev.Type != r.event {
			t.Fatalf("replayed event %+v after seq %d", r, last)
		}
		last = r.ev.Seq
	}
	if cc := replay[len(replay)-1].ev; cc.Cortex != "standalone" || cc.Source != "standalone" || cc.Boot != boot {
		t.Fatalf("cortex_changed %+v", cc)
	}
	s.close()

	// An id from another run: a reset after the hello, no replay.
	s = openEvents(t, e.srv.URL, "0123456789abcdef-7")
	if h := s.mustNext(); h.event != "hello" {
		t.Fatalf("first event %+v", h)
	}
	r := s.mustNext()
	if r.event != "reset" || r.hasID || r.ev.LastEventID != "0123456789abcdef-7" || !strings.Contains(r.ev.Reason, "another node or an earlier run") {
		t.Fatalf("reset: %+v", r)
	}
	if p, _ := s.next(true); p.comment != "ping" {
		t.Fatalf("after the reset: %+v; want nothing but pings", p)
	}
	s.close()

	// Closing the API ends the open streams.
	s = openEvents(t, e.srv.URL, "")
	s.mustNext()
	e.api.Close()
	for {
		ev, ok := s.next(true)
		if !ok {
			break
		}
		if ev.comment != "ping" {
			t.Fatalf("after Close: %+v", ev)
		}
	}
}

// TestEventsSubscriberLimit: over MaxSubscribers streams a node answers
// 503 too_many_subscribers, in the API's error format.
func TestEventsSubscriberLimit(t *testing.T) {
	e := standalone(t, Options{})
	var open []*stream
	for i := 0; i < node.MaxSubscribers; i++ {
		s := openEvents(t, e.srv.URL, "")
		if s.res.StatusCode != 200 {
			t.Fatalf("stream %d: %d", i, s.res.StatusCode)
		}
		open = append(open, s)
	}
	r := e.do("GET", "/v1/cluster/events", "")
	expect(t, r, 503, apitypes.CodeTooManySubscribers)
	open[0].close()
	waitFor(t, "a subscription to end", func() bool { return e.n.Events().Subscribers() < node.MaxSubscribers })
	s := openEvents(t, e.srv.URL, "")
	if s.res.StatusCode != 200 {
		t.Fatalf("after one closed: %d", s.res.StatusCode)
	}
}

// TestEventsShutdown: the HTTP server's graceful shutdown ends open
// streams instead of waiting for them.
func TestEventsShutdown(t *testing.T) {
	n, err := node.Start(node.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	a := New(n, Options{})
	defer a.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewHTTPServer(a, Limits{}, nil)
	go srv.Serve(ln)
	s := openEvents(t, "http://"+ln.Addr().String(), "")
	if h := s.mustNext(); h.event != "hello" {
		t.Fatalf("first event %+v", h)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with an open stream: %v after %s", err, time.Since(start))
	}
	// Events the starting node sent before the shutdown (its election,
	// seen by the hub a step after the hello) may still be buffered; after
	// them the stream must end (next fails the test after 10 s of silence).
	for i := 0; ; i++ {
		e, ok := s.next(false)
		if !ok {
			break
		}
		if i == 64 {
			t.Fatalf("the stream outlived the server: still sending (%s)", e.event)
		}
	}
}

// TestEventsFailover: a Lobe's stream shows a graceful failover: the
// handoff moves the Cortex, and the Lobe reports cortex_changed once for
// the new epoch, with the new Cortex's API.
func TestEventsFailover(t *testing.T) {
	ms := startCluster(t, core.KindAuto, core.KindAuto, core.KindAuto)
	cx := waitAgree(t, ms, "")
	ls := lobes(ms, cx)
	target, watcher := ls[0], ls[1]
	s := openEvents(t, watcher.url, "")
	hello := s.mustNext()
	if hello.ev.Role != "lobe" || hello.ev.Cortex != cx.id || hello.ev.CortexAPI != cx.url {
		t.Fatalf("hello on a Lobe: %+v", hello.ev)
	}
	r := do(t, cx.url, "POST", "/v1/cluster/failover", `{"to":"`+target.id+`"}`)
	if r.status != 200 {
		t.Fatalf("failover: %d %s", r.status, r.body)
	}
	got := s.until("cortex_changed", func(e sse) bool { return e.ev.Cortex == target.id })
	cc := got[len(got)-1].ev
	if cc.CortexAPI != target.url || cc.PrevCortex != cx.id || cc.Epoch <= hello.ev.Epoch || cc.Source != watcher.id {
		t.Fatalf("cortex_changed %+v after hello %+v", cc, hello.ev)
	}
	sawEpoch := false
	for _, e := range got {
		if e.event == "cortex_changed" && e != got[len(got)-1] {
			t.Errorf("two cortex_changed: %+v", got)
		}
		sawEpoch = sawEpoch || e.event == "epoch_changed" && e.ev.Epoch == cc.Epoch
	}
	if !sawEpoch {
		t.Errorf("no epoch_changed to %d before cortex_changed: %+v", cc.Epoch, got)
	}
	// The new Cortex's own stream, resumed from its start, tells it was
	// elected in that epoch.
	ts := openEvents(t, target.url, target.n.Events().Boot()+"-0")
	ts.mustNext()
	el := ts.until("elected", func(e sse) bool { return e.ev.Epoch == cc.Epoch })
	if e := el[len(el)-1].ev; e.Node != target.id || e.CortexAPI != target.url || e.Votes == 0 {
		t.Fatalf("elected %+v", e)
	}
}
