package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/client"
)

// WatchCmd is `muninn cluster watch`: the node's cluster events, one line
// each, until Ctrl-C, --count or --timeout.
type WatchCmd struct {
	Count       int    `help:"Stop after this many events (the hello counts); 0: no limit." placeholder:"N"`
	LastEventID string `name:"last-event-id" help:"Resume after this event id (an id printed earlier with --json): the events the node still keeps after it come first." placeholder:"ID"`
}

// errWatchShort: --timeout ended the watch before --count events.
var errWatchShort = errors.New("the watch timed out")

func (c WatchCmd) Run(g *Globals) error {
	if c.Count < 0 {
		return usageError{fmt.Errorf("--count %d: give a number of events, or 0 for no limit", c.Count)}
	}
	// Runs until Ctrl-C unless --timeout is given.
	ctx, cancel := context.WithCancel(context.Background())
	if g.clus.Timeout > 0 {
		ctx, cancel = context.WithTimeout(context.Background(), g.clus.Timeout)
	}
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	cl := client.New(g.clus.Addr, client.WithToken(g.clus.Token))
	defer cl.Close()
	events, err := cl.EventsAfter(ctx, c.LastEventID)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%s did not answer within %s", g.clus.Addr, g.clus.Timeout)
		}
		if ce := (*client.Error)(nil); errors.As(err, &ce) && ce.Status == 404 {
			return fmt.Errorf("%w (the node at %s does not serve GET /v1/cluster/events: an older version?)", err, g.clus.Addr)
		}
		return g.explain(err)
	}
	n := 0
	for e := range events {
		if e.Type == client.EventDisconnected {
			// Not an event of the node: said on stderr, not counted.
			fmt.Fprintf(g.Err, "muninn: the stream from %s ended (%s); reconnecting\n", e.From, e.Reason)
			continue
		}
		if g.clus.JSON {
			fmt.Fprintf(g.Out, "%s\n", e.Raw)
		} else {
			fmt.Fprintln(g.Out, eventLine(e.ClusterEvent))
		}
		if n++; c.Count > 0 && n >= c.Count {
			return nil
		}
	}
	// The stream ended: Ctrl-C, or --timeout.
	if c.Count > 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w after %s with %d of the %d events asked for (--count)", errWatchShort, g.clus.Timeout, n, c.Count)
	}
	return nil
}

// eventLine is one event as `muninn cluster watch` prints it: the time,
// the type and the fields the type uses, key=value.
func eventLine(e apitypes.ClusterEvent) string {
	var b strings.Builder
	b.WriteString(e.Time.Local().Format("15:04:05.000"))
	b.WriteByte(' ')
	b.WriteString(e.Type)
	kv := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, " %s=%s", k, quoteIfSpaced(v))
		}
	}
	num := func(k string, v uint64) {
		if v != 0 {
			fmt.Fprintf(&b, " %s=%d", k, v)
		}
	}
	kv("node", e.Node)
	kv("role", e.Role)
	kv("cortex", e.Cortex)
	kv("api", e.CortexAPI)
	num("epoch", e.Epoch)
	kv("prev_cortex", e.PrevCortex)
	num("prev_epoch", e.PrevEpoch)
	if e.Voters > 0 {
		fmt.Fprintf(&b, " votes=%d/%d", e.Votes, e.Voters)
	}
	kv("kind", e.Kind)
	if e.Learner {
		b.WriteString(" learner")
	}
	if e.Count > 0 {
		fmt.Fprintf(&b, " count=%d from=%s to=%s", e.Count, e.From, e.To)
	}
	kv("last_event_id", e.LastEventID)
	kv("reason", e.Reason)
	kv("source", e.Source)
	kv("id", e.ID)
	return b.String()
}

func quoteIfSpaced(s string) string {
	if strings.ContainsAny(s, " \t\"") {
		return fmt.Sprintf("%q", s)
	}
	return s
}
