package node

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/apitypes"
)

func emitN(h *EventHub, k int) {
	for i := 0; i < k; i++ {
		h.emit(apitypes.ClusterEvent{Type: apitypes.EventSDown, Reason: fmt.Sprint(i)})
	}
}

func seqs(es []Event) []uint64 {
	var out []uint64
	for _, e := range es {
		out = append(out, e.Seq)
	}
	return out
}

func TestEventHubIDs(t *testing.T) {
	h := newEventHub("n1")
	emitN(h, 3)
	s, err := h.Subscribe(h.Boot() + "-0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Reset != nil || len(s.Replay) != 3 {
		t.Fatalf("resume from 0: reset %v, replay %v", s.Reset, seqs(s.Replay))
	}
	for i, e := range s.Replay {
		if e.Seq != uint64(i+1) || e.ID != fmt.Sprintf("%s-%d", h.Boot(), i+1) || e.Source != "n1" || e.Boot != h.Boot() || e.Time.IsZero() {
			t.Errorf("event %d: %+v", i, e.ClusterEvent)
		}
		if !strings.Contains(string(e.Data), `"id":"`+e.ID+`"`) || !strings.Contains(string(e.Data), `"type":"sdown"`) {
			t.Errorf("event %d data %s", i, e.Data)
		}
	}
	if s.Hello.Type != apitypes.EventHello || s.Hello.ID != h.Boot()+"-3" {
		t.Errorf("hello %+v: want the last id %s-3", s.Hello.ClusterEvent, h.Boot())
	}
	if other := newEventHub("n1"); other.Boot() == h.Boot() {
		t.Errorf("two hubs share the boot token %s", h.Boot())
	}
}

func TestEventHubResume(t *testing.T) {
	h := newEventHub("n1")
	emitN(h, 10)
	s, _ := h.Subscribe(h.Boot() + "-5")
	if s.Reset != nil || fmt.Sprint(seqs(s.Replay)) != "[6 7 8 9 10]" {
		t.Fatalf("resume after 5: reset %v replay %v", s.Reset, seqs(s.Replay))
	}
	s.Close()
	s, _ = h.Subscribe(h.Boot() + "-10")
	if s.Reset != nil || len(s.Replay) != 0 {
		t.Fatalf("resume at the last: reset %v replay %v", s.Reset, seqs(s.Replay))
	}
	s.Close()
	// No id: no replay.
	s, _ = h.Subscribe("")
	if s.Reset != nil || len(s.Replay) != 0 {
		t.Fatalf("no id: reset %v replay %v", s.Reset, seqs(s.Replay))
	}
	s.Close()
	for _, id := range []string{"0123456789abcdef-3", "garbage", h.Boot() + "-11", h.Boot() + "-x"} {
		s, _ = h.Subscribe(id)
		if s.Reset == nil || s.Reset.Type != apitypes.EventReset || s.Reset.LastEventID != id || len(s.Replay) != 0 {
			t.Errorf("id %q: reset %+v replay %v; want a reset and no replay", id, s.Reset, seqs(s.Replay))
		}
		s.Close()
	}
}

func TestEventHubRingBound(t *testing.T) {
	h := newEventHub("n1")
	emitN(h, EventRing+10)
	s, _ := h.Subscribe(h.Boot() + "-3")
	defer s.Close()
	if s.Reset == nil || !strings.Contains(s.Reset.Reason, "7 events after") {
		t.Fatalf("resume before the ring: reset %+v; want 7 missed", s.Reset)
	}
	if len(s.Replay) != EventRing || s.Replay[0].Seq != 11 || s.Replay[EventRing-1].Seq != EventRing+10 {
		t.Fatalf("replay: %d events, %d..%d; want the ring, 11..%d", len(s.Replay), s.Replay[0].Seq, s.Replay[len(s.Replay)-1].Seq, EventRing+10)
	}
	// The oldest kept is resumable without a reset.
	s2, _ := h.Subscribe(h.Boot() + "-10")
	defer s2.Close()
	if s2.Reset != nil || len(s2.Replay) != EventRing {
		t.Fatalf("resume at the ring's start: reset %v, %d events", s2.Reset, len(s2.Replay))
	}
}

