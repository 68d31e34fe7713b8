package engram

import (
	"testing"

	"github.com/muninndb/muninn/core"
	"pgregory.net/rapid"
)

// genCommand draws commands over a few vaults and ids so that they collide:
// duplicates, updates of missing engrams, forgets of forgotten ones.
func genCommand(t *rapid.T) []byte {
	vault := rapid.SampledFrom([]string{"a", "b"}).Draw(t, "vault")
	eid := NewID(rapid.Uint64Range(1, 3).Draw(t, "idms"), [10]byte{})
	at := rapid.Uint64Range(0, 1<<40).Draw(t, "at")
	tags := rapid.SliceOfN(rapid.SampledFrom([]string{"x", "y", "z"}), 0, 3).Draw(t, "tags")
	conf := rapid.Float64Range(0, 1).Draw(t, "conf")
	var c Command
	switch rapid.IntRange(0, 5).Draw(t, "op") {
	case 0, 1:
		c = Command{Op: OpWrite, Vault: vault, ID: eid, At: at, Concept: "c", Content: rapid.String().Draw(t, "content"), Tags: tags, Confidence: conf}
	case 2:
		c = Command{Op: OpUpdate, Vault: vault, ID: eid, At: at, Set: Fields(rapid.IntRange(1, 15).Draw(t, "set")), Concept: "u", Content: "v", Tags: tags, Confidence: conf}
	case 3:
		c = Command{Op: OpForget, Vault: vault, ID: eid, At: at}
	case 4:
		c = Command{Op: OpDecay, Vault: vault, At: at, Factor: rapid.Float64Range(0.001, 1).Draw(t, "factor")}
	case 5:
		c = Command{Op: OpAccess, Vault: vault, ID: eid, At: at}
	}
	if rapid.IntRange(0, 20).Draw(t, "garbage") == 0 {
		return rapid.SliceOfN(rapid.Byte(), 0, 8).Draw(t, "payload")
	}
	b, err := EncodeCommand(c)
	if err != nil {
		// Random content may be invalid UTF-8: that is a valid test of a
		// rejected payload, so keep the raw bytes of a fixed bad command.
		return []byte{1, 1}
	}
	return b
}

// TestPropRollback: applying any sequence and rolling it back newest first
// restores the exact contents, at every split point.
func TestPropRollback(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		kv := NewMemKV()
		prefix := rapid.SliceOfN(rapid.Custom(genCommand), 0, 20).Draw(t, "prefix")
		suffix := rapid.SliceOfN(rapid.Custom(genCommand), 0, 20).Draw(t, "suffix")
		seq := core.Seq(0)
		for _, c := range prefix {
			seq++
			if _, err := Apply(kv, core.Pos{Epoch: 1, Seq: seq}, c); err != nil && !IsReject(err) {
				t.Fatal(err)
			}
		}
		before := kv.Clone()
		var undo []Undo
		for _, c := range suffix {
			seq++
			u, err := Apply(kv, core.Pos{Epoch: 2, Seq: seq}, c)
			if err != nil && !IsReject(err) {
				t.Fatal(err)
			}
			// The undo survives its encoding, as the store keeps it.
			u, err = DecodeUndo(EncodeUndo(u))
			if err != nil {
				t.Fatal(err)
			}
			undo = append(undo, u)
		}
		for i := len(undo) - 1; i >= 0; i-- {
			if err := Rollback(kv, undo[i]); err != nil {
				t.Fatal(err)
			}
		}
		if !kv.Equal(before) {
			t.Fatal("rollback did not restore the exact contents")
		}
	})
}

// TestPropDeterministic: the same entries applied to two stores give
// identical contents, and every read agrees.
func TestPropDeterministic(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b := NewMemKV(), NewMemKV()
		cmds := rapid.SliceOfN(rapid.Custom(genCommand), 0, 40).Draw(t, "cmds")
		for i, c := range cmds {
			pos := core.Pos{Epoch: 1, Seq: core.Seq(i + 1)}
			_, ea := Apply(a, pos, c)
			_, eb := Apply(b, pos, c)
			if (ea == nil) != (eb == nil) {
				t.Fatalf("entry %d: %v vs %v", i, ea, eb)
			}
		}
		if !a.Equal(b) {
			t.Fatal("same entries, different contents")
		}
		for _, v := range []string{"a", "b"} {
			pa, _ := List(a, v, ListOptions{})
			pb, _ := List(b, v, ListOptions{})
			if len(pa.Engrams) != len(pb.Engrams) {
				t.Fatal("lists differ")
			}
		}
	})
}
