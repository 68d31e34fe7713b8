package store

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/core/engram"
)

// A snapshot installed over a log with a divergent suffix (a deposed
// Cortex's local writes, not yet truncated) quarantines every entry of it
// the snapshot does not hold, as a truncation would, and keeps the rest
// (soak seeds 200033, 200234, 201846: they were dropped). The quarantine
// is in the store before it becomes live: a crash at any step of the swap
// leaves either the old log or the new quarantine, never neither, never
// both.
func TestInstallQuarantinesDivergentSuffix(t *testing.T) {
	pos := func(e core.Epoch, s core.Seq) core.Pos { return core.Pos{Epoch: e, Seq: s} }
	fsA, fsB := vfs.NewCrashableMem(), vfs.NewCrashableMem()

	// a, Cortex of epoch 2: epoch 1's entries up to 12 (the last two
	// replicated from b before b was cut off), then its own from 13; its
	// commit point is 25, and the log is pruned to 20, so the snapshot
	// tells the epochs of 13..20 only by its epoch history.
	a := openOn(t, "/a/db", memOpts(fsA, 1, true))
	if err := a.Save(SaveBatch{HardState: &core.HardState{Epoch: 1, Commit: pos(1, 10)}, Entries: entries(t, 1, 1, 12, "shared ")}, true); err != nil {
		t.Fatal(err)
	}
	if err := a.Save(SaveBatch{HardState: &core.HardState{Epoch: 2, Vote: "a", Commit: pos(2, 25)}, Entries: entries(t, 2, 13, 30, "from a ")}, true); err != nil {
		t.Fatal(err)
	}
	if base, err := a.Prune(20); err != nil || base != pos(2, 20) {
		t.Fatal(base, err)
	}
	if h, err := a.EpochHistory(); err != nil || !slices.Equal(h, []core.Pos{pos(1, 1), pos(2, 13)}) {
		t.Fatalf("a's epoch history %v %v", h, err)
	}
	if got, err := a.Checkpoint("/a/snap"); err != nil || got != pos(2, 30) {
		t.Fatal(got, err)
	}
	files, err := CheckpointFiles(fsA, "/a/snap")
	if err != nil {
		t.Fatal(err)
	}

	// b, deposed Cortex of epoch 1: the same entries up to 12, then its
	// own local writes 13..27 that nobody else has (one of them an update
	// of a committed engram), and one quarantined entry from before.
	b := openOn(t, "/b/db", memOpts(fsB, 2, true))
	if err := b.Save(SaveBatch{HardState: &core.HardState{Epoch: 1, Vote: "b", Commit: pos(1, 10)}, Entries: entries(t, 1, 1, 12, "shared ")}, true); err != nil {
		t.Fatal(err)
	}
	suffix := entries(t, 1, 13, 27, "b's local write ")
	upd, err := engram.EncodeCommand(engram.Command{Op: engram.OpUpdate, Vault: "v", ID: testID(5), Set: engram.FieldContent, Content: "b changed it"})
	if err != nil {
		t.Fatal(err)
	}
	suffix[1] = core.Entry{Pos: pos(1, 14), Type: core.EntryData, Durability: core.Local, Payload: upd}
	if err := b.Save(SaveBatch{Entries: suffix}, true); err != nil {
		t.Fatal(err)
	}
	old := Quarantined{Epoch: 0, Seq: 99, Type: "data", Reason: "from before", Payload: []byte("x")}
	if err := b.db.Set(quarantineKey(old.Pos()), mustJSON(t, old), nil); err != nil {
		t.Fatal(err)
	}
	if err := fsB.MkdirAll("/b/recv", 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if err := vfs.CopyAcrossFS(fsA, fsA.PathJoin("/a/snap", f), fsB, fsB.PathJoin("/b/recv", f)); err != nil {
			t.Fatal(err)
		}
	}

	// checkOld: the install did not happen; the suffix is still in the log.
	checkOld := func(s *Store) {
		t.Helper()
		r, err := s.Load()
		if err != nil || r.Applied != pos(1, 27) || len(r.Entries) != 27 {
			t.Fatalf("old store: %+v %v", r, err)
		}
		if q, _ := s.Quarantine(); len(q) != 1 {
			t.Fatalf("old store's quarantine: %+v", q)
		}
	}
	// checkNew: installed, and b's writes 13..27 quarantined; 11 and 12,
	// which the snapshot holds, are not.
	const now = 1_700_000_123_456
	checkNew := func(s *Store) {
		t.Helper()
		r, err := s.Load()
		if err != nil || r.Applied != pos(2, 25) || r.Snapshot != pos(2, 25) {
			t.Fatalf("after install: %+v %v", r, err)
		}
		q, err := s.Quarantine()
		if err != nil || len(q) != 16 {
			t.Fatalf("quarantine after install: %d records (want 15 and the old one) %v", len(q), err)
		}
		if q[0].Pos() != old.Pos() || q[0].Reason != "from before" {
			t.Fatalf("the old record: %+v", q[0])
		}
		for i, rec := range q[1:] {
			e := suffix[i]
			if rec.Pos() != e.Pos || !bytes.Equal(rec.Payload, e.Payload) || rec.Type != "data" || rec.Durability != "local" || rec.TimeMS != now || len(rec.Base) == 0 {
				t.Fatalf("record %d: %+v, want entry %s", i, rec, e.Pos)
			}
			want := "removed by a snapshot installed at 2.25, whose entry there is from epoch 2"
			if e.Pos.Seq > 25 {
				want = "removed by a snapshot installed at 2.25, which ends before it"
			}
			if rec.Reason != want {
				t.Fatalf("record %s: reason %q, want %q", rec.Pos(), rec.Reason, want)
			}
		}
		if rec := q[2]; rec.Op != "update" || rec.Vault != "v" || rec.ID != testID(5) {
			t.Fatalf("record of the update: %+v", rec)
		}
		if e, ok, _ := s.Get("v", testID(13)); !ok || e.Content != "from a 13" {
			t.Fatalf("engram 13 after install: %+v %v", e, ok)
		}
		if e, ok, _ := s.Get("v", testID(5)); !ok || e.Content != "shared 5" {
			t.Fatalf("engram 5 after install: %+v %v", e, ok)
		}
		if h, err := s.EpochHistory(); err != nil || !slices.Equal(h, []core.Pos{pos(1, 1), pos(2, 13)}) {
			t.Fatalf("epoch history after install: %v %v", h, err)
		}
	}

	// A crash at each step of the swap.
	crashes := map[string]*vfs.MemFS{}
	b.onInstallStep = func(step string) { crashes[step] = fsB.CrashClone(vfs.CrashCloneCfg{}) }
	got, err := b.InstallSnapshotAt("/b/recv", now, nil)
	if err != nil || got != pos(2, 25) {
		t.Fatal(got, err)
	}
	checkNew(b)
	if len(crashes) != 2 {
		t.Fatalf("install steps seen: %v", crashes)
	}
	checkOld(openOn(t, "/b/db", memOpts(crashes["prepared"], 3, true)))
	// Between the renames: the rename of the old store is not synced yet,
	// so the crash keeps either store, whole.
	if s := openOn(t, "/b/db", memOpts(crashes["renamed-old"], 3, true)); s.last == pos(1, 27) {
		checkOld(s)
	} else {
		checkNew(s)
	}
	b.onInstallStep = nil
	crashed := fsB.CrashClone(vfs.CrashCloneCfg{})
	checkNew(openOn(t, "/b/db", memOpts(crashed, 3, true)))

	// The quarantined update replays as the runner builds a replay: the
	// engram is as b's entry found it, so it applies, and consumes the
	// record.
	q, _ := b.Quarantine()
	rec := q[2]
	base, err := engram.DecodePrecondition(rec.Base)
	if err != nil {
		t.Fatal(err)
	}
	c, err := engram.DecodeCommand(rec.Payload)
	if err != nil {
		t.Fatal(err)
	}
	c.If, c.Consumes = base, rec.Pos()
	replay, err := engram.EncodeCommand(c)
	if err != nil {
		t.Fatal(err)
	}
	var refused error
	if err := b.Save(SaveBatch{HardState: &core.HardState{Epoch: 2, Commit: pos(2, 25)}, Entries: []core.Entry{{Pos: pos(2, 26), Type: core.EntryData, Payload: replay}},
		Rejected: func(_ core.Pos, why error) { refused = why }}, true); err != nil || refused != nil {
		t.Fatal(err, refused)
	}
	if e, _, _ := b.Get("v", testID(5)); e.Content != "b changed it" {
		t.Fatalf("replayed update: %+v", e)
	}
	if q, _ := b.Quarantine(); len(q) != 15 || slices.ContainsFunc(q, func(x Quarantined) bool { return x.Pos() == rec.Pos() }) {
		t.Fatalf("the replay did not consume its record: %d left", len(q))
	}
}

