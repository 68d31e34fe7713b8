package cluster

import (
	"strings"
	"testing"

	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/client"
)

func ev(typ, source, boot string, seq, epoch uint64, cortex string) apitypes.ClusterEvent {
	e := apitypes.ClusterEvent{Type: typ, Source: source, Boot: boot, Seq: seq, Epoch: epoch, Cortex: cortex}
	if seq > 0 {
		e.ID = boot + "-" + itoa(seq)
	}
	return e
}

func itoa(n uint64) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func disc() apitypes.ClusterEvent { return apitypes.ClusterEvent{Type: client.EventDisconnected} }

// TestCheckEvents feeds the events checker synthetic streams: a clean
// pair (with a reconnection whose hello is newer than the replay after
// it, and a restart on a replaced store) passes; each property violated
// is reported.
func TestCheckEvents(t *testing.T) {
	clean := func() []EventStream {
		return []EventStream{
			{Node: "a", Events: []apitypes.ClusterEvent{
				ev("hello", "a", "b1", 3, 1, "a"),
				ev("election_started", "a", "b1", 4, 2, ""),
				disc(),
				// Resumed: the hello is the state now (epoch 3), the replay
				// that follows is history (epoch 2).
				ev("hello", "a", "b1", 6, 3, "c"),
				ev("cortex_changed", "a", "b1", 5, 2, "b"),
				ev("cortex_changed", "a", "b1", 6, 3, "c"),
			}},
			{Node: "c", Events: []apitypes.ClusterEvent{
				ev("hello", "c", "x1", 1, 1, "a"),
				ev("cortex_changed", "c", "x1", 2, 2, "b"),
				ev("elected", "c", "x1", 3, 3, "c"),
			}},
		}
	}
	v, an := checkEvents(clean(), nil)
	if len(an) != 0 {
		t.Fatalf("clean streams: %v", an)
	}
	if v.Elections[2] != "b" || v.Elections[3] != "c" || len(v.Subscribers) != 2 || v.Subscribers[0].Disconnects != 1 {
		t.Errorf("view: %+v", v)
	}
	// elected names the winner in Node.
	el := ev("elected", "c", "x1", 3, 3, "")
	el.Node = "c"
	s := clean()
	s[1].Events[2] = el
	if _, an := checkEvents(s, nil); len(an) != 0 {
		t.Errorf("elected with node: %v", an)
	}

	cases := []struct {
		name     string
		mutate   func([]EventStream) []EventStream
		replaced map[string]bool
		want     string
	}{
		{"epoch goes back", func(s []EventStream) []EventStream {
			s[1].Events = append(s[1].Events, ev("sdown", "c", "x1", 4, 2, "c"))
			return s
		}, nil, "epoch went back from 3 to 2"},
		{"epoch goes back across a restart", func(s []EventStream) []EventStream {
			s[1].Events = append(s[1].Events, disc(), ev("hello", "c", "x2", 1, 0, ""))
			return s
		}, nil, "epoch went back from 3 to 0"},
		{"two Cortexes for one epoch", func(s []EventStream) []EventStream {
			s[1].Events[1] = ev("cortex_changed", "c", "x1", 2, 2, "a")
			return s
		}, nil, "two Cortexes for epoch 2"},
		{"role_changed to cortex disagrees", func(s []EventStream) []EventStream {
			e := ev("role_changed", "c", "x1", 4, 3, "")
			e.Role, e.Node = "cortex", "a"
			s[1].Events = append(s[1].Events, e)
			return s
		}, nil, "two Cortexes for epoch 3"},
		{"duplicate event id", func(s []EventStream) []EventStream {
			s[0].Events = append(s[0].Events, disc(), ev("hello", "a", "b1", 6, 3, "c"), ev("cortex_changed", "a", "b1", 6, 3, "c"))
			return s
		}, nil, "received event b1-6"},
		{"cortex_changed twice in an epoch", func(s []EventStream) []EventStream {
			s[1].Events = append(s[1].Events, ev("cortex_changed", "c", "x1", 4, 3, "c"), ev("cortex_changed", "c", "x1", 5, 3, "c"))
			return s
		}, nil, "cortex_changed for epoch 3 twice"},
	}
	for _, tc := range cases {
		_, an := checkEvents(tc.mutate(clean()), tc.replaced)
		found := false
		for _, a := range an {
			if a.Check == "events" && strings.Contains(a.Detail, tc.want) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: want an anomaly containing %q, got %v", tc.name, tc.want, an)
		}
	}
	// A replaced store starts again at epoch 0 in its new run: no anomaly.
	s = clean()
	s[1].Events = append(s[1].Events, disc(), ev("hello", "c", "x2", 1, 0, ""), ev("cortex_changed", "c", "x2", 2, 3, "c"))
	if _, an := checkEvents(s, map[string]bool{"c": true}); len(an) != 0 {
		t.Errorf("replaced store: %v", an)
	}
}
