package engram

import (
	"strings"
	"testing"

	"github.com/muninndb/muninn/core"
)

// A quarantined update replays only onto the state it was based on, once.
func TestReplayIsConditional(t *testing.T) {
	at := core.Pos{Epoch: 1, Seq: 5}
	create := Command{Op: OpWrite, Vault: "v", ID: id(1), At: 100, Content: "base"}
	// The deposed Cortex: the engram as created, then the update that is
	// later quarantined, with its undo record.
	deposed := NewMemKV()
	if _, err := ApplyCommand(deposed, core.Pos{Epoch: 1, Seq: 4}, create); err != nil {
		t.Fatal(err)
	}
	update := Command{Op: OpUpdate, Vault: "v", ID: id(1), At: 200, Set: FieldContent, Content: "old"}
	u, err := ApplyCommand(deposed, at, update)
	if err != nil {
		t.Fatal(err)
	}
	replay := update
	replay.If, replay.Consumes = PreconditionOf(u), at
	b, err := EncodeCommand(replay)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeCommand(b)
	if err != nil || got.Consumes != at || len(got.If.Keys) != 1 || got.If.Keys[0].Sum != replay.If.Keys[0].Sum || string(got.If.Keys[0].Key) != string(replay.If.Keys[0].Key) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if c, ok := ReplayConsumes(b); !ok || c != at {
		t.Fatalf("ReplayConsumes: %v %v", c, ok)
	}
	if _, ok := ReplayConsumes(mustEncode(t, update)); ok {
		t.Fatal("an ordinary command reports consuming a quarantined entry")
	}

	// The new Cortex: the same base, then a newer quorum write.
	fresh := func() *MemKV {
		kv := NewMemKV()
		if _, err := ApplyCommand(kv, core.Pos{Epoch: 1, Seq: 4}, create); err != nil {
			t.Fatal(err)
		}
		return kv
	}
	newer := fresh()
	if _, err := ApplyCommand(newer, core.Pos{Epoch: 2, Seq: 5}, Command{Op: OpUpdate, Vault: "v", ID: id(1), At: 300, Set: FieldContent, Content: "new"}); err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(newer, core.Pos{Epoch: 2, Seq: 6}, b); !IsReject(err) || !strings.Contains(err.Error(), "changed since") {
		t.Fatalf("replay over a newer write: %v", err)
	}
	if e, _, _ := Get(newer, "v", id(1)); e.Content != "new" || e.UpdatedAt != 300 {
		t.Fatalf("the newer write was overwritten: %+v", e)
	}

	// Unchanged base: it applies, once.
	same := fresh()
	if _, err := Apply(same, core.Pos{Epoch: 2, Seq: 6}, b); err != nil {
		t.Fatalf("replay onto its base: %v", err)
	}
	if e, _, _ := Get(same, "v", id(1)); e.Content != "old" {
		t.Fatalf("after replay: %+v", e)
	}
	if _, err := Apply(same, core.Pos{Epoch: 2, Seq: 7}, b); !IsReject(err) {
		t.Fatalf("second replay of one entry: %v", err)
	}

	// A create whose engram was since created and forgotten: not replayed
	// (the tombstone is not the absence it was based on).
	c2 := Command{Op: OpWrite, Vault: "v", ID: id(2), At: 100, Content: "lost create"}
	u2, err := ApplyCommand(NewMemKV(), at, c2)
	if err != nil {
		t.Fatal(err)
	}
	c2.If, c2.Consumes = PreconditionOf(u2), at
	kv := NewMemKV()
	for _, c := range []Command{{Op: OpWrite, Vault: "v", ID: id(2), At: 150, Content: "other"}, {Op: OpForget, Vault: "v", ID: id(2), At: 160}} {
		if _, err := ApplyCommand(kv, at, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ApplyCommand(kv, core.Pos{Epoch: 2, Seq: 9}, c2); !IsReject(err) {
		t.Fatalf("replay of a create over a forgotten engram: %v", err)
	}
}

func mustEncode(t *testing.T, c Command) []byte {
	t.Helper()
	b, err := EncodeCommand(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