// SnapshotHolds decides by the snapshot's epoch history where it reaches,
// and by the snapshot's position where it does not.
func TestSnapshotHolds(t *testing.T) {
	pos := func(e core.Epoch, s core.Seq) core.Pos { return core.Pos{Epoch: e, Seq: s} }
	snap := pos(5, 100)
	history := []core.Pos{pos(2, 40), pos(3, 50), pos(5, 80)}
	for _, c := range []struct {
		p    core.Pos
		held bool
		why  string
	}{
		{pos(5, 101), false, "ends before it"},
		{pos(3, 60), true, ""}, // epoch 3 covers 50..79
		{pos(3, 50), true, ""}, // a record's own seq
		{pos(2, 60), false, "from epoch 3"},
		{pos(4, 79), false, "from epoch 3"},
		{pos(4, 85), false, "from epoch 5"},
		{pos(5, 90), true, ""},
		{pos(6, 90), false, "from epoch 5"},
		// Below the history: by the position alone.
		{pos(5, 30), true, ""},
		{pos(6, 30), false, "from earlier epochs"},
		{pos(1, 30), false, "may hold it"},
	} {
		held, why := SnapshotHolds(snap, history, c.p)
		if held != c.held || !strings.Contains(why, c.why) || held != (why == "") {
			t.Errorf("SnapshotHolds(%s, %s) = %v %q, want %v %q", snap, c.p, held, why, c.held, c.why)
		}
	}
}