func TestEventHubSlowSubscriber(t *testing.T) {
	h := newEventHub("n1")
	slow, _ := h.Subscribe("")
	fast, _ := h.Subscribe("")
	defer fast.Close()
	got := 0
	// emit never blocks: the slow subscriber is dropped instead.
	for i := 0; i < SubscriberBuffer*3; i++ {
		emitN(h, 1)
		<-fast.C
		got++
	}
	n := 0
	for range slow.C {
		n++
	}
	if !slow.Overflowed() || n != SubscriberBuffer {
		t.Fatalf("slow subscriber: overflowed %v after %d events; want dropped after its buffer of %d", slow.Overflowed(), n, SubscriberBuffer)
	}
	if fast.Overflowed() || got != SubscriberBuffer*3 || h.Subscribers() != 1 {
		t.Fatalf("fast subscriber: overflowed %v, %d events, %d subscribers", fast.Overflowed(), got, h.Subscribers())
	}
	// The dropped one resumes from the ring with its last id.
	again, _ := h.Subscribe(fmt.Sprintf("%s-%d", h.Boot(), n))
	defer again.Close()
	if again.Reset != nil || len(again.Replay) != SubscriberBuffer*2 {
		t.Fatalf("resume after overflow: reset %v, %d events", again.Reset, len(again.Replay))
	}
}

func TestEventHubLimitAndClose(t *testing.T) {
	h := newEventHub("n1")
	h.max = 2
	a, _ := h.Subscribe("")
	b, _ := h.Subscribe("")
	if _, err := h.Subscribe(""); !errors.Is(err, ErrTooManySubscribers) {
		t.Fatalf("third subscriber: %v", err)
	}
	a.Close()
	a.Close() // twice is harmless
	c, err := h.Subscribe("")
	if err != nil {
		t.Fatal(err)
	}
	h.close()
	for _, s := range []*Subscription{b, c} {
		if _, ok := <-s.C; ok || s.Overflowed() {
			t.Fatalf("after close: channel open %v, overflowed %v", ok, s.Overflowed())
		}
	}
	if _, err := h.Subscribe(""); !errors.Is(err, ErrStopped) {
		t.Fatalf("subscribe after close: %v", err)
	}
	emitN(h, 1) // no panic, nothing kept
}

func types(es []Event) string {
	var out []string
	for _, e := range es {
		out = append(out, e.Type)
	}
	return strings.Join(out, " ")
}

// drain returns what the subscriber has been sent so far.
func drain(s *Subscription) []Event {
	var out []Event
	for {
		select {
		case e := <-s.C:
			out = append(out, e)
		default:
			return out
		}
	}
}

