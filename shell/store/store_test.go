package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/core/engram"
)

func openT(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testID(n uint64) string {
	var r [10]byte
	r[9], r[8], r[7] = byte(n), byte(n>>8), byte(n>>16)
	return engram.NewID(1_700_000_000_000+n, r)
}

func writeCmd(t testing.TB, vault string, n uint64, content string) []byte {
	b, err := engram.EncodeCommand(engram.Command{Op: engram.OpWrite, Vault: vault, ID: testID(n), At: n, Concept: "c", Content: content, Tags: []string{"t"}, Confidence: 0.5})
	if err != nil {
		panic(err)
	}
	return b
}

func dataEntry(t testing.TB, e core.Epoch, s core.Seq, content string) core.Entry {
	return core.Entry{Pos: core.Pos{Epoch: e, Seq: s}, Type: core.EntryData, Payload: writeCmd(t, "v", uint64(s), content)}
}

// dump returns every key and value of a keyspace.
func dump(t testing.TB, s *Store, space byte) string {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{space}, UpperBound: []byte{space + 1}})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	scan(it, func(k, v []byte) bool { fmt.Fprintf(&buf, "%x=%x\n", k, v); return true })
	return buf.String()
}

func count(t testing.TB, s *Store, space byte) int {
	return strings.Count(dump(t, s, space), "\n")
}

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	members := core.Members{{ID: "a"}, {ID: "b", Kind: core.KindSentinel}}
	rd := SaveBatch{
		HardState: &core.HardState{Epoch: 1, Vote: "a"},
		Entries: []core.Entry{
			{Pos: core.Pos{Epoch: 1, Seq: 1}, Type: core.EntryEpochStart},
			dataEntry(t, 1, 2, "hello"),
			{Pos: core.Pos{Epoch: 1, Seq: 3}, Type: core.EntryMembership, Payload: core.EncodeMembers(members)},
			dataEntry(t, 1, 4, "world"),
		},
		Members: members,
	}
	if err := s.Save(rd, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(SaveBatch{}, true); err != nil {
		t.Fatal(err)
	}
	check := func(s *Store) {
		t.Helper()
		r, err := s.Load()
		if err != nil {
			t.Fatal(err)
		}
		if r.HardState != (core.HardState{Epoch: 1, Vote: "a"}) || r.Applied != (core.Pos{Epoch: 1, Seq: 4}) || r.MaxEpoch != 1 || len(r.Entries) != 4 || r.Base != (core.Pos{}) {
			t.Fatalf("restored %+v", r)
		}
		if fmt.Sprint(r.Entries) != fmt.Sprint(rd.Entries) || fmt.Sprint(r.Members) != fmt.Sprint(members) {
			t.Fatalf("entries %v\nwant %v", r.Entries, rd.Entries)
		}
		e, ok, err := s.Get("v", testID(4))
		if err != nil || !ok || e.Content != "world" {
			t.Fatalf("get: %+v %v %v", e, ok, err)
		}
		es, err := s.Entries(2, 3)
		if err != nil || len(es) != 2 || es[0].Pos.Seq != 2 {
			t.Fatalf("Entries(2,3) = %v %v", es, err)
		}
		if hs, last, base := s.State(); hs.Epoch != 1 || last.Seq != 4 || base.Seq != 0 {
			t.Fatal("State", hs, last, base)
		}
	}
	check(s)
	s.Close()
	check(openT(t, dir))
	if err := s.Save(rd, true); !errors.Is(err, ErrClosed) {
		t.Fatalf("save after close: %v", err)
	}
}

