package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/client"
)

// The events checker: through every segment, subscribers read GET
// /v1/cluster/events (the Go client's Events, which reconnects by itself
// and resumes with Last-Event-ID) on two different nodes, and what they
// saw must be consistent with the epochs:
//
//   - epochs never decrease in what one subscriber hears from one node
//     (one source; across its restarts too, unless its store was
//     replaced: a fresh store starts again at epoch 0). The hello after a
//     reconnection to the same run of a node is its state now and the
//     replayed events that follow are history, so such a hello is not
//     ordered with them;
//   - every election result any subscriber sees (cortex_changed and
//     elected, and role_changed to cortex) names one Cortex per epoch:
//     two different Cortexes for one epoch, across all subscribers, is
//     an anomaly;
//   - no subscriber sees one event id twice (a resumed stream replays
//     only what came after the last id it saw), nor one node's
//     cortex_changed twice for the same epoch in one run of that node.

// maxSubscriberEvents bounds what one subscriber keeps.
const maxSubscriberEvents = 100000

// EventStream is what one subscriber received, in order.
type EventStream struct {
	// Node is the node subscribed to.
	Node   string                  `json:"node"`
	Events []apitypes.ClusterEvent `json:"-"`
	// Dropped counts events past maxSubscriberEvents.
	Dropped int `json:"dropped,omitempty"`
}

// EventsView is the events checker's summary of a segment.
type EventsView struct {
	Subscribers []SubscriberView `json:"subscribers"`
	// Elections are the Cortex of each epoch the subscribers saw elected.
	Elections map[uint64]string `json:"elections"`
}

// SubscriberView is one subscriber's counts.
type SubscriberView struct {
	Node        string `json:"node"`
	Events      int    `json:"events"`
	Disconnects int    `json:"disconnects"`
	Resets      int    `json:"resets"`
	Error       string `json:"error,omitempty"`
}

func (v *EventsView) lines() []string {
	if v == nil {
		return nil
	}
	var subs []string
	for _, s := range v.Subscribers {
		x := fmt.Sprintf("%s: %d events, %d disconnects, %d resets", s.Node, s.Events, s.Disconnects, s.Resets)
		if s.Error != "" {
			x += " (" + s.Error + ")"
		}
		subs = append(subs, x)
	}
	var el []string
	for _, e := range slices.Sorted(mapKeysU(v.Elections)) {
		el = append(el, fmt.Sprintf("%d:%s", e, v.Elections[e]))
	}
	return []string{strings.Join(subs, "; "), "elected (epoch:Cortex) " + strings.Join(el, " ")}
}

