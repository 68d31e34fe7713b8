package sim

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/muninndb/muninn/core"
)

// An fsync failure armed when a synced save fills the memtable fails that
// save, and nothing panics: Pebble closes and syncs the current log inside
// the commit (DB.rotateWAL) and panics if that sync fails, so the failure
// hits the save's own sync in the next log. The store then takes no more
// writes, and a crash keeps every save before the failed one.
func TestPebbleFsyncFailureAtRotation(t *testing.T) {
	w := &World{}
	open := func() *pebbleStore {
		p := &pebbleStore{w: w, disk: &diskFaults{w: w, node: "n1"}, mem: vfs.NewCrashableMem()}
		if err := p.open(func() uint64 { return 1 }); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}
	logs := func(p *pebbleStore) int {
		names, err := p.mem.List(pebbleDir)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, name := range names {
			if strings.HasSuffix(name, ".log") {
				n++
			}
		}
		return n
	}
	hs := core.HardState{Epoch: 1}
	payload := bytes.Repeat([]byte("p"), 60<<10)
	save := func(p *pebbleStore, seq core.Seq) error {
		e := core.Entry{Pos: core.Pos{Epoch: 1, Seq: seq}, Type: core.EntryEpochStart, Payload: payload}
		return p.Save(&core.Ready{HardState: &hs, Entries: []core.Entry{e}}, true, nil)
	}

	// Which save rotates the log (the first memtable holds 256 KiB).
	dry := open()
	rotates := core.Seq(0)
	for seq := core.Seq(1); seq <= 20 && rotates == 0; seq++ {
		before := logs(dry)
		if err := save(dry, seq); err != nil {
			t.Fatal(err)
		}
		if logs(dry) > before {
			rotates = seq
		}
	}
	if rotates < 2 {
		t.Fatalf("no save rotated the log after the first (rotates at %d)", rotates)
	}

	p := open()
	for seq := core.Seq(1); seq < rotates; seq++ {
		if err := save(p, seq); err != nil {
			t.Fatal(err)
		}
	}
	before := logs(p)
	p.disk.failSync = true
	err := save(p, rotates)
	if err == nil || !p.disk.injected(err) {
		t.Fatalf("the save that rotated the log with an fsync failure armed: %v", err)
	}
	if logs(p) <= before {
		t.Fatal("the failed save did not rotate the log: the test no longer covers a rotation")
	}
	if p.walFailed == nil || p.disk.failSync {
		t.Fatalf("the failure was not consumed by the save's sync: walFailed %v, still armed %v", p.walFailed, p.disk.failSync)
	}
	// Nothing reaches Pebble any more (a rotation there would panic).
	if err := save(p, rotates); err == nil || !p.disk.injected(err) {
		t.Fatalf("a save after the failed one: %v", err)
	}
	if err := p.Sync(); err == nil || !p.disk.injected(err) {
		t.Fatalf("a sync after the failed save: %v", err)
	}
	if err := p.Prune(core.Compaction{Upto: core.Pos{Epoch: 1, Seq: 1}}); err == nil || !p.disk.injected(err) {
		t.Fatalf("a prune after the failed save: %v", err)
	}

	st, err := p.Crash()
	if err != nil {
		t.Fatal(err)
	}
	c := st.(*pebbleStore)
	t.Cleanup(c.Close)
	if last := c.Last(); last.Seq != rotates-1 {
		t.Fatalf("after the crash the log ends at %s, want %d (every save before the failed one)", last, rotates-1)
	}
	if c.walFailed != nil {
		t.Fatal("the reopened store inherited the failure")
	}
	if err := save(c, rotates); err != nil {
		t.Fatalf("a save on the reopened store: %v", err)
	}
}

// A sync after unsynced saves (the pipeline's) takes an armed failure and
// fails, and the store takes no more writes.
func TestPebbleFsyncFailureAtPipelinedSync(t *testing.T) {
	w := &World{}
	p := &pebbleStore{w: w, disk: &diskFaults{w: w, node: "n1"}, mem: vfs.NewCrashableMem()}
	if err := p.open(func() uint64 { return 1 }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	hs := core.HardState{Epoch: 1}
	for seq := core.Seq(1); seq <= 3; seq++ {
		e := core.Entry{Pos: core.Pos{Epoch: 1, Seq: seq}, Type: core.EntryEpochStart, Payload: []byte("x")}
		p.disk.failSync = true // unsynced saves leave it armed
		if err := p.Save(&core.Ready{HardState: &hs, Entries: []core.Entry{e}}, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Sync(); err == nil || !p.disk.injected(err) || p.walFailed == nil {
		t.Fatalf("a sync with a failure armed: %v (walFailed %v)", err, p.walFailed)
	}
	if err := p.Save(&core.Ready{HardState: &hs}, true, nil); err == nil || !p.disk.injected(err) {
		t.Fatalf("a save after the failed sync: %v", err)
	}
}
