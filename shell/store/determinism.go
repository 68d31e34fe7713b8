package store

import (
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/muninndb/muninn/core/engram"
	"math"
)

// deterministicMemTable is the memtable size under Options.Deterministic.
// Pebble flushes in the background once its immutable memtables add up to
// half of it: 32 MiB written since the last open, which a simulated run never
// reaches. (Memtables still rotate as they fill — 256 KiB, then doubling —
// inside the commit that filled the memtable: it closes and syncs the WAL
// and starts the next one. Which commit that is is not set by the saves
// alone: the memtable's skiplist draws node heights from math/rand, so the
// point moves by a few entries from run to run, and with it which unsynced
// saves the closing sync makes durable.)
const deterministicMemTable = 64 << 20

// deterministicOptions sets up Pebble for Options.Deterministic: nothing
// runs in the background that could change what a crash of the file system
// keeps or what reads return, and nothing depends on timing. What is left
// in the background touches no file (Pebble's logging and event rate
// limits, which use the wall clock, only decide what is logged). Each
// setting says why it is there.
func deterministicOptions(po *pebble.Options) {
	// Compactions rewrite tables and the MANIFEST (and delete the inputs)
	// whenever the scheduler gets to them. This also turns off the
	// delete-only, elision-only and read-triggered compactions (reads
	// sample keys and would schedule work). The store asks for none.
	po.DisableAutomaticCompactions = true
	// With no compactions, L0 only grows (every Flush adds files, and a
	// checkpoint copies them all): Pebble would stall writes forever once
	// L0 reaches its stop threshold (a simulated snapshot install hung in
	// Flush, seed 100064 with --store pebble).
	po.L0StopWritesThreshold = math.MaxInt32
	// Flushes write tables, the MANIFEST and make WALs obsolete, on a
	// background goroutine (see deterministicMemTable). Data a flush
	// writes is already synced in the WAL the rotation closed, but which
	// files a crash finds would depend on when the flush got done.
	po.MemTableSize = deterministicMemTable
	// A memtable holding range deletions (Prune, truncations, undo clean-up
	// write them) or range keys can be flushed on a wall-clock timer. Off
	// by default in Pebble; set so that a change of default cannot creep in.
	po.FlushDelayDeleteRange = 0
	po.FlushDelayRangeKey = 0
	// WAL syncs happen exactly when a synced save asks for one: no
	// background sync_file_range every N bytes and no minimum interval
	// that holds a sync back on a timer (both Pebble's defaults too).
	po.WALBytesPerSync = 0
	po.WALMinSyncInterval = nil
	// No WAL recycling: Pebble would reuse an obsolete WAL by renaming it
	// and overwriting it in place, old records behind the new ones, and
	// which WALs are obsolete when the next one is created depends on when
	// background flushes and file deletions got done.
	po.Cleaner = newNoRecycle(pebble.DeleteCleaner{}.Clean)
	// Table statistics are loaded by a background goroutine. They only
	// read, and only feed compaction heuristics, but off so that nothing
	// at all runs behind the store's back.
	po.DisableTableStats = true
}

// settle waits, under Options.Deterministic, until the obsolete files
// Pebble queued for deletion are deleted. Pebble deletes them on a
// background goroutine (not synced: a directory sync that comes later
// makes the deletion durable), so without this whether a crash keeps an
// obsolete WAL, table or OPTIONS file would depend on timing. Called where
// files become obsolete while the DB stays open: after Open (the WAL it
// replayed and flushed, older OPTIONS and MANIFESTs) and after a
// Checkpoint (which holds deletions back while it runs). Close waits by
// itself. TestOnlyWaitForCleaning is meant for tests; Deterministic is
// only for the simulator, which is one.
func (s *Store) settle() {
	if s.opts.Deterministic && s.db != nil {
		s.db.TestOnlyWaitForCleaning()
	}
}

// noRecycleCleaner deletes obsolete files like pebble.DeleteCleaner, and
// turns off WAL recycling: Pebble recycles no log when its Cleaner
// implements the internal NeedsFileContents marker, which the embedded
// ArchiveCleaner does (its Clean, which would archive, is replaced). T is
// Pebble's internal FileType, which cannot be named here: newNoRecycle
// infers it from DeleteCleaner.Clean.
type noRecycleCleaner[T any] struct {
	pebble.ArchiveCleaner
	del func(vfs.FS, T, string) error
}

func newNoRecycle[T any](del func(vfs.FS, T, string) error) noRecycleCleaner[T] {
	return noRecycleCleaner[T]{del: del}
}

func (c noRecycleCleaner[T]) Clean(fs vfs.FS, fileType T, path string) error {
	return c.del(fs, fileType, path)
}

// String names it in Pebble's OPTIONS file (Pebble ignores a name it does
// not know when it reads one back).
func (noRecycleCleaner[T]) String() string { return "delete-no-recycle" }

// ReadKV is a read-only engram.KV over the store's data as it is now
// (every applied save, synced or not): Set and Delete fail. For checkers,
// such as the simulator's comparison of two stores key by key with Scan.
// Its reads fail with ErrClosed once the store is closed.
func (s *Store) ReadKV() engram.KV { return checkedKV{s} }

// checkedKV is readKV that checks the store is open first.
type checkedKV struct{ s *Store }

func (kv checkedKV) Get(key []byte) ([]byte, bool, error) {
	if err := kv.s.readable(); err != nil {
		return nil, false, err
	}
	return readKV(kv).Get(key)
}

func (kv checkedKV) Scan(start, end []byte, fn func(k, v []byte) bool) error {
	if err := kv.s.readable(); err != nil {
		return err
	}
	return readKV(kv).Scan(start, end, fn)
}

func (kv checkedKV) Set(key, val []byte) error { return errReadOnly }
func (kv checkedKV) Delete(key []byte) error   { return errReadOnly }