func mapKeysU[V any](m map[uint64]V) func(func(uint64) bool) {
	return func(yield func(uint64) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// electionOf returns the Cortex an event says won the event's epoch.
func electionOf(e apitypes.ClusterEvent) (string, bool) {
	switch e.Type {
	case "cortex_changed":
		return e.Cortex, e.Cortex != ""
	case "elected":
		if e.Node != "" {
			return e.Node, true
		}
		return e.Cortex, e.Cortex != ""
	case "role_changed":
		if e.Role == "cortex" && e.Node != "" {
			return e.Node, true
		}
	}
	return "", false
}

// checkEvents checks the subscribers' streams. storeReplaced names the
// nodes whose store was replaced during the segment (their epoch starts
// again on the new store).
func checkEvents(streams []EventStream, storeReplaced map[string]bool) (*EventsView, []Anomaly) {
	v := &EventsView{Elections: map[uint64]string{}}
	var an []Anomaly
	type who struct {
		sub    string
		source string
		id     string
	}
	elected := map[uint64]who{}
	for _, st := range streams {
		sv := SubscriberView{Node: st.Node}
		// Per source node: the highest epoch heard and the boot it was
		// heard in.
		type seen struct {
			epoch uint64
			boot  string
		}
		high := map[string]seen{}
		ids := map[string]bool{}
		changed := map[string]bool{} // boot/epoch of cortex_changed
		firstHello := true
		for i, e := range st.Events {
			switch e.Type {
			case client.EventDisconnected:
				sv.Disconnects++
				firstHello = false
				continue
			case "reset":
				sv.Resets++
				continue
			case "overflow":
				continue
			}
			sv.Events++
			if e.Type == "hello" {
				// Its id is the last event's; its state is now, and the
				// replay after it is history: only a stream's first
				// hello, or one of a new run of the node (nothing is
				// replayed from another run), is ordered with the rest.
				h, known := high[e.Source]
				if !firstHello && known && h.boot == e.Boot {
					continue
				}
				firstHello = false
			} else if e.ID != "" {
				if ids[e.ID] {
					an = append(an, Anomaly{"events", fmt.Sprintf("subscriber on %s received event %s (%s, epoch %d) twice (event %d of its stream)", st.Node, e.ID, e.Type, e.Epoch, i)})
				}
				ids[e.ID] = true
			}
			if h, ok := high[e.Source]; ok && e.Epoch < h.epoch && !(h.boot != e.Boot && storeReplaced[e.Source]) {
				an = append(an, Anomaly{"events", fmt.Sprintf("subscriber on %s: %s's epoch went back from %d to %d (event %s, %s, event %d of its stream)", st.Node, e.Source, h.epoch, e.Epoch, e.ID, e.Type, i)})
			}
			if h, ok := high[e.Source]; !ok || e.Epoch >= h.epoch || (h.boot != e.Boot && storeReplaced[e.Source]) {
				high[e.Source] = seen{e.Epoch, e.Boot}
			}
			if e.Type == "cortex_changed" {
				k := fmt.Sprintf("%s/%s/%d", e.Source, e.Boot, e.Epoch)
				if changed[k] {
					an = append(an, Anomaly{"events", fmt.Sprintf("subscriber on %s: %s reported cortex_changed for epoch %d twice in one run (boot %s; second: event %s)", st.Node, e.Source, e.Epoch, e.Boot, e.ID)})
				}
				changed[k] = true
			}
			if c, ok := electionOf(e); ok && e.Epoch > 0 {
				if w, dup := elected[e.Epoch]; dup && v.Elections[e.Epoch] != c {
					an = append(an, Anomaly{"events", fmt.Sprintf("two Cortexes for epoch %d: %s (%s event %s, seen on %s) and %s (%s event %s, seen on %s)",
						e.Epoch, v.Elections[e.Epoch], w.source, w.id, w.sub, c, e.Source, e.ID, st.Node)})
					continue
				} else if !dup {
					elected[e.Epoch] = who{st.Node, e.Source, e.ID}
					v.Elections[e.Epoch] = c
				}
			}
		}
		v.Subscribers = append(v.Subscribers, sv)
	}
	return v, an
}

// subscribers runs one event subscriber per node given until stop.
type subscribers struct {
	mu      sync.Mutex
	streams []EventStream
	errs    []string
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// subscribe starts a subscriber on each of nodes.
func subscribe(ctx context.Context, api *API, nodes []Node) *subscribers {
	ctx, cancel := context.WithCancel(ctx)
	s := &subscribers{cancel: cancel, streams: make([]EventStream, len(nodes)), errs: make([]string, len(nodes))}
	for i, n := range nodes {
		s.streams[i].Node = n.ID
		ch, err := api.Client(n).Events(ctx)
		if err != nil {
			s.errs[i] = err.Error()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for e := range ch {
				s.mu.Lock()
				if len(s.streams[i].Events) < maxSubscriberEvents {
					s.streams[i].Events = append(s.streams[i].Events, e.ClusterEvent)
				} else {
					s.streams[i].Dropped++
				}
				s.mu.Unlock()
			}
		}()
	}
	return s
}

// stop ends the subscribers and returns their streams.
func (s *subscribers) stop() ([]EventStream, []string) {
	s.cancel()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams, s.errs
}

// eventNodes picks the nodes to subscribe on: the first and the last of
// the topology (different nodes; the first is often the Cortex).
func eventNodes(t Topology) []Node {
	if len(t.Nodes) < 2 {
		return t.Nodes
	}
	return []Node{t.Nodes[0], t.Nodes[len(t.Nodes)-1]}
}