func TestEventHubDerived(t *testing.T) {
	h := newEventHub("b")
	ms := core.Members{{ID: "a", Kind: core.KindAuto}, {ID: "b", Kind: core.KindAuto}, {ID: "c", Kind: core.KindAuto}}
	api := map[core.NodeID]string{"a": "http://a", "c": "http://c"}
	h.observe(core.Status{Role: core.RoleLobe, Epoch: 3, Cortex: "a", Members: ms}, api)
	s, _ := h.Subscribe("")
	defer s.Close()
	if s.Hello.Role != "lobe" || s.Hello.Epoch != 3 || s.Hello.Cortex != "a" || s.Hello.CortexAPI != "http://a" || s.Hello.Seq != 0 {
		t.Fatalf("hello: %+v", s.Hello.ClusterEvent)
	}
	// The state the node starts in is no event; the same status again
	// neither.
	h.observe(core.Status{Role: core.RoleLobe, Epoch: 3, Cortex: "a", Members: ms}, api)
	if got := drain(s); len(got) != 0 {
		t.Fatalf("unchanged status: %s", types(got))
	}
	// SDOWN (a crash hint's reason, or the missed beats), an election,
	// then a Lobe following the new Cortex: one cortex_changed.
	h.fromCore(core.Event{Kind: core.EventSDown, Epoch: 3, Node: "a", Detail: "crash hint: reset"}, "http://b", nil)
	h.fromCore(core.Event{Kind: core.EventSDown, Epoch: 3, Node: "a"}, "http://b", nil)
	h.observe(core.Status{Role: core.RoleLobe, Epoch: 4, Cortex: "", Members: ms}, api)
	h.observe(core.Status{Role: core.RoleLobe, Epoch: 4, Cortex: "c", Members: ms}, api)
	h.observe(core.Status{Role: core.RoleLobe, Epoch: 4, Cortex: "c", Members: ms}, api)
	got := drain(s)
	if types(got) != "sdown sdown epoch_changed cortex_changed" {
		t.Fatalf("failover seen by a Lobe: %s", types(got))
	}
	if got[0].Reason != "crash hint: reset" || got[1].Reason != "no heartbeat for 3 beats" || got[0].Cortex != "a" {
		t.Errorf("sdown reasons: %q, %q", got[0].Reason, got[1].Reason)
	}
	if e := got[2]; e.Epoch != 4 || e.PrevEpoch != 3 {
		t.Errorf("epoch_changed %+v", e.ClusterEvent)
	}
	if e := got[3]; e.Cortex != "c" || e.CortexAPI != "http://c" || e.PrevCortex != "a" || e.Epoch != 4 {
		t.Errorf("cortex_changed %+v", e.ClusterEvent)
	}
	// This node elected: the core's events, then the status.
	h.fromCore(core.Event{Kind: core.EventElectionStarted, Epoch: 5, Node: "b"}, "http://b", nil)
	h.fromCore(core.Event{Kind: core.EventElected, Epoch: 5, Node: "b", Votes: 2, Voters: 3}, "http://b", nil)
	h.fromCore(core.Event{Kind: core.EventRoleChanged, Epoch: 5, Node: "b", Role: core.RoleCortex}, "http://b", nil)
	api["b"] = "http://b"
	h.observe(core.Status{Role: core.RoleCortex, Epoch: 5, Cortex: "b", Members: ms}, api)
	got = drain(s)
	if types(got) != "epoch_changed election_started elected role_changed cortex_changed" {
		t.Fatalf("elected: %s", types(got))
	}
	if e := got[2]; e.Node != "b" || e.Votes != 2 || e.Voters != 3 || e.Cortex != "b" || e.CortexAPI != "http://b" || e.Epoch != 5 {
		t.Errorf("elected %+v", e.ClusterEvent)
	}
	if e := got[3]; e.Role != "cortex" || e.Node != "b" || e.CortexAPI != "http://b" {
		t.Errorf("role_changed %+v", e.ClusterEvent)
	}
	// The same Cortex in a new epoch is a new Cortex for clients.
	h.observe(core.Status{Role: core.RoleCortex, Epoch: 6, Cortex: "b", Members: ms}, api)
	if got = drain(s); types(got) != "epoch_changed cortex_changed" || got[1].PrevCortex != "b" {
		t.Fatalf("re-elected: %s", types(got))
	}
	// Membership: a learner added, promoted, a member removed.
	learner := append(slices.Clone(ms), core.Member{ID: "d", Kind: core.KindAuto, Learner: true})
	h.fromCore(core.Event{Kind: core.EventMembershipChanged, Epoch: 6}, "", func() core.Members { return learner })
	h.observe(core.Status{Role: core.RoleCortex, Epoch: 6, Cortex: "b", Members: learner}, api)
	voter := append(slices.Clone(ms), core.Member{ID: "d", Kind: core.KindAuto})
	h.observe(core.Status{Role: core.RoleCortex, Epoch: 6, Cortex: "b", Members: voter}, api)
	h.observe(core.Status{Role: core.RoleCortex, Epoch: 6, Cortex: "b", Members: voter[1:]}, api)
	got = drain(s)
	if types(got) != "member_added member_promoted member_removed" {
		t.Fatalf("membership: %s", types(got))
	}
	if got[0].Node != "d" || !got[0].Learner || got[0].Kind != "auto" || got[1].Node != "d" || got[2].Node != "a" {
		t.Errorf("membership events: %+v", got)
	}
	// Quarantine: count and range.
	h.quarantined([]core.Pos{{Epoch: 5, Seq: 7}, {Epoch: 6, Seq: 8}, {Epoch: 6, Seq: 9}}, "truncated by epoch 7")
	got = drain(s)
	if len(got) != 1 || got[0].Type != "quarantined" || got[0].Count != 3 || got[0].From != "5.7" || got[0].To != "6.9" ||
		got[0].FromEpoch != 5 || got[0].ToEpoch != 6 || got[0].Reason != "truncated by epoch 7" {
		t.Fatalf("quarantined: %+v", got)
	}
	h.quarantined(nil, "")
	if got = drain(s); len(got) != 0 {
		t.Fatalf("nothing quarantined: %s", types(got))
	}
}

