package store

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/muninndb/muninn/core"
)

// seeded is a NewIdentity that draws no global randomness.
func seeded(seed uint64) func() uint64 {
	n := seed
	return func() uint64 {
		n = n*6364136223846793005 + 1442695040888963407
		return n | 1
	}
}

func memOpts(fs vfs.FS, seed uint64, deterministic bool) Options {
	return Options{FS: fs, NewIdentity: seeded(seed), Deterministic: deterministic}
}

func openOn(t testing.TB, dir string, o Options) *Store {
	t.Helper()
	s, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// kvDump is every key and value of the store, through ReadKV.
func kvDump(t testing.TB, s *Store) string {
	t.Helper()
	var buf bytes.Buffer
	if err := s.ReadKV().Scan(nil, []byte{0xff}, func(k, v []byte) bool {
		fmt.Fprintf(&buf, "%x=%x\n", k, v)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// fsDump is every file on fs under dir, with its size. (Not its bytes:
// Pebble writes two things into them that vary from run to run without
// changing what they hold. The MANIFEST records each new table's creation
// time, in wall-clock seconds. And each WAL chunk records how far the log
// was synced when it was written, which the log writer updates just after
// waking the waiters of a sync: a save that follows a synced one records
// that sync or the one before. Both are below the data a crash keeps, so
// recovery reads the same either way.)
func fsDump(t testing.TB, fs vfs.FS, dir string) string {
	t.Helper()
	files, err := CheckpointFiles(fs, dir)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, f := range files {
		info, err := fs.Stat(fs.PathJoin(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&buf, "%s %d\n", f, info.Size())
	}
	return buf.String()
}

func entries(t testing.TB, e core.Epoch, from, to core.Seq, content string) []core.Entry {
	var es []core.Entry
	for i := from; i <= to; i++ {
		es = append(es, dataEntry(t, e, i, fmt.Sprint(content, i)))
	}
	return es
}

// A store on a crashable MemFS: after CrashClone, exactly what was synced
// is there, under the same identity.
func TestMemFSCrash(t *testing.T) {
	for _, det := range []bool{false, true} {
		t.Run(fmt.Sprint("deterministic=", det), func(t *testing.T) {
			mem := vfs.NewCrashableMem()
			s := openOn(t, "/node/db", memOpts(mem, 1, det))
			id := s.Identity()
			hs := core.HardState{Epoch: 2, Vote: "a", Commit: core.Pos{Epoch: 2, Seq: 3}}
			if err := s.Save(SaveBatch{HardState: &hs, Entries: entries(t, 2, 1, 5, "synced "), Members: core.Members{{ID: "a"}}}, true); err != nil {
				t.Fatal(err)
			}
			if err := s.Save(SaveBatch{Entries: entries(t, 2, 6, 7, "synced ")}, true); err != nil {
				t.Fatal(err)
			}
			later := core.HardState{Epoch: 3, Commit: core.Pos{Epoch: 2, Seq: 7}}
			if err := s.Save(SaveBatch{HardState: &later, Entries: entries(t, 3, 8, 9, "not synced ")}, false); err != nil {
				t.Fatal(err)
			}
			if _, ok, _ := s.Get("v", testID(9)); !ok {
				t.Fatal("an unsynced save is not visible")
			}
			crashed := mem.CrashClone(vfs.CrashCloneCfg{})
			s.Close()

			c := openOn(t, "/node/db", memOpts(crashed, 2, det))
			if c.Identity() != id {
				t.Fatalf("identity after crash %x, want %x", c.Identity(), id)
			}
			r, err := c.Load()
			if err != nil {
				t.Fatal(err)
			}
			if r.HardState != hs || r.Applied != (core.Pos{Epoch: 2, Seq: 7}) || len(r.Entries) != 7 || r.MaxEpoch != 2 || len(r.Members) != 1 {
				t.Fatalf("after crash: %+v", r)
			}
			for i := uint64(1); i <= 9; i++ {
				e, ok, err := c.Get("v", testID(i))
				if err != nil || ok != (i <= 7) || (ok && e.Content != fmt.Sprint("synced ", i)) {
					t.Fatalf("engram %d after crash: %+v %v %v", i, e, ok, err)
				}
			}
			// The crashed store goes on, and a clean restart keeps it all.
			if err := c.Save(SaveBatch{HardState: &later, Entries: entries(t, 3, 8, 8, "again ")}, false); err != nil {
				t.Fatal(err)
			}
			want := kvDump(t, c)
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			c = openOn(t, "/node/db", memOpts(crashed, 3, det))
			if got := kvDump(t, c); got != want || c.Identity() != id {
				t.Fatalf("after a clean restart:\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// A checkpoint taken on one MemFS, streamed file by file to another, is
// installed there, and survives a crash of the second.
func TestMemFSCheckpointInstall(t *testing.T) {
	fsA, fsB := vfs.NewCrashableMem(), vfs.NewCrashableMem()
	a := openOn(t, "/a/db", memOpts(fsA, 1, true))
	hs := core.HardState{Epoch: 2, Vote: "a", Commit: core.Pos{Epoch: 2, Seq: 15}}
	if err := a.Save(SaveBatch{HardState: &hs, Entries: entries(t, 2, 1, 20, "from a "), Members: core.Members{{ID: "a"}, {ID: "b"}}}, true); err != nil {
		t.Fatal(err)
	}
	pos, err := a.Checkpoint("/a/snap")
	if err != nil || pos != (core.Pos{Epoch: 2, Seq: 20}) {
		t.Fatal(pos, err)
	}
	// The snapshot ends at a's commit point (capAtCommit): its data is a's
	// as of entry 15.
	ref := openOn(t, "/ref/db", memOpts(vfs.NewMem(), 9, true))
	if err := ref.Save(SaveBatch{HardState: &core.HardState{Epoch: 2}, Entries: entries(t, 2, 1, 15, "from a ")}, true); err != nil {
		t.Fatal(err)
	}
	want := kvDump(t, ref)
	pos = hs.Commit
	files, err := CheckpointFiles(fsA, "/a/snap")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 || !sortedStrings(files) || !contains(files, markerFile) {
		t.Fatalf("checkpoint files: %q", files)
	}
	// a moves on: the snapshot must not see it.
	if err := a.Save(SaveBatch{Entries: entries(t, 2, 21, 21, "later ")}, true); err != nil {
		t.Fatal(err)
	}

	b := openOn(t, "/b/db", memOpts(fsB, 2, true))
	bid := b.Identity()
	if err := b.Save(SaveBatch{HardState: &core.HardState{Epoch: 1, Vote: "b"}, Entries: entries(t, 1, 1, 1, "b's own ")}, true); err != nil {
		t.Fatal(err)
	}
	if err := b.Save(SaveBatch{Truncate: &core.Truncation{After: core.Pos{}, Reason: "test"}, Now: 1234}, true); err != nil {
		t.Fatal(err)
	}
	// The transfer: what the simulator's network does.
	if err := fsB.MkdirAll("/b/recv", 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if err := vfs.CopyAcrossFS(fsA, fsA.PathJoin("/a/snap", f), fsB, fsB.PathJoin("/b/recv", f)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := b.InstallSnapshot("/b/recv")
	if err != nil || got != pos {
		t.Fatal(got, err)
	}
	check := func(b *Store) {
		t.Helper()
		if b.Identity() != bid {
			t.Fatalf("identity %x, want b's own %x", b.Identity(), bid)
		}
		r, err := b.Load()
		if err != nil {
			t.Fatal(err)
		}
		if r.Applied != pos || r.Snapshot != pos || len(r.Entries) != 15 || r.HardState != (core.HardState{Epoch: 2, Commit: hs.Commit}) {
			t.Fatalf("after install: %+v", r)
		}
		if q, _ := b.Quarantine(); len(q) != 1 || q[0].Reason != "test" || q[0].TimeMS != 1234 {
			t.Fatalf("quarantine after install: %+v", q)
		}
		var data, wantData []string
		for _, l := range strings.Split(kvDump(t, b), "\n") {
			if strings.HasPrefix(l, "64") { // 'd': the engram data
				data = append(data, l)
			}
		}
		for _, l := range strings.Split(want, "\n") {
			if strings.HasPrefix(l, "64") {
				wantData = append(wantData, l)
			}
		}
		if len(data) == 0 || !reflect.DeepEqual(data, wantData) {
			t.Fatalf("data after install:\n%q\nwant\n%q", data, wantData)
		}
	}
	check(b)
	if fileExists(fsB, "/b/db.install") || fileExists(fsB, "/b/db.old") {
		t.Fatal("install left directories behind")
	}
	crashed := fsB.CrashClone(vfs.CrashCloneCfg{})
	b.Close()
	check(openOn(t, "/b/db", memOpts(crashed, 3, true)))
}

func sortedStrings(s []string) bool {
	for i := 1; i < len(s); i++ {
		if s[i-1] >= s[i] {
			return false
		}
	}
	return true
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// The same saves on fresh MemFSes with the same NewIdentity give the same
// store: the same Load, the same data, and the same files of the same
// sizes (see fsDump), before and after a crash.
func TestMemFSDeterministic(t *testing.T) {
	type result struct{ load, kv, files, crashedLoad, crashedKV, crashedFiles string }
	run := func() result {
		mem := vfs.NewCrashableMem()
		o := memOpts(mem, 42, true)
		s, err := Open("/db", o)
		if err != nil {
			t.Fatal(err)
		}
		hs := core.HardState{Epoch: 1, Vote: "a"}
		var last core.Seq
		for i := range 30 {
			es := entries(t, hs.Epoch, last+1, last+core.Seq(i%4+1), strings.Repeat("x", i*97))
			last += core.Seq(len(es))
			hs.Commit = core.Pos{Epoch: 1, Seq: min(last/2, 40)}
			if err := s.Save(SaveBatch{HardState: &hs, Entries: es}, i%3 != 2); err != nil {
				t.Fatal(err)
			}
			if i == 10 {
				if _, err := s.Prune(last / 3); err != nil {
					t.Fatal(err)
				}
			}
			if i == 20 {
				// A restart, then a truncation of the uncommitted suffix.
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if s, err = Open("/db", o); err != nil {
					t.Fatal(err)
				}
				hs.Epoch = 2
				if err := s.Save(SaveBatch{HardState: &hs, Truncate: &core.Truncation{After: core.Pos{Epoch: 1, Seq: last - 2}, Reason: "t"}, Now: 99}, true); err != nil {
					t.Fatal(err)
				}
				last -= 2
				hs.Epoch = 2
				es = entries(t, 2, last+1, last+1, "epoch 2")
				last++
				if err := s.Save(SaveBatch{Entries: es}, true); err != nil {
					t.Fatal(err)
				}
			}
		}
		load := func(s *Store) string {
			r, err := s.Load()
			if err != nil {
				t.Fatal(err)
			}
			return fmt.Sprintf("%+v %x", r, s.Identity())
		}
		var res result
		res.load, res.kv = load(s), kvDump(t, s)
		crashed := mem.CrashClone(vfs.CrashCloneCfg{})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		res.files = fsDump(t, mem, "/")
		c, err := Open("/db", memOpts(crashed, 7, true))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		res.crashedLoad, res.crashedKV = load(c), kvDump(t, c)
		res.crashedFiles = fsDump(t, crashed, "/")
		return res
	}
	a, b := run(), run()
	for _, f := range []struct{ name, a, b string }{
		{"Load", a.load, b.load}, {"data", a.kv, b.kv}, {"files", a.files, b.files},
		{"Load after crash", a.crashedLoad, b.crashedLoad}, {"data after crash", a.crashedKV, b.crashedKV}, {"files after crash", a.crashedFiles, b.crashedFiles},
	} {
		if f.a != f.b {
			t.Errorf("%s differs between two runs: %s", f.name, firstDiff(f.a, f.b))
		}
	}
	if a.crashedLoad == a.load {
		t.Error("the crash lost nothing: the test does not test it")
	}
}

// Deterministic turns WAL recycling off: a WAL made obsolete by a flush is
// deleted, not kept for reuse. (Pebble recycles only WALs written since it
// opened, and under Deterministic only an explicit flush makes one
// obsolete: this is the belt to the braces.)
func TestDeterministicNoRecycle(t *testing.T) {
	for _, det := range []bool{false, true} {
		mem := vfs.NewCrashableMem()
		s := openOn(t, "/db", memOpts(mem, 1, det))
		if err := s.Save(SaveBatch{HardState: &core.HardState{Epoch: 1}, Entries: entries(t, 1, 1, 3, "x")}, true); err != nil {
			t.Fatal(err)
		}
		if err := s.db.Flush(); err != nil {
			t.Fatal(err)
		}
		s.db.TestOnlyWaitForCleaning()
		if n := s.db.Metrics().WAL.ObsoleteFiles; (n == 0) != det {
			t.Errorf("deterministic %v: %d obsolete WALs kept for recycling", det, n)
		}
		files, _ := CheckpointFiles(mem, "/db")
		logs := 0
		for _, f := range files {
			if strings.HasSuffix(f, ".log") {
				logs++
			}
		}
		if (logs == 1) != det {
			t.Errorf("deterministic %v: WALs after a flush: %q", det, files)
		}
	}
}

// Deterministic keeps Pebble from flushing on its own: megabytes of saves
// rotate memtables and WALs but write no table, where Pebble's defaults
// flush in the background.
func TestDeterministicNoFlush(t *testing.T) {
	for _, det := range []bool{true, false} {
		mem := vfs.NewCrashableMem()
		s := openOn(t, "/db", memOpts(mem, 1, det))
		payload := bytes.Repeat([]byte("p"), 60<<10)
		hs := core.HardState{Epoch: 1}
		for i := core.Seq(1); i <= 100; i++ { // 6 MiB
			e := core.Entry{Pos: core.Pos{Epoch: 1, Seq: i}, Type: core.EntryEpochStart, Payload: payload}
			if err := s.Save(SaveBatch{HardState: &hs, Entries: []core.Entry{e}}, i%2 == 0); err != nil {
				t.Fatal(err)
			}
		}
		flushed := func() bool { return s.db.Metrics().Flush.Count > 0 }
		if !det {
			for range 500 {
				if flushed() {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		if flushed() == det {
			t.Errorf("deterministic %v: flushed %v", det, flushed())
		}
		files, _ := CheckpointFiles(mem, "/db")
		logs := 0
		for _, f := range files {
			if strings.HasSuffix(f, ".log") {
				logs++
			}
		}
		if det && logs < 2 {
			t.Errorf("no memtable rotation: %q", files)
		}
	}
}

// On a file system other than the OS's, with no DiskFree, the store holds
// nothing back for space unless the file system reports a size.
func TestMemFSSpace(t *testing.T) {
	mem := vfs.NewCrashableMem()
	s := openOn(t, "/db", memOpts(mem, 1, true))
	if free, total, _, err := s.Space(); err != nil || free != 0 || total != 0 {
		t.Fatal(free, total, err)
	}
	if err := s.Admit(1 << 30); err != nil {
		t.Fatal(err)
	}
	mem.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 1 << 20, TotalBytes: 1 << 30})
	if err := s.Admit(1); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Admit on a full MemFS: %v", err)
	}
}

func TestReadKV(t *testing.T) {
	s := openOn(t, "/db", memOpts(vfs.NewCrashableMem(), 1, true))
	if err := s.Save(SaveBatch{HardState: &core.HardState{Epoch: 1}, Entries: entries(t, 1, 1, 2, "x")}, false); err != nil {
		t.Fatal(err)
	}
	kv := s.ReadKV()
	if kv.Set([]byte("dx"), nil) == nil || kv.Delete([]byte("dx")) == nil {
		t.Fatal("ReadKV writes")
	}
	if _, ok, err := kv.Get(seqKey(spaceLog, 2)); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if !strings.Contains(kvDump(t, s), "6c0000000000000002=") {
		t.Fatal("Scan misses the log")
	}
	s.Close()
	if _, _, err := kv.Get(seqKey(spaceLog, 2)); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	if err := kv.Scan(nil, nil, func(k, v []byte) bool { return true }); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}

// failSync fails the next Sync of a WAL once armed.
type failSync struct{ armed, fired atomic.Bool }

func (f *failSync) MaybeError(op errorfs.Op) error {
	if (op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData) && strings.HasSuffix(op.Path, ".log") &&
		f.armed.Load() && f.fired.CompareAndSwap(false, true) {
		return errorfs.ErrInjected
	}
	return nil
}

func (f *failSync) String() string { return "fail-wal-sync-once" }

// A failed WAL sync fails its Save and every later write; a crash then
// keeps every entry whose Save succeeded, and not the failed one.
func TestWALSyncFails(t *testing.T) {
	mem := vfs.NewCrashableMem()
	inj := &failSync{}
	s := openOn(t, "/db", memOpts(errorfs.Wrap(mem, inj), 1, true))
	id := s.Identity()
	hs := core.HardState{Epoch: 1, Vote: "a"}
	if err := s.Save(SaveBatch{HardState: &hs, Entries: entries(t, 1, 1, 3, "ok ")}, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(SaveBatch{Entries: entries(t, 1, 4, 4, "ok ")}, true); err != nil {
		t.Fatal(err)
	}
	inj.armed.Store(true)
	err := s.Save(SaveBatch{Entries: entries(t, 1, 5, 5, "failed ")}, true)
	if err == nil || !errors.Is(err, errorfs.ErrInjected) || !inj.fired.Load() {
		t.Fatalf("Save with a failed WAL sync: %v", err)
	}
	for _, sync := range []bool{true, false} {
		if err := s.Save(SaveBatch{Entries: entries(t, 1, 6, 6, "after ")}, sync); err == nil {
			t.Fatalf("Save (sync %v) after a failed sync succeeded", sync)
		}
	}
	if _, err := s.Load(); err == nil {
		t.Fatal("Load after a failed sync")
	}
	if _, err := s.Prune(1); err == nil {
		t.Fatal("Prune after a failed sync")
	}
	if _, err := s.Checkpoint("/snap"); err == nil || fileExists(mem, "/snap") {
		t.Fatal("Checkpoint after a failed sync", err)
	}
	crashed := mem.CrashClone(vfs.CrashCloneCfg{})
	s.Close() // an error, or not: the WAL writer has failed

	c := openOn(t, "/db", memOpts(crashed, 2, true))
	r, err := c.Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.Identity() != id || r.Applied != (core.Pos{Epoch: 1, Seq: 4}) || len(r.Entries) != 4 || r.HardState != hs {
		t.Fatalf("after the crash: %+v", r)
	}
	for i := uint64(1); i <= 6; i++ {
		if _, ok, _ := c.Get("v", testID(i)); ok != (i <= 4) {
			t.Fatalf("engram %d present %v after the crash", i, ok)
		}
	}
}

// firstDiff names the first line where a and b differ, and where in it.
func firstDiff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(la), len(lb)) {
		if la[i] != lb[i] {
			j := 0
			for j < min(len(la[i]), len(lb[i])) && la[i][j] == lb[i][j] {
				j++
			}
			lo := max(0, j-40)
			return fmt.Sprintf("line %d, byte %d: %.120q vs %.120q", i, j, la[i][lo:], lb[i][lo:])
		}
	}
	return fmt.Sprintf("%d lines vs %d", len(la), len(lb))
}
