package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
)

// sseServer streams a hello, then the events sent on ch, as
// GET /v1/cluster/events does.
func sseServer(t *testing.T, ch <-chan apitypes.ClusterEvent) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/cluster/events" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: hello\ndata: {\"type\":\"hello\",\"epoch\":3}\n\n: ping\n\n")
		w.(http.Flusher).Flush()
		for {
			select {
			case <-r.Context().Done():
				return
			case ev := <-ch:
				b, _ := json.Marshal(ev)
				fmt.Fprintf(w, "id: x-%d\nevent: %s\ndata: %s\n\n", ev.Seq, ev.Type, b)
				w.(http.Flusher).Flush()
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// The watch waits for the hello, ignores announcements of the old epoch or
// of the victim and other event types, and notes the first new Cortex.
func TestCortexWatch(t *testing.T) {
	ch := make(chan apitypes.ClusterEvent, 8)
	srv := sseServer(t, ch)
	w := watchCortex(context.Background(), []string{srv.URL}, 3, "bench-01")
	defer w.stop()
	if !w.waitReady(5 * time.Second) {
		t.Fatal("no hello")
	}
	ch <- apitypes.ClusterEvent{Seq: 1, Type: apitypes.EventSDown, Epoch: 3, Cortex: "bench-01"}
	ch <- apitypes.ClusterEvent{Seq: 2, Type: apitypes.EventCortexChanged, Epoch: 3, Cortex: "bench-02"}
	ch <- apitypes.ClusterEvent{Seq: 3, Type: apitypes.EventCortexChanged, Epoch: 4, Cortex: "bench-01"}
	time.Sleep(100 * time.Millisecond)
	if _, _, ok := w.first(); ok {
		t.Fatal("an old epoch, the victim or another type was taken for a new Cortex")
	}
	before := time.Now()
	ch <- apitypes.ClusterEvent{Seq: 4, Type: apitypes.EventElected, Epoch: 5, Node: "bench-03"}
	ch <- apitypes.ClusterEvent{Seq: 5, Type: apitypes.EventCortexChanged, Epoch: 5, Cortex: "bench-03"}
	deadline := time.Now().Add(5 * time.Second)
	for {
		at, typ, ok := w.first()
		if ok {
			if typ != apitypes.EventElected || at.Before(before) {
				t.Fatalf("first: %s at %v (sent after %v)", typ, at, before)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the new Cortex was not noted")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A node without the endpoint (404) makes the probe skip the column, once,
// with a note.
func TestEventsProbeAbsent(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	w := watchCortex(context.Background(), []string{srv.URL}, 1, "x")
	if !w.waitReady(5*time.Second) || !w.missing() {
		t.Fatal("a 404 was not noted")
	}
	w.stop()
}

func TestCompletedIn(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := &timedWriter{acks: []ackRec{{at: t0}, {at: t0.Add(ms(10))}, {at: t0.Add(ms(50))}}, fails: []time.Time{t0.Add(ms(20)), t0.Add(ms(60))}}
	b := &timedWriter{fails: []time.Time{t0.Add(ms(30))}}
	if n, f := completedIn([]*timedWriter{a, b}, t0.Add(ms(5)), t0.Add(ms(50))); n != 4 || f != 2 {
		t.Fatalf("completed %d, failed %d; want 4 and 2", n, f)
	}
}

// The report shows every measure's percentiles, the stops and the failed
// writes, in text and JSON.
func TestFailoverReportText(t *testing.T) {
	r := &FailoverReport{Config: FailoverConfig{Nodes: 3, HeartbeatMs: 1000, Kills: 2, Stops: 1, StopFor: 2 * time.Second, WriteEvery: 10 * time.Millisecond}, Bound: 3100 * time.Millisecond,
		Kills: []KillResult{
			{N: 1, Victim: "bench-01", OldEpoch: 1, Elected: ms(40), Event: ms(35), EventType: "cortex_changed", FirstWrite: ms(600), Writes: 70, Failed: 1},
			{N: 2, Victim: "bench-02", OldEpoch: 2, Elected: ms(50), FirstWrite: ms(700), Writes: 80},
		},
		Stops:  []StopResult{{N: 1, Victim: "bench-03", OldEpoch: 3, StoppedFor: 2 * time.Second, NewEpoch: 3, Pause: ms(2100), Writes: 150}},
		Quorum: WriteCounts{Durability: "quorum", Attempted: 1000, Acked: 999, Failed: 1, Ambiguous: 1}, Writes: 1000, Failed: 1,
		EventsNote: "some note"}
	r.KillToElect = Summarize([]time.Duration{ms(40), ms(50)})
	r.KillToEvent = Summarize([]time.Duration{ms(35)})
	r.KillToWrite = Summarize([]time.Duration{ms(600), ms(700)})
	r.MinToWrite = ms(600)
	r.StopPause = Summarize([]time.Duration{ms(2100)})
	var b bytes.Buffer
	r.WriteText(&b)
	out := b.String()
	for _, want := range []string{"event received", "failed/writes", "1/70", "p90", "a cluster event announces it", "35ms",
		"0 of 1 stops caused an election", "2.10s", "1 failed, 1 of them ambiguous", "over the whole run: 1 of 1000", "note: some note"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	j, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"kill_to_event":{"count":1`, `"p90_ms":`, `"stops":[{"n":1`, `"election":false`, `"failed_writes":1`, `"event_type":"cortex_changed"`} {
		if !strings.Contains(string(j), want) {
			t.Errorf("JSON lacks %s:\n%s", want, j)
		}
	}
}
