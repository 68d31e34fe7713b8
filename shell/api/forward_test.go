package api

import (
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
)

// TestCortexMoveWatch: a forwarded request learns that the Cortex moved
// (after the grace) without a goroutine of its own, and not when it did
// not move or once the request is over.
func TestCortexMoveWatch(t *testing.T) {
	e := standalone(t, Options{}) // its Cortex is "standalone"
	moved := make(chan core.NodeID, 2)
	start := time.Now()
	stop := e.api.onCortexMove("elsewhere", func(now core.NodeID) { moved <- now })
	select {
	case now := <-moved:
		if now != "standalone" || time.Since(start) < moveGrace {
			t.Fatalf("moved to %q after %v", now, time.Since(start))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the move was not seen")
	}
	stop()
	stop = e.api.onCortexMove("elsewhere", func(now core.NodeID) { moved <- now })
	stop() // over before the grace: not told
	stay := e.api.onCortexMove("standalone", func(now core.NodeID) { moved <- now })
	defer stay()
	select {
	case now := <-moved:
		t.Fatalf("told of a move to %q", now)
	case <-time.After(3 * moveGrace):
	}
	// A change the sampler sees re-arms the watch.
	e.api.lag.watch("x")
	e.api.lag.watch("standalone")
	select {
	case now := <-moved:
		t.Fatalf("told of a move to %q", now)
	case <-time.After(3 * moveGrace):
	}
}
