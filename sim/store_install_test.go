package sim

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/core/engram"
)

// A snapshot installed over a divergent suffix quarantines the entries it
// does not hold, on both stores alike (Pebble soak seeds 200033, 200234,
// 201846: a deposed Cortex's acknowledged local writes were dropped).
// a, Cortex of epoch 2, holds epoch 1 up to 12, its own entries from 13,
// commits 25 and compacts to 20; b, deposed Cortex of epoch 1, wrote 13..27
// that nobody else has. The snapshot ends at 25: b's 11 and 12 are in it;
// 13..25 are not (epoch 2 there, by the snapshot's epoch history), nor
// 26..27 (past its end).
func TestInstallQuarantinesDivergentSuffix(t *testing.T) {
	pos := func(e core.Epoch, s core.Seq) core.Pos { return core.Pos{Epoch: e, Seq: s} }
	ms := core.Members{{ID: "a"}, {ID: "b"}}
	data := func(e core.Epoch, from, to core.Seq, who string) []core.Entry {
		var es []core.Entry
		for q := from; q <= to; q++ {
			b, err := engram.EncodeCommand(engram.Command{Op: engram.OpWrite, Vault: "v", ID: engram.NewID(uint64(q), [10]byte{byte(q)}), At: uint64(q), Content: who + itoa(uint64(q))})
			if err != nil {
				t.Fatal(err)
			}
			es = append(es, core.Entry{Pos: pos(e, q), Type: core.EntryData, Payload: b})
		}
		return es
	}
	w := &World{}
	w.now = 42e9 // the quarantine time: 42,000 ms
	stores := map[string]func(id uint64) nodeStore{
		"model": func(id uint64) nodeStore { return newStore(ms, id, &diskFaults{w: w}) },
		"pebble": func(id uint64) nodeStore {
			p := &pebbleStore{w: w, disk: &diskFaults{w: w}, mem: vfs.NewCrashableMem()}
			if err := p.open(func() uint64 { return id }); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.Close)
			return p
		},
	}
	got := map[string][]Quarantined{}
	for kind, mk := range stores {
		save := func(st nodeStore, rd core.Ready) {
			t.Helper()
			if err := st.Save(&rd, true, nil); err != nil {
				t.Fatalf("%s: %v", kind, err)
			}
		}
		a, b := mk(1), mk(2)
		save(a, core.Ready{HardState: &core.HardState{Epoch: 1, Commit: pos(1, 10)}, Entries: data(1, 1, 12, "shared ")})
		save(a, core.Ready{HardState: &core.HardState{Epoch: 2, Vote: "a", Commit: pos(2, 25)}, Entries: data(2, 13, 30, "a ")})
		if err := a.Prune(core.Compaction{Upto: pos(2, 20), Members: ms}); err != nil {
			t.Fatal(err)
		}
		img, err := a.Checkpoint()
		if err != nil {
			t.Fatal(err)
		}
		save(b, core.Ready{HardState: &core.HardState{Epoch: 1, Vote: "b", Commit: pos(1, 10)}, Entries: data(1, 1, 12, "shared ")})
		save(b, core.Ready{Entries: data(1, 13, 27, "b ")})
		dir, err := b.Stage(img)
		if err != nil {
			t.Fatal(err)
		}
		in, err := b.InstallSnapshot(dir, func(core.Pos) error { return nil })
		if err != nil || in.Pos != pos(2, 25) {
			t.Fatalf("%s: install: %+v %v", kind, in, err)
		}
		if b.Last() != pos(2, 25) {
			t.Fatalf("%s: log ends at %s after the install", kind, b.Last())
		}
		got[kind] = b.Quarantined()
	}
	suffix := data(1, 13, 27, "b ")
	for kind, qs := range got {
		if len(qs) != len(suffix) {
			t.Fatalf("%s: %d entries quarantined, want %d", kind, len(qs), len(suffix))
		}
		for i, q := range qs {
			e := suffix[i]
			want := "whose entry there is from epoch 2"
			if e.Pos.Seq > 25 {
				want = "which ends before it"
			}
			if q.Entry.Pos != e.Pos || !bytes.Equal(q.Entry.Payload, e.Payload) || q.Base == nil || q.At != 42_000 || !strings.Contains(q.Reason, want) {
				t.Errorf("%s: quarantined %s (%q, at %d, base %v), want %s (%q)", kind, q.Entry.Pos, q.Reason, q.At, q.Base != nil, e.Pos, want)
			}
		}
	}
	for i := range got["model"] {
		if m, p := got["model"][i], got["pebble"][i]; m.Entry.Pos != p.Entry.Pos || m.Reason != p.Reason {
			t.Errorf("the stores differ: model %s %q, pebble %s %q", m.Entry.Pos, m.Reason, p.Entry.Pos, p.Reason)
		}
	}
}