// The epoch history follows the log: written with entries, cut back by a
// truncation, kept by Prune; a store written before it was kept gets one
// from its retained log when opened.
func TestEpochHistory(t *testing.T) {
	pos := func(e core.Epoch, s core.Seq) core.Pos { return core.Pos{Epoch: e, Seq: s} }
	fs := vfs.NewCrashableMem()
	s := openOn(t, "/s", memOpts(fs, 1, true))
	check := func(s *Store, want ...core.Pos) {
		t.Helper()
		if h, err := s.EpochHistory(); err != nil || !slices.Equal(h, want) {
			t.Fatalf("epoch history %v %v, want %v", h, err, want)
		}
	}
	check(s)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Save(SaveBatch{HardState: &core.HardState{Epoch: 3}, Entries: append(entries(t, 1, 1, 5, "x"), entries(t, 3, 6, 9, "y")...)}, true))
	check(s, pos(1, 1), pos(3, 6))
	// Epoch 4 truncates after 7 and appends; epoch 5 appends.
	must(s.Save(SaveBatch{HardState: &core.HardState{Epoch: 4}, Truncate: &core.Truncation{After: pos(3, 7)}, Entries: entries(t, 4, 8, 10, "z")}, true))
	check(s, pos(1, 1), pos(3, 6), pos(4, 8))
	must(s.Save(SaveBatch{HardState: &core.HardState{Epoch: 5}, Truncate: &core.Truncation{After: pos(3, 6)}}, true))
	check(s, pos(1, 1), pos(3, 6))
	must(s.Save(SaveBatch{HardState: &core.HardState{Epoch: 5, Commit: pos(5, 8)}, Entries: entries(t, 5, 7, 8, "w")}, true))
	check(s, pos(1, 1), pos(3, 6), pos(5, 7))
	if _, err := s.Prune(8); err != nil {
		t.Fatal(err)
	}
	check(s, pos(1, 1), pos(3, 6), pos(5, 7))

	// A store from before the history: no records, no marker. Opened, it
	// records its base and the changes of epoch in its retained log.
	must(s.Save(SaveBatch{Entries: entries(t, 5, 9, 9, "v")}, true))
	must(s.Save(SaveBatch{HardState: &core.HardState{Epoch: 6}, Entries: entries(t, 6, 10, 11, "u")}, true))
	b := s.db.NewBatch()
	must(b.DeleteRange([]byte{spaceEpochs}, []byte{spaceEpochs + 1}, nil))
	must(b.Delete(metaEpochs, nil))
	must(b.Commit(pebble.Sync))
	must(s.Close())
	s = openOn(t, "/s", memOpts(fs, 1, true))
	check(s, pos(5, 8), pos(6, 10))
	must(s.Close())
	s = openOn(t, "/s", memOpts(fs, 1, true))
	check(s, pos(5, 8), pos(6, 10))
}

func mustJSON(t testing.TB, q Quarantined) []byte {
	t.Helper()
	b, err := json.Marshal(q)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