func TestSaveRefuses(t *testing.T) {
	s := openT(t, t.TempDir())
	if err := s.Save(SaveBatch{HardState: &core.HardState{Epoch: 3}, Entries: []core.Entry{dataEntry(t, 2, 1, "a"), dataEntry(t, 3, 2, "b")}}, true); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		rd     SaveBatch
		fenced bool
		want   string
	}{
		{"epoch backwards", SaveBatch{HardState: &core.HardState{Epoch: 2}}, true, "hard state epoch 2 is below the highest epoch recorded, 3"},
		{"entry below last epoch", SaveBatch{Entries: []core.Entry{dataEntry(t, 2, 3, "c")}}, true, "entry 2.3 is from an epoch below the last entry 3.2"},
		{"entry from the future", SaveBatch{Entries: []core.Entry{dataEntry(t, 4, 3, "c")}}, true, "above the node's epoch 3"},
		{"gap", SaveBatch{Entries: []core.Entry{dataEntry(t, 3, 5, "c")}}, false, "entry 3.5 does not follow the last entry 3.2"},
		{"overlap", SaveBatch{Entries: []core.Entry{dataEntry(t, 3, 2, "c")}}, false, "does not follow"},
		{"truncate past end", SaveBatch{Truncate: &core.Truncation{After: core.Pos{Epoch: 3, Seq: 9}}}, false, "past the last entry"},
		{"truncate mismatch", SaveBatch{Truncate: &core.Truncation{After: core.Pos{Epoch: 1, Seq: 1}}}, false, "the log holds 2.1 there"},
	} {
		err := s.Save(tc.rd, true)
		if err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, ErrFenced) != tc.fenced {
			t.Errorf("%s: got %v, want %q (fenced %v)", tc.name, err, tc.want, tc.fenced)
		}
	}
	// Nothing of the refused saves was written.
	if r, _ := s.Load(); len(r.Entries) != 2 || r.HardState.Epoch != 3 {
		t.Fatalf("after refusals: %+v", r)
	}
	// A rejected command is logged as a no-op.
	dup := core.Entry{Pos: core.Pos{Epoch: 3, Seq: 3}, Type: core.EntryData, Payload: writeCmd(t, "v", 1, "again")}
	if err := s.Save(SaveBatch{Entries: []core.Entry{dup}}, true); err != nil {
		t.Fatal(err)
	}
	if e, _, _ := s.Get("v", testID(1)); e.Content != "a" {
		t.Fatalf("duplicate write applied: %+v", e)
	}
	if err := s.Check(writeCmd(t, "v", 1, "x")); !engram.IsReject(err) {
		t.Fatalf("Check(duplicate) = %v", err)
	}
	if err := s.Check(writeCmd(t, "v", 99, "x")); err != nil {
		t.Fatalf("Check(new) = %v", err)
	}
}

