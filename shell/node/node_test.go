package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/core/engram"
)

func writeCmd(t *testing.T, id, content string) []byte {
	t.Helper()
	b, err := engram.EncodeCommand(engram.Command{Op: engram.OpWrite, Vault: "default", ID: id, At: 1, Content: content, Confidence: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStandalone: a standalone node is a one-voter cluster of itself; it is
// Cortex at once, takes writes, and after a restart keeps its data and is
// writable again at once.
func TestStandalone(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for round := 0; round < 2; round++ {
		n, err := Start(Options{DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		id := NewEngramID()
		pos, err := n.Write(ctx, writeCmd(t, id, "hello"), core.Quorum)
		if err != nil {
			t.Fatalf("round %d: write: %v", round, err)
		}
		var e engram.Engram
		var ok bool
		if err := n.Read(ctx, core.Strong, 0, func() { e, ok, err = n.Store().Get("default", id) }); err != nil {
			t.Fatalf("strong read: %v", err)
		}
		if err != nil || !ok || e.Content != "hello" {
			t.Fatalf("read back %s: %v %v %+v", id, ok, err, e)
		}
		if st := n.Status(); st.Core.Role != core.RoleCortex {
			t.Fatalf("role %s", st.Core.Role)
		}
		t.Logf("round %d: wrote at %s", round, pos)
		n.Close()
	}
}

// TestStandaloneToCluster: a standalone node's data directory restarted in
// cluster mode under another node_id keeps its data and leads.
func TestStandaloneToCluster(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := Start(Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	id := NewEngramID()
	if _, err := n.Write(ctx, writeCmd(t, id, "kept"), core.Local); err != nil {
		t.Fatal(err)
	}
	n.Close()
	n, err = Start(Options{DataDir: dir, ID: "muninn-01", Cluster: true, BindAddr: freePort(t), Secret: []byte("0123456789abcdef-test")})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, err := n.Write(ctx, writeCmd(t, NewEngramID(), "new"), core.Quorum); err != nil {
		t.Fatalf("write as muninn-01: %v", err)
	}
	if _, ok, _ := n.Store().Get("default", id); !ok {
		t.Fatal("standalone data lost")
	}
	if ms := n.Status().Members; len(ms) != 1 || ms[0].ID != "muninn-01" {
		t.Fatalf("members %v", ms)
	}
}

// TestDecayOneEntryPerInterval: with many vaults the decay worker logs one
// entry per interval, not one per vault (issue 19 item 8), and the vaults
// listed are only the real ones.
func TestDecayOneEntryPerInterval(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n, err := Start(Options{DataDir: t.TempDir(), DecayInterval: 50 * time.Millisecond, DecayFactor: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	const vaults = 200
	for i := range vaults {
		b, err := engram.EncodeCommand(engram.Command{Op: engram.OpWrite, Vault: fmt.Sprintf("v%03d", i), ID: NewEngramID(), At: 1, Content: "x", Confidence: 1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Write(ctx, b, core.Local); err != nil {
			t.Fatal(err)
		}
	}
	start := n.Status().Core.Last.Seq
	deadline := time.Now().Add(10 * time.Second)
	for n.Status().Core.Last.Seq < start+3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	grew := n.Status().Core.Last.Seq - start
	if grew < 3 {
		t.Fatalf("the decay worker logged %d entries in 10 s at a 50 ms interval", grew)
	}
	// Each interval is one entry: a handful of intervals, never 200 entries.
	if grew >= vaults {
		t.Fatalf("%d entries for %d vaults: decay writes per vault", grew, vaults)
	}
	vs, err := n.Store().Vaults()
	if err != nil || len(vs) != vaults {
		t.Fatalf("Vaults: %d (%v), want %d", len(vs), err, vaults)
	}
}
