package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/node"
)

// GET /v1/cluster/events streams the node's cluster events as server-sent
// events (docs/api.md, "Cluster events"). Any node serves it, with what it
// knows; nothing is forwarded.

// Stream timings.
const (
	// eventsPing is how often a stream gets a comment, so proxies and
	// clients see it alive between events.
	eventsPing = 15 * time.Second
	// eventsWriteTimeout bounds one write to a subscriber: one that stops
	// reading is cut off instead of holding the handler.
	eventsWriteTimeout = 10 * time.Second
)

// streams ends the open event streams when the API closes or its HTTP
// server shuts down (Shutdown waits for handlers, and a stream never ends
// by itself).
type streams struct {
	once sync.Once
	quit chan struct{}
	ping time.Duration
}

func newStreams() *streams { return &streams{quit: make(chan struct{}), ping: eventsPing} }

func (st *streams) close() { st.once.Do(func() { close(st.quit) }) }

// shutdownKey holds, in the context of every request of a server made by
// NewHTTPServer, a channel closed when the server starts shutting down.
type shutdownKey struct{}

func shuttingDown(ctx context.Context) <-chan struct{} {
	ch, _ := ctx.Value(shutdownKey{}).(<-chan struct{})
	return ch // nil (never ready) outside NewHTTPServer
}

// handleEvents is GET /v1/cluster/events. The Last-Event-ID header (or
// ?last_event_id=) resumes after that event: the hello first, then a reset
// when events were missed, then the kept events after it, then live ones.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) error {
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("last_event_id")
	}
	sub, err := s.n.Events().Subscribe(last)
	switch {
	case errors.Is(err, node.ErrTooManySubscribers):
		return &apiError{status: http.StatusServiceUnavailable, code: apitypes.CodeTooManySubscribers,
			msg: fmt.Sprintf("%v (at most %d event streams per node)", err, node.MaxSubscribers)}
	case err != nil:
		return err
	}
	defer sub.Close()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	// nginx buffers responses unless told not to.
	h.Set("X-Accel-Buffering", "no")
	h["X-Content-Type-Options"] = noSniff
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	rc := http.NewResponseController(w)
	defer rc.SetWriteDeadline(time.Time{}) // the connection may serve another request
	// A failed write means the subscriber is gone: there is no one left
	// to tell, so the handler just ends.
	flush := func() bool {
		return rc.Flush() == nil
	}
	write := func(ev node.Event, withID bool) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(eventsWriteTimeout))
		return writeEvent(w, ev, withID) == nil
	}
	if !write(sub.Hello, len(sub.Replay) == 0) {
		return nil
	}
	if sub.Reset != nil && !write(*sub.Reset, false) {
		return nil
	}
	for _, ev := range sub.Replay {
		if !write(ev, true) {
			return nil
		}
	}
	if !flush() {
		return nil
	}
	ping := time.NewTicker(s.streams.ping)
	defer ping.Stop()
	shutdown := shuttingDown(r.Context())
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-shutdown:
			return nil
		case <-s.streams.quit:
			return nil
		case ev, ok := <-sub.C:
			if !ok {
				if sub.Overflowed() {
					// Fell behind: say so, and end; a reconnect with the
					// last id resumes from the ring.
					e := apitypes.ClusterEvent{Boot: s.n.Events().Boot(), Source: string(s.n.ID()), Time: time.Now(), Type: apitypes.EventOverflow,
						Reason: fmt.Sprintf("this subscriber fell %d events behind and was dropped: reconnect with the last event id to resume", node.SubscriberBuffer)}
					e.Epoch = sub.Hello.Epoch
					data, _ := json.Marshal(e)
					if write(node.Event{ClusterEvent: e, Data: data}, false) {
						flush()
					}
				}
				return nil
			}
			if !write(ev, true) || !flush() {
				return nil
			}
		case <-ping.C:
			_ = rc.SetWriteDeadline(time.Now().Add(eventsWriteTimeout))
			if _, err := io.WriteString(w, ": ping\n\n"); err != nil || !flush() {
				return nil
			}
		}
	}
}

// writeEvent writes one SSE event: its id (withID), its type and its JSON
// (one line: encoding/json writes no newline).
func writeEvent(w io.Writer, ev node.Event, withID bool) error {
	var b strings.Builder
	b.Grow(len(ev.Data) + len(ev.ID) + len(ev.Type) + 32)
	if withID && ev.ID != "" {
		b.WriteString("id: ")
		b.WriteString(ev.ID)
		b.WriteByte('\n')
	}
	b.WriteString("event: ")
	b.WriteString(ev.Type)
	b.WriteString("\ndata: ")
	b.Write(ev.Data)
	b.WriteString("\n\n")
	_, err := io.WriteString(w, b.String())
	return err
}