func TestTruncateQuarantine(t *testing.T) {
	s := openT(t, t.TempDir())
	var entries []core.Entry
	for i := core.Seq(1); i <= 3; i++ {
		entries = append(entries, dataEntry(t, 1, i, fmt.Sprint("committed ", i)))
	}
	if err := s.Save(SaveBatch{HardState: &core.HardState{Epoch: 1, Commit: core.Pos{Epoch: 1, Seq: 3}}, Entries: entries}, true); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, spaceUndo); n != 0 {
		t.Fatalf("%d undo records at or below commit", n)
	}
	before := dump(t, s, engram.DataPrefix)
	// Epoch 2: writes, an update and a decay of committed engrams, a forget.
	cmds := []engram.Command{
		{Op: engram.OpWrite, Vault: "v", ID: testID(100), Content: "cut off"},
		{Op: engram.OpUpdate, Vault: "v", ID: testID(1), Set: engram.FieldContent, Content: "changed"},
		{Op: engram.OpDecay, Vault: "v", Factor: 0.5},
		{Op: engram.OpForget, Vault: "v", ID: testID(2)},
		{Op: engram.OpWrite, Vault: "w", ID: testID(101), Content: "other vault"},
	}
	var suffix []core.Entry
	for i, c := range cmds {
		b, err := engram.EncodeCommand(c)
		if err != nil {
			t.Fatal(err)
		}
		suffix = append(suffix, core.Entry{Pos: core.Pos{Epoch: 2, Seq: core.Seq(4 + i)}, Type: core.EntryData, Payload: b})
	}
	suffix = append(suffix, core.Entry{Pos: core.Pos{Epoch: 2, Seq: 9}, Type: core.EntryData, Payload: []byte("garbage")})
	if err := s.Save(SaveBatch{HardState: &core.HardState{Epoch: 2, Commit: core.Pos{Epoch: 1, Seq: 3}}, Entries: suffix}, true); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, spaceUndo); n != 6 {
		t.Fatalf("%d undo records, want 6", n)
	}
	if dump(t, s, engram.DataPrefix) == before {
		t.Fatal("suffix changed nothing")
	}
	if err := s.Save(SaveBatch{Truncate: &core.Truncation{After: core.Pos{Epoch: 1, Seq: 2}}}, true); err == nil || !strings.Contains(err.Error(), "committed") {
		t.Fatalf("truncating committed entries: %v", err)
	}
	// Epoch 3 truncates the epoch-2 suffix and appends its own entries.
	err := s.Save(SaveBatch{
		HardState: &core.HardState{Epoch: 3},
		Truncate:  &core.Truncation{After: core.Pos{Epoch: 1, Seq: 3}, Reason: "diverged from epoch 3"},
		Entries:   []core.Entry{{Pos: core.Pos{Epoch: 3, Seq: 4}, Type: core.EntryEpochStart}},
		Now:       1234,
	}, true)
	if err != nil {
		t.Fatal(err)
	}
	if after := dump(t, s, engram.DataPrefix); after != before {
		t.Fatalf("rollback did not restore the data:\n%s\nwant\n%s", after, before)
	}
	if n := count(t, s, spaceUndo); n != 0 {
		t.Fatalf("%d undo records left", n)
	}
	q, err := s.Quarantine()
	if err != nil || len(q) != 6 {
		t.Fatalf("quarantine: %d %v", len(q), err)
	}
	if q[0].Pos() != (core.Pos{Epoch: 2, Seq: 4}) || q[0].Vault != "v" || q[0].Op != "write" || q[0].ID != testID(100) || q[0].Reason != "diverged from epoch 3" || q[0].TimeMS != 1234 || !bytes.Equal(q[0].Payload, suffix[0].Payload) {
		t.Fatalf("quarantine[0] = %+v", q[0])
	}
	if q[5].Vault != "" || string(q[5].Payload) != "garbage" {
		t.Fatalf("quarantine[5] = %+v", q[5])
	}
	var buf bytes.Buffer
	if n, err := s.ExportQuarantine(&buf); err != nil || n != 6 {
		t.Fatal(n, err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var q0 Quarantined
	if len(lines) != 6 || json.Unmarshal([]byte(lines[0]), &q0) != nil || q0.ID != testID(100) {
		t.Fatalf("export: %q", buf.String())
	}
	// Replaying a quarantined write as a new write applies it again.
	if err := s.Check(q0.Payload); err != nil {
		t.Fatalf("replay check: %v", err)
	}
	if ok, err := s.DropQuarantine(q0.Pos()); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if ok, _ := s.DropQuarantine(q0.Pos()); ok {
		t.Fatal("dropped twice")
	}
	if q, _ := s.Quarantine(); len(q) != 5 {
		t.Fatalf("after drop: %d", len(q))
	}
	if r, err := s.Load(); err != nil || r.Applied != (core.Pos{Epoch: 3, Seq: 4}) || len(r.Entries) != 4 {
		t.Fatalf("after truncation: %+v %v", r, err)
	}
}

func TestPrune(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	var es []core.Entry
	for i := core.Seq(1); i <= 10; i++ {
		es = append(es, dataEntry(t, 1, i, "x"))
	}
	if err := s.Save(SaveBatch{HardState: &core.HardState{Epoch: 1, Commit: core.Pos{Epoch: 1, Seq: 6}}, Entries: es}, true); err != nil {
		t.Fatal(err)
	}
	base, err := s.Prune(8) // capped at the commit point
	if err != nil || base != (core.Pos{Epoch: 1, Seq: 6}) {
		t.Fatal(base, err)
	}
	if base, _ := s.Prune(3); base.Seq != 6 {
		t.Fatal("prune went backwards", base)
	}
	s.Close()
	s = openT(t, dir)
	r, err := s.Load()
	if err != nil || r.Base != (core.Pos{Epoch: 1, Seq: 6}) || len(r.Entries) != 4 || r.Entries[0].Pos.Seq != 7 {
		t.Fatalf("%+v %v", r, err)
	}
	// The data of pruned entries stays.
	if _, ok, _ := s.Get("v", testID(1)); !ok {
		t.Fatal("pruning dropped data")
	}
	if err := s.Save(SaveBatch{HardState: &core.HardState{Epoch: 1, Commit: core.Pos{Epoch: 1, Seq: 10}}}, true); err != nil {
		t.Fatal(err)
	}
	if base, err := s.Prune(10); err != nil || base.Seq != 10 {
		t.Fatal(base, err)
	}
	s.Close()
	s = openT(t, dir)
	if r, err := s.Load(); err != nil || len(r.Entries) != 0 || r.Applied.Seq != 10 || r.Base.Seq != 10 {
		t.Fatalf("%+v %v", r, err)
	}
	if err := s.Save(SaveBatch{Entries: []core.Entry{dataEntry(t, 1, 11, "y")}}, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(SaveBatch{Truncate: &core.Truncation{After: core.Pos{Epoch: 1, Seq: 5}}}, true); err == nil {
		t.Fatal("truncation below the base accepted")
	}
}

func TestCheckpointInstall(t *testing.T) {
	root := t.TempDir()
	a := openT(t, filepath.Join(root, "a"))
	var es []core.Entry
	for i := core.Seq(1); i <= 20; i++ {
		es = append(es, dataEntry(t, 2, i, fmt.Sprint("from a ", i)))
	}
	if err := a.Save(SaveBatch{HardState: &core.HardState{Epoch: 2, Vote: "a", Commit: core.Pos{Epoch: 2, Seq: 15}}, Entries: es, Members: core.Members{{ID: "a"}, {ID: "b"}}}, true); err != nil {
		t.Fatal(err)
	}
	snapDir := filepath.Join(root, "snap")
	pos, err := a.Checkpoint(snapDir)
	if err != nil || pos != (core.Pos{Epoch: 2, Seq: 20}) {
		t.Fatal(pos, err)
	}
	if _, err := a.Checkpoint(snapDir); err == nil {
		t.Fatal("checkpoint over an existing directory")
	}
	// a moves on after the checkpoint: the snapshot must not see it.
	if err := a.Save(SaveBatch{Entries: []core.Entry{dataEntry(t, 2, 21, "later")}}, true); err != nil {
		t.Fatal(err)
	}

	bdir := filepath.Join(root, "b")
	b := openT(t, bdir)
	// b: an epoch-1 suffix that got quarantined, and a vote in epoch 1.
	if err := b.Save(SaveBatch{HardState: &core.HardState{Epoch: 1, Vote: "b"}, Entries: []core.Entry{dataEntry(t, 1, 1, "b's own")}}, true); err != nil {
		t.Fatal(err)
	}
	if err := b.Save(SaveBatch{Truncate: &core.Truncation{After: core.Pos{}, Reason: "test"}}, true); err != nil {
		t.Fatal(err)
	}
	bid := b.Identity()
	if bid == 0 || bid == a.Identity() {
		t.Fatalf("identities: a %x, b %x: want two distinct non-zero", a.Identity(), bid)
	}
	// The snapshot ends at a's commit point: entries 16..20 may still be
	// removed by a failover, so they are rolled back and come as appends.
	got, err := b.InstallSnapshot(snapDir)
	commit := core.Pos{Epoch: 2, Seq: 15}
	if err != nil || got != commit {
		t.Fatal(got, err)
	}
	check := func(b *Store) {
		t.Helper()
		if b.Identity() != bid {
			t.Fatalf("identity after install %x, want b's own %x", b.Identity(), bid)
		}
		r, err := b.Load()
		if err != nil {
			t.Fatal(err)
		}
		if r.Applied != commit || r.Snapshot != commit || len(r.Entries) != 15 || r.HardState != (core.HardState{Epoch: 2, Commit: commit}) || len(r.Members) != 2 {
			t.Fatalf("after install: %+v", r)
		}
		if q, _ := b.Quarantine(); len(q) != 1 || q[0].Reason != "test" {
			t.Fatalf("quarantine after install: %+v (the snapshot's cap must not show up there)", q)
		}
		if e, ok, _ := b.Get("v", testID(15)); !ok || e.Content != "from a 15" {
			t.Fatal("snapshot data missing")
		}
		for _, n := range []uint64{16, 20, 21} {
			if _, ok, _ := b.Get("v", testID(n)); ok {
				t.Fatalf("snapshot holds write %d, above the sender's commit point", n)
			}
		}
	}
	check(b)
	if fileExists(vfs.Default, bdir+".old") || fileExists(vfs.Default, bdir+".install") {
		t.Fatal("install left directories behind")
	}
	// An older snapshot than the commit point is refused.
	if err := b.Save(SaveBatch{HardState: &core.HardState{Epoch: 2, Commit: commit}}, true); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(root, "old")
	c := openT(t, filepath.Join(root, "c"))
	c.Save(SaveBatch{HardState: &core.HardState{Epoch: 1}, Entries: []core.Entry{dataEntry(t, 1, 1, "x")}}, true)
	if _, err := c.Checkpoint(old); err != nil {
		t.Fatal(err)
	}
	if _, err := b.InstallSnapshot(old); err == nil || !strings.Contains(err.Error(), "behind the local commit point") {
		t.Fatalf("old snapshot: %v", err)
	}
	if _, err := b.InstallSnapshot(filepath.Join(root, "missing")); err == nil {
		t.Fatal("missing snapshot accepted")
	}
	if _, ok, _ := b.Get("v", testID(15)); !ok {
		t.Fatal("failed installs damaged the store")
	}
}

func TestRecoverInstall(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "s")
	s := openT(t, dir)
	s.Save(SaveBatch{HardState: &core.HardState{Epoch: 1}, Entries: []core.Entry{dataEntry(t, 1, 1, "x")}}, true)
	snap := filepath.Join(root, "snap")
	if _, err := s.Checkpoint(snap); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Crash between the renames: dir gone, .install complete, .old present.
	os.Rename(dir, dir+".old")
	copyDir(vfs.Default, snap, dir+".install")
	s = openT(t, dir)
	if _, ok, _ := s.Get("v", testID(1)); !ok || fileExists(vfs.Default, dir+".old") || fileExists(vfs.Default, dir+".install") {
		t.Fatal("interrupted install not finished")
	}
	s.Close()
	// Crash before the swap: a stale .install is discarded.
	copyDir(vfs.Default, snap, dir+".install")
	s = openT(t, dir)
	if fileExists(vfs.Default, dir+".install") {
		t.Fatal("stale install kept")
	}
}

func TestReads(t *testing.T) {
	s := openT(t, t.TempDir())
	var es []core.Entry
	for i := core.Seq(1); i <= 5; i++ {
		es = append(es, dataEntry(t, 1, i, fmt.Sprintf("raven number %d", i)))
	}
	if err := s.Save(SaveBatch{HardState: &core.HardState{Epoch: 1}, Entries: es}, false); err != nil {
		t.Fatal(err)
	}
	p, err := s.List("v", engram.ListOptions{Limit: 3, Tags: []string{"t"}})
	if err != nil || len(p.Engrams) != 3 || p.Next != testID(3) {
		t.Fatalf("%+v %v", p, err)
	}
	p, err = s.List("v", engram.ListOptions{Cursor: p.Next})
	if err != nil || len(p.Engrams) != 2 || p.Next != "" {
		t.Fatalf("%+v %v", p, err)
	}
	hits, err := s.Activate("v", "number 4", 2)
	if err != nil || len(hits) != 2 || hits[0].ID != testID(4) {
		t.Fatalf("%+v %v", hits, err)
	}
	if _, _, err := s.Get("v", "bad"); err == nil {
		t.Fatal("bad id accepted")
	}
	s.Close()
	if _, _, err := s.Get("v", testID(1)); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	if _, err := s.List("v", engram.ListOptions{}); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}

func TestEntry(t *testing.T) {
	s := openT(t, t.TempDir())
	if err := s.Save(SaveBatch{HardState: &core.HardState{Epoch: 1}, Entries: []core.Entry{dataEntry(t, 1, 1, "a"), dataEntry(t, 1, 2, "b")}}, true); err != nil {
		t.Fatal(err)
	}
	e, ok, err := s.Entry(2)
	if err != nil || !ok || e.Pos != (core.Pos{Epoch: 1, Seq: 2}) {
		t.Fatalf("Entry(2) = %v %v %v", e, ok, err)
	}
	if es, _ := s.Entries(2, 2); len(es) != 1 || string(es[0].Payload) != string(e.Payload) {
		t.Fatal("Entry and Entries disagree")
	}
	if _, ok, err := s.Entry(3); ok || err != nil {
		t.Fatalf("Entry(3) past the log: %v %v", ok, err)
	}
}

// TestHardStateVoteStore: the vote's store (rule 16) round-trips, and a
// hard state written before it was recorded reads the same.
func TestHardStateVoteStore(t *testing.T) {
	for _, hs := range []core.HardState{
		{Epoch: 3, Vote: "node-2", Commit: core.Pos{Epoch: 2, Seq: 9}, VoteStore: 0x57000001},
		{Epoch: 3, Vote: "node-2", Commit: core.Pos{Epoch: 2, Seq: 9}},
		{Epoch: 1},
	} {
		got, err := decodeHardState(encodeHardState(hs))
		if err != nil || got != hs {
			t.Fatalf("round trip of %+v: %+v, %v", hs, got, err)
		}
	}
	old := append(encodeHardState(core.HardState{Epoch: 3, Commit: core.Pos{Epoch: 2, Seq: 9}}), "node-2"...)
	if got, err := decodeHardState(old); err != nil || got.Vote != "node-2" || got.VoteStore != 0 {
		t.Fatalf("an old hard state: %+v, %v", got, err)
	}
	if _, err := decodeHardState(append(encodeHardState(core.HardState{Epoch: 3, Vote: "n"}), 0, 1)); err == nil {
		t.Fatal("a truncated vote store was accepted")
	}
}
