package client

import (
	"context"
	"errors"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
)

// The event watcher (WithEvents): a background subscription to the
// cluster's events that moves the client to a new Cortex the moment a node
// announces it, and wakes the calls sleeping in their retry backoff so
// they try it at once instead of after up to a second.

// WithEvents(true) starts a background watcher of the cluster's events
// (GET /v1/cluster/events): on cortex_changed, elected or a hello naming a
// Cortex of a newer epoch, later writes go to that Cortex, and a call
// waiting in its retry backoff is sent again at once. Call Close to stop
// it. Without it (the default) the client finds a new Cortex by retrying.
//
// It is off by default because it holds a connection and a goroutine for
// the client's life, which a client that is never closed would leak, and
// it helps only across failovers. A node that does not serve events (an
// older version, a proxy that buffers or refuses streams) leaves the
// client working as without it; the watcher keeps retrying (100 ms
// doubling to 5 s).
func WithEvents(on bool) Option { return func(c *Client) { c.events = on } }

// watcher is the running event watcher.
type watcher struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// startWatcher runs the watcher until Close.
func (c *Client) startWatcher() {
	ctx, cancel := context.WithCancel(context.Background())
	c.wake, c.wakeNow = context.WithCancel(context.Background())
	w := &watcher{cancel: cancel, done: make(chan struct{})}
	c.watch = w
	go func() {
		defer close(w.done)
		// Learn the members first, so the watcher can move to another
		// node when this one goes away.
		c.learn(ctx)
		c.follow(ctx, "", nil, func(e Event) bool {
			c.onEvent(e)
			return true
		})
	}()
}

// Close stops the event watcher (WithEvents) and closes the idle
// connections of the client's own HTTP client. A client without the
// watcher needs no Close; calling it is harmless. The client still works
// after Close, without the watcher.
func (c *Client) Close() error {
	c.mu.Lock()
	w := c.watch
	c.watch = nil
	c.mu.Unlock()
	if w != nil {
		w.cancel()
		<-w.done
	}
	if c.ownHC {
		c.hc.CloseIdleConnections()
	}
	return nil
}

// onEvent adopts the Cortex an event names.
func (c *Client) onEvent(e Event) {
	switch e.Type {
	case apitypes.EventHello, apitypes.EventCortexChanged:
		c.adopt(e.Cortex, e.CortexAPI, e.Epoch)
	case apitypes.EventElected:
		c.adopt(e.Node, e.CortexAPI, e.Epoch)
	case apitypes.EventRoleChanged:
		if e.Role == "cortex" {
			c.adopt(e.Node, e.CortexAPI, e.Epoch)
		}
	}
}

// adopt makes api the Cortex, unless an event of a newer epoch named
// another (events replayed after a reconnect, or a lagging node's hello,
// are older news), and wakes the calls waiting to retry.
func (c *Client) adopt(id, api string, epoch uint64) {
	if id == "" || api == "" {
		return
	}
	api = normalize(api)
	c.mu.Lock()
	if epoch < c.epoch || epoch == c.epoch && c.cortex == api {
		c.mu.Unlock()
		return
	}
	c.epoch = epoch
	c.cortex = api
	c.addKnown(api)
	wake := c.wakeNow
	c.wake, c.wakeNow = context.WithCancel(context.Background())
	c.mu.Unlock()
	wake()
}

// errWoken ends a retry's backoff wait: the watcher adopted a new Cortex.
var errWoken = errors.New("muninn: a new Cortex was announced")

// maxWakes bounds how often one call's retries are woken.
const maxWakes = 8

// wakeable returns a context for retry.Do that ends when the watcher adopts
// a new Cortex, and a func that releases it and reports whether that is
// what ended it. Without the watcher it is ctx itself.
func (c *Client) wakeable(ctx context.Context) (context.Context, func() bool) {
	c.mu.Lock()
	w := c.wake
	c.mu.Unlock()
	if w == nil {
		return ctx, func() bool { return false }
	}
	wctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(w, func() { cancel(errWoken) })
	return wctx, func() bool {
		woken := errors.Is(context.Cause(wctx), errWoken)
		stop()
		cancel(nil)
		return woken
	}
}

// retryWoken runs retry.Do's loop through run with budget, starting it
// again, with the rest of the budget, each time the watcher wakes it (up
// to maxWakes): the next attempt goes to the new Cortex at once.
func (c *Client) retryWoken(ctx context.Context, budget time.Duration, run func(ctx context.Context, budget time.Duration) error) error {
	deadline := time.Now().Add(budget)
	for wakes := 0; ; wakes++ {
		wctx, woken := c.wakeable(ctx)
		err := run(wctx, budget)
		if !woken() || err == nil || budget <= 0 || ctx.Err() != nil || wakes >= maxWakes {
			return err
		}
		if budget = time.Until(deadline); budget <= 0 {
			return err
		}
	}
}
