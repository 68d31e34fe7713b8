package api

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/node"
)

// GET /v1/cluster/info shows each member's cluster.priority (0: never
// Cortex; omitted for a Sentinel) and the effective timing: lease_ttl
// capping the SDOWN window, the read lease, no lease to wait out.
func TestClusterInfoPriority(t *testing.T) {
	ms := startClusterWith(t, func(i int, o *node.Options) {
		// lease_ttl 250ms < 3 × 100ms: it caps the window.
		o.LeaseTTL = 250 * time.Millisecond
		switch i {
		case 0:
			o.Priority = 10
		case 1:
			o.NeverCortex = true
		case 2:
			o.Priority = 7 // a Sentinel's is ignored
		}
	}, core.KindAuto, core.KindAuto, core.KindSentinel)
	// muninn-02 never runs and muninn-03 holds no data: muninn-01 is the
	// only candidate.
	if c := waitAgree(t, ms, ""); c != ms[0] {
		t.Fatalf("cortex %s, want %s (the other data voter has priority 0)", c.id, ms[0].id)
	}
	want := map[string]*int{"muninn-01": ptr(10), "muninn-02": ptr(0), "muninn-03": nil}
	for _, m := range ms {
		var info apitypes.Info
		var raw struct {
			Members []map[string]json.RawMessage `json:"members"`
		}
		// Peers' priorities arrive with their heartbeats.
		waitFor(t, "every priority known on "+m.id, func() bool {
			r := do(t, m.url, "GET", "/v1/cluster/info", "")
			r.json(t, &info)
			r.json(t, &raw)
			for _, mm := range info.Members {
				if (mm.Priority == nil) != (want[mm.ID] == nil) {
					return false
				}
			}
			return true
		})
		for i, mm := range info.Members {
			w := want[mm.ID]
			if w != nil && *mm.Priority != *w {
				t.Errorf("on %s: %s priority %d, want %d", m.id, mm.ID, *mm.Priority, *w)
			}
			// 0 is shown, not omitted; a Sentinel's is omitted, not null.
			if p, ok := raw.Members[i]["priority"]; ok != (w != nil) || (mm.ID == "muninn-02" && string(p) != "0") {
				t.Errorf("on %s: %s raw priority %q present %v", m.id, mm.ID, p, ok)
			}
		}
		if info.HeartbeatMs != 100 || info.DownAfterMs != 250 || info.LeaseMs != 50 || info.LeaseWaitMs != 0 {
			t.Errorf("on %s: heartbeat %d down_after %d lease %d lease_wait %d, want 100 250 50 0",
				m.id, info.HeartbeatMs, info.DownAfterMs, info.LeaseMs, info.LeaseWaitMs)
		}
	}
}

// A peer that has not said its priority (no heartbeat yet, though its
// appends may be answered) has none to show, and a Cortex reporting 0 is
// a version without priorities (a Cortex runs, so it is not 0).
func TestViewPriorityUnknown(t *testing.T) {
	v := view{
		st: core.Status{ID: "a", Cortex: "c", Priority: 0, Peers: nil},
		peers: map[core.NodeID]core.PeerStatus{
			"b": {ID: "b", Seen: 0, Priority: 0},
			"c": {ID: "c", Seen: 5, Priority: 0, PriorityKnown: true},
			"d": {ID: "d", Seen: 5, Priority: 0, PriorityKnown: true},
			"e": {ID: "e", Seen: 5, Priority: 30, PriorityKnown: true},
			"f": {ID: "f", Seen: 5, Priority: 0},
		},
	}
	for id, want := range map[core.NodeID]*int{"a": ptr(0), "b": nil, "c": nil, "d": ptr(0), "e": ptr(30), "f": nil, "x": nil} {
		got := v.priority(core.Member{ID: id, Kind: core.KindAuto})
		if (got == nil) != (want == nil) || (got != nil && *got != *want) {
			t.Errorf("%s: got %v, want %v", id, got, want)
		}
	}
	if got := v.priority(core.Member{ID: "e", Kind: core.KindObserver}); got != nil {
		t.Errorf("observer: %d", *got)
	}
	// The lease wait counts down from the published floor, rounded up.
	v.now = 1000
	v.st.CommitFloor = 1000 + core.Time(1500*time.Microsecond)
	if got := msCeil(v.leaseWait()); got != 2 {
		t.Errorf("lease wait %d ms, want 2", got)
	}
	v.now = v.st.CommitFloor + 1
	if got := v.leaseWait(); got != 0 {
		t.Errorf("past the floor: %v", got)
	}
}
