package store

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
)

// TestEntriesMax: the bounded read stops once it holds maxBytes, returns at
// least one entry, and reads a prefix; LastMembership finds the last
// membership entry of a range.
func TestEntriesMax(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "s"))
	big := strings.Repeat("b", 1000)
	var es []core.Entry
	for q := core.Seq(1); q <= 100; q++ {
		e := dataEntry(t, 1, q, big)
		if q%30 == 0 {
			e = core.Entry{Pos: core.Pos{Epoch: 1, Seq: q}, Type: core.EntryMembership, Payload: core.EncodeMembers(core.Members{{ID: core.NodeID(fmt.Sprintf("m%d", q))}})}
		}
		es = append(es, e)
	}
	if err := s.Save(SaveBatch{HardState: &core.HardState{Epoch: 1, Commit: core.Pos{Epoch: 1, Seq: 100}}, Entries: es}, true); err != nil {
		t.Fatal(err)
	}
	one := es[0].Size()
	got, err := s.EntriesMax(1, 100, 10*one)
	if err != nil || len(got) != 10 || got[9].Pos.Seq != 10 {
		t.Fatalf("EntriesMax(10 entries' bytes): %d entries, %v", len(got), err)
	}
	if got, _ := s.EntriesMax(5, 100, 1); len(got) != 1 || got[0].Pos.Seq != 5 {
		t.Fatalf("EntriesMax(1 byte): %d entries", len(got))
	}
	if got, _ := s.EntriesMax(1, 100, 0); len(got) != 100 {
		t.Fatalf("EntriesMax(no limit): %d entries", len(got))
	}
	for _, c := range []struct {
		lo, hi core.Seq
		want   core.Seq
	}{{1, 100, 90}, {1, 89, 60}, {31, 59, 0}, {30, 30, 30}, {1, 29, 0}} {
		e, ok, err := s.LastMembership(c.lo, c.hi)
		if err != nil || ok != (c.want != 0) || (ok && e.Pos.Seq != c.want) {
			t.Fatalf("LastMembership(%d, %d) = %s, %v, %v; want seq %d", c.lo, c.hi, e.Pos, ok, err, c.want)
		}
		if ok {
			if ms, err := core.DecodeMembers(e.Payload); err != nil || string(ms[0].ID) != fmt.Sprintf("m%d", c.want) {
				t.Fatalf("LastMembership(%d, %d): members %v, %v", c.lo, c.hi, ms, err)
			}
		}
	}
}

// TestEntriesDuringInstall (review 15, finding 7): the log reads that run
// outside the store's lock (the archiver's EntriesMax, Entry, the prune's
// LastMembership) may run while a snapshot install closes and swaps the
// DB. A scan in progress must hold the DB open: the install waits for it
// (and a read after the close gets ErrClosed), rather than closing the
// Pebble DB under the scan. Deterministic: the scan is parked after its
// first entry; the install either reaches the swap ("prepared", after
// closing the DB: the bug) or waits for the scan (a writer is then queued
// on dbLife, so a TryRLock fails).
func TestEntriesDuringInstall(t *testing.T) {
	root := t.TempDir()
	a := openT(t, filepath.Join(root, "a"))
	var es []core.Entry
	for q := core.Seq(1); q <= 50; q++ {
		es = append(es, dataEntry(t, 2, q, "x"))
	}
	if err := a.Save(SaveBatch{HardState: &core.HardState{Epoch: 2, Commit: core.Pos{Epoch: 2, Seq: 50}}, Entries: es}, true); err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(root, "snap")
	if _, err := a.Checkpoint(snap); err != nil {
		t.Fatal(err)
	}
	b := openT(t, filepath.Join(root, "b"))
	if err := b.Save(SaveBatch{HardState: &core.HardState{Epoch: 2, Commit: core.Pos{Epoch: 2, Seq: 20}}, Entries: es[:30]}, true); err != nil {
		t.Fatal(err)
	}
	parked, release := make(chan struct{}), make(chan struct{})
	var swapped atomic.Bool
	b.onScan = func() { close(parked); <-release }
	b.onInstallStep = func(step string) {
		if step == "prepared" {
			swapped.Store(true)
		}
	}
	type result struct {
		es  []core.Entry
		err error
	}
	scanned := make(chan result, 1)
	go func() {
		es, err := b.EntriesMax(1, 30, 0)
		scanned <- result{es, err}
	}()
	<-parked
	b.onScan = nil
	installed := make(chan error, 1)
	go func() {
		_, err := b.InstallSnapshot(snap)
		installed <- err
	}()
	// Bounded poll: the install gets to the DB's close within the deadline.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if swapped.Load() {
			close(release)
			<-scanned
			<-installed
			t.Fatal("the install closed the DB while a scan of it was running")
		}
		if b.dbLife.TryRLock() {
			b.dbLife.RUnlock()
		} else {
			break // the install waits for the scan
		}
		if time.Now().After(deadline) {
			close(release)
			t.Fatal("the install never reached the DB's close")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	r := <-scanned
	if r.err != nil || len(r.es) != 30 || r.es[29].Pos.Seq != 30 {
		t.Fatalf("the scan parked during the install: %d entries, %v", len(r.es), r.err)
	}
	if err := <-installed; err != nil {
		t.Fatal(err)
	}
	if got, err := b.EntriesMax(1, 50, 0); err != nil || len(got) == 0 || got[len(got)-1].Pos.Seq != 50 {
		t.Fatalf("after the install: %d entries, %v", len(got), err)
	}
}
