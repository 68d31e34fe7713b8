package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/retry"
)

// Cluster events: GET /v1/cluster/events, a server-sent event stream
// (docs/api.md, "Cluster events").

// Event is one cluster event.
type Event struct {
	apitypes.ClusterEvent
	// Raw is the event's JSON as the node sent it; empty for
	// EventDisconnected, which the client makes.
	Raw json.RawMessage
	// From is the API URL of the node that streamed it.
	From string
}

// EventDisconnected is an event the client makes, not a node: the stream
// from From ended (Reason says why); the client reconnects, resuming after
// the last event id it saw.
const EventDisconnected = "disconnected"

// eventsIdle ends a stream that sent nothing, not even a ping (every
// 15 s), for this long: a dead connection or a proxy that buffers. A
// variable for tests.
var eventsIdle = 45 * time.Second

// maxEventData bounds one event's data (a line, or the lines of one
// event together): a cluster event is well under a kilobyte.
const maxEventData = 1 << 20

// Event stream timings.
const (
	// eventsHeaders bounds the wait for a stream's answer.
	eventsHeaders = 5 * time.Second
	// eventsRedialMin and eventsRedialMax bound the wait between
	// reconnections (jittered, doubling).
	eventsRedialMin = 100 * time.Millisecond
	eventsRedialMax = 5 * time.Second
)

// Events subscribes to the cluster events of the node given to New: first
// its hello (its role, epoch and Cortex now), then every event it learns.
// When the stream drops, the client sends an EventDisconnected, waits
// (100 ms doubling to 5 s) and reconnects, to the next node it knows when
// one does not answer, resuming after the last event id it saw (a reset
// event says when events were missed). The channel is closed when ctx
// ends. The error is the first connection's: a node that does not serve
// events answers 404 (an *Error).
//
// A slow reader does not hold the node: a stream that falls 128 events
// behind is ended by the node and resumed by the client.
func (c *Client) Events(ctx context.Context) (<-chan Event, error) {
	return c.EventsAfter(ctx, "")
}

// EventsAfter is Events resuming after the event id lastID (the ID of an
// event received earlier, perhaps by another process).
func (c *Client) EventsAfter(ctx context.Context, lastID string) (<-chan Event, error) {
	ch := make(chan Event, 64)
	first := make(chan error, 1)
	go func() {
		defer close(ch)
		c.follow(ctx, lastID, first, func(e Event) bool {
			select {
			case ch <- e:
				return true
			case <-ctx.Done():
				return false
			}
		})
	}()
	if err := <-first; err != nil {
		return nil, err
	}
	return ch, nil
}

// follow streams events to fn, reconnecting, until ctx ends or fn returns
// false. When first is set, the first connection's outcome is sent on it,
// and follow returns at once if it failed.
func (c *Client) follow(ctx context.Context, last string, first chan<- error, fn func(Event) bool) {
	b := retry.Redial(eventsRedialMin, eventsRedialMax).BackOff()
	target := c.base
	for {
		opened, stop := false, false
		start := time.Now()
		id, err := c.stream(ctx, target, last, func() {
			opened = true
			if first != nil {
				first <- nil
				first = nil
			}
		}, func(e Event) bool {
			stop = !fn(e)
			return !stop
		})
		if id != "" {
			last = id
		}
		if first != nil {
			first <- err
			return
		}
		if stop || ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("the node ended the stream")
		}
		if !fn(Event{ClusterEvent: apitypes.ClusterEvent{Type: EventDisconnected, Time: time.Now(), Reason: err.Error()}, From: target}) {
			return
		}
		if opened && time.Since(start) > eventsRedialMax {
			b.Reset() // it ran a while: reconnect soon
		}
		if !opened {
			target = c.next(target)
		}
		t := time.NewTimer(b.NextBackOff())
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// streamClient is the client's HTTP client without its overall timeout,
// which would cut a stream: streams are bounded by eventsHeaders and
// eventsIdle instead.
func (c *Client) streamClient() *http.Client {
	sc := *c.hc
	sc.Timeout = 0
	return &sc
}

// stream reads one event stream from base, resuming after last, calling
// opened once the node answered with a stream, and fn for each event until
// fn returns false. It returns the last event id seen and what ended the
// stream (nil when ctx ended or fn stopped it).
func (c *Client) stream(ctx context.Context, base, last string, opened func(), fn func(Event) bool) (string, error) {
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(sctx, "GET", base+"/v1/cluster/events", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "text/event-stream")
	if last != "" {
		req.Header.Set("Last-Event-ID", last)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	// Neither the answer nor, later, a line (a ping at least every 15 s)
	// may take longer than its bound.
	var streaming atomic.Bool
	idle := time.AfterFunc(eventsHeaders, func() {
		if streaming.Load() {
			cancel(fmt.Errorf("%s sent nothing, not even a ping, for %s", base, eventsIdle))
			return
		}
		cancel(fmt.Errorf("no answer from %s within %s", base, eventsHeaders))
	})
	defer idle.Stop()
	res, err := c.streamClient().Do(req)
	if err != nil {
		if cause := context.Cause(sctx); cause != nil && ctx.Err() == nil {
			err = cause
		}
		return "", err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
		return "", decodeError(res.StatusCode, res.Header.Get(apitypes.HeaderNode), body)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return "", fmt.Errorf("%s answered %q, not an event stream (a node without GET /v1/cluster/events, or a proxy in between)", base, ct)
	}
	opened()
	streaming.Store(true)
	idle.Reset(eventsIdle)
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 0, 4096), maxEventData)
	var id, typ string
	var data strings.Builder
	for sc.Scan() {
		idle.Reset(eventsIdle)
		line := sc.Text()
		if line == "" {
			if typ != "" || data.Len() > 0 {
				e := Event{Raw: json.RawMessage(data.String()), From: base}
				if err := json.Unmarshal(e.Raw, &e.ClusterEvent); err != nil {
					return last, fmt.Errorf("%s sent an event whose data does not decode: %w", base, err)
				}
				if e.Type == "" {
					e.Type = typ
				}
				if id != "" {
					last = id
				}
				if !fn(e) {
					return last, nil
				}
			}
			id, typ = "", ""
			data.Reset()
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "": // a comment: a ping
		case "id":
			id = value
		case "event":
			typ = value
		case "data":
			if data.Len()+len(value) >= maxEventData {
				return last, fmt.Errorf("%s sent an event of more than %d bytes of data: not a cluster event (a proxy in between?)", base, maxEventData)
			}
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(value)
		}
	}
	err = sc.Err()
	if cause := context.Cause(sctx); cause != nil && ctx.Err() == nil {
		err = cause
	}
	if ctx.Err() != nil {
		err = nil
	}
	return last, err
}
