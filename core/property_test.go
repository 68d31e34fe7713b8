package core

import (
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// shapes are the seed's configurations, plus an observer.
var shapes = []Members{
	{{ID: "n1"}, {ID: "n2"}, {ID: "n3"}},
	{{ID: "n1"}, {ID: "n2"}, {ID: "s1", Kind: KindSentinel}},
	{{ID: "n1"}, {ID: "n2"}, {ID: "n3"}, {ID: "n4"}, {ID: "n5"}},
	{{ID: "n1"}, {ID: "n2"}, {ID: "n3"}, {ID: "o1", Kind: KindObserver}},
}

// TestPropertySafety drives small clusters through random crashes,
// restarts, partitions, message loss and writes, then heals. It checks
// election safety (one Cortex per epoch), log matching, and that every
// quorum-acknowledged write is in the log of every live data node after
// healing.
func TestPropertySafety(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		shape := rapid.SampledFrom(shapes).Draw(rt, "shape")
		hb := 100 * time.Millisecond
		c := newCluster(shape, hb, time.Duration(rapid.IntRange(1, 20).Draw(rt, "latency_ms"))*time.Millisecond, rapid.Uint64().Draw(rt, "seed"))
		loss := rapid.IntRange(0, 20).Draw(rt, "loss_pct")
		lossSeed := rapid.Uint64().Draw(rt, "loss_seed")
		c.lossy = func(m Message) bool {
			lossSeed = lossSeed*6364136223846793005 + 1442695040888963407
			return int(lossSeed>>33%100) < loss
		}
		ids := make([]NodeID, len(shape))
		for i, m := range shape {
			ids[i] = m.ID
		}
		var quorumAcked []uint64
		steps := rapid.IntRange(5, 40).Draw(rt, "steps")
		for i := 0; i < steps; i++ {
			switch rapid.IntRange(0, 5).Draw(rt, "op") {
			case 0:
				id := rapid.SampledFrom(ids).Draw(rt, "crash")
				if c.node(id).up {
					c.crash(id)
				}
			case 1:
				id := rapid.SampledFrom(ids).Draw(rt, "restart")
				if !c.node(id).up {
					c.restart(id)
				}
			case 2:
				cut := rapid.IntRange(1, len(ids)-1).Draw(rt, "cut")
				c.heal()
				c.isolate(ids[:cut], ids[cut:])
			case 3:
				c.heal()
			default:
				if cx := c.cortex(); cx != nil {
					d := Durability(rapid.IntRange(0, 1).Draw(rt, "durability"))
					id := c.propose(cx.id, fmt.Sprintf("w%d", i), d)
					if d == Quorum {
						quorumAcked = append(quorumAcked, id)
					}
				}
			}
			c.runUntil(c.now.Add(time.Duration(rapid.IntRange(1, 2000).Draw(rt, "ms")) * time.Millisecond))
			if len(c.failures) > 0 {
				rt.Fatalf("safety: %v\n%s", c.failures, c.trace)
			}
		}
		// Heal everything and let the cluster settle.
		c.heal()
		c.lossy = nil
		for _, id := range ids {
			if !c.node(id).up {
				c.restart(id)
			}
		}
		c.runUntil(c.now.Add(30 * hb))
		if len(c.failures) > 0 {
			rt.Fatalf("safety: %v", c.failures)
		}
		cx := c.cortex()
		if cx == nil {
			rt.Fatalf("no Cortex 3 s after healing:\n%s", c.statusLines())
		}
		for _, wid := range quorumAcked {
			r, ok := c.resultOf(wid)
			if !ok || r.Err != nil {
				continue // not acknowledged
			}
			for _, tn := range c.nodes {
				if tn.cfg.Kind == KindSentinel {
					continue
				}
				if !tn.n.log.has(r.Pos) {
					rt.Fatalf("quorum write %d acknowledged at %s is missing on %s\n%s", wid, r.Pos, tn.id, c.statusLines())
				}
			}
		}
	})
}

// TestPropertyFailoverTime: whenever a connected quorum remains, a crashed
// Cortex is replaced within 3 x heartbeat + 500 ms (docs/protocol.md, "Timing"), whatever the
// shape, the latency and the moment of the crash.
func TestPropertyFailoverTime(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		shape := rapid.SampledFrom(shapes).Draw(rt, "shape")
		hb := time.Duration(rapid.IntRange(100, 1000).Draw(rt, "hb_ms")) * time.Millisecond
		// Rank stagger (heartbeat/4) assumes one-way latency below it, and
		// failover takes 3 heartbeats plus about four one-way latencies
		// (last heartbeat, SDOWN report, vote round trip): the 500 ms of
		// the bound holds for one-way latency under 100 ms.
		latency := time.Duration(rapid.IntRange(1, min(100, int(hb/time.Millisecond)/5)).Draw(rt, "latency_ms")) * time.Millisecond
		c := newCluster(shape, hb, latency, rapid.Uint64().Draw(rt, "seed"))
		c.runUntil(c.now.Add(10 * hb))
		cx := c.cortex()
		if cx == nil {
			rt.Fatalf("no Cortex after bootstrap")
		}
		if shape.DataVoters() < 3 && shape.Voters() == 2 {
			return // two voters: losing one loses the quorum
		}
		writes := rapid.IntRange(0, 20).Draw(rt, "writes")
		for i := 0; i < writes; i++ {
			c.propose(cx.id, "w", Local)
		}
		c.runUntil(c.now.Add(time.Duration(rapid.IntRange(0, int(hb/time.Millisecond)).Draw(rt, "offset_ms")) * time.Millisecond))
		c.crash(cx.id)
		crashAt := c.now
		bound := 3*hb + 500*time.Millisecond
		c.runUntil(crashAt.Add(bound))
		nx := c.cortex()
		if nx == nil || nx.id == cx.id {
			rt.Fatalf("no new Cortex within %v of the crash:\n%s\n%s", bound, c.statusLines(), c.trace)
		}
		if len(c.failures) > 0 {
			rt.Fatalf("safety: %v", c.failures)
		}
	})
}