// TestNodeEvents: a standalone node reports its election through the hub,
// and its stop ends the subscriptions.
func TestNodeEvents(t *testing.T) {
	n, err := Start(Options{DataDir: t.TempDir(), APIAddr: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	deadline := time.Now().Add(10 * time.Second)
	// The hub sees the election once its Ready is carried out, a step
	// after the status says Cortex.
	for n.Events().Hello().Role != "cortex" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	s, err := n.Events().Subscribe(n.Events().Boot() + "-0")
	if err != nil {
		t.Fatal(err)
	}
	got := types(s.Replay)
	for _, want := range []string{"epoch_changed", "election_started", "elected", "role_changed", "cortex_changed"} {
		if !strings.Contains(got, want) {
			t.Errorf("events of a standalone start: %s; want %s", got, want)
		}
	}
	if strings.Count(got, "cortex_changed") != 1 {
		t.Errorf("events of a standalone start: %s; want one cortex_changed", got)
	}
	for _, e := range s.Replay {
		if e.Type == "cortex_changed" && (e.Cortex != "standalone" || e.CortexAPI != "http://127.0.0.1:1" || e.Epoch == 0) {
			t.Errorf("cortex_changed %+v", e.ClusterEvent)
		}
	}
	if s.Hello.Role != "cortex" || s.Hello.Cortex != "standalone" || s.Hello.CortexAPI != "http://127.0.0.1:1" {
		t.Errorf("hello %+v", s.Hello.ClusterEvent)
	}
	n.Close()
	select {
	case _, ok := <-s.C:
		if ok {
			t.Fatal("an event after the node stopped")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the subscription outlived the node")
	}
}

// TestEventHubHostileLastID: a huge or malformed last event id is answered
// with a bounded reset, not echoed whole.
func TestEventHubHostileLastID(t *testing.T) {
	h := newEventHub("n1")
	emitN(h, 3)
	for _, id := range []string{
		strings.Repeat("x", 60<<10) + "-1",
		h.Boot() + "-" + strings.Repeat("9", 60<<10),
		h.Boot() + "--1", "-", "\n-\n", h.Boot() + "-18446744073709551616",
	} {
		s, err := h.Subscribe(id)
		if err != nil {
			t.Fatal(err)
		}
		if s.Reset == nil || len(s.Replay) != 0 {
			t.Fatalf("id of %d bytes: reset %v, replay %v", len(id), s.Reset, seqs(s.Replay))
		}
		if len(s.Reset.Data) > 1024 || len(s.Reset.LastEventID) > maxEventID+3 {
			t.Fatalf("id of %d bytes: a reset of %d bytes echoes %d", len(id), len(s.Reset.Data), len(s.Reset.LastEventID))
		}
		s.Close()
	}
}
