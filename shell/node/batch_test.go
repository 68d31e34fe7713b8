package node

import (
	"context"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
)

// TestWriteBatch: every payload is its own entry, in order, answered on
// its own; a refused one does not stop the others.
func TestWriteBatch(t *testing.T) {
	n, err := Start(Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dup := NewEngramID()
	if _, err := n.Write(ctx, writeCmd(t, dup, "first"), core.Local); err != nil {
		t.Fatal(err)
	}
	payloads := [][]byte{writeCmd(t, NewEngramID(), "a"), writeCmd(t, dup, "again"), writeCmd(t, NewEngramID(), "c")}
	res := n.WriteBatch(ctx, payloads, core.Quorum)
	if len(res) != 3 || res[0].Err != nil || res[2].Err != nil || res[2].Pos.Seq <= res[0].Pos.Seq {
		t.Fatalf("results %+v", res)
	}
	if res[1].Err == nil || res[1].Err.Code != core.CodeConflict {
		t.Fatalf("the duplicate: %+v", res[1])
	}
	// A request that ended before anything was queued wrote nothing.
	done, stop := context.WithCancel(ctx)
	stop()
	for _, r := range n.WriteBatch(done, payloads[:1], core.Local) {
		if r.Err == nil || r.Err.Code != core.CodeUnavailable {
			t.Fatalf("after the request ended: %+v", r)
		}
	}
	// The node shutting down: nothing is queued.
	n.Close()
	for _, r := range n.WriteBatch(ctx, payloads[:1], core.Local) {
		if r.Err == nil || r.Err.Code != core.CodeUnavailable {
			t.Fatalf("after Close: %+v", r)
		}
	}
}
