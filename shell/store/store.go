// Package store is MuninnDB's durable storage on Pebble: the engram data,
// the replicated log, the protocol's durable state, undo records for applied
// entries above the commit point, and the quarantine of removed entries, all
// in one Pebble DB so that one batch changes them together.
//
// Key layout (one byte of keyspace, then the key; see docs/storage.md):
//
//	'd' ...                 data: engram.EngramKey and the vault states
//	'e' seq(8, BE)          epoch history: the log's entries from seq on are of epoch(8)
//	'l' seq(8, BE)          log entry: epoch(8) type(1) durability(1) payload
//	'm' name                meta: hardstate, members, applied, maxepoch, base, snapshot, format, epochs, clusterid
//	'q' epoch(8) seq(8)     quarantined entry (JSON)
//	'u' seq(8)              undo record of the data entry at seq (above commit)
package store

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/muninndb/muninn/core"
)

// Keyspace prefixes.
const (
	spaceEpochs     = 'e'
	spaceLog        = 'l'
	spaceMeta       = 'm'
	spaceQuarantine = 'q'
	spaceUndo       = 'u'
)

// Meta keys.
var (
	metaFormat    = []byte("mformat")
	metaHardState = []byte("mhardstate")
	metaMembers   = []byte("mmembers")
	// metaBaseMembers: the membership in force at the log base, so a
	// checkpoint can be capped below a change (capAtCommit).
	metaBaseMembers = []byte("mbasemembers")
	metaApplied     = []byte("mapplied")
	metaMaxEpoch    = []byte("mmaxepoch")
	metaBase        = []byte("mbase")
	metaSnapshot    = []byte("msnapshot")
	// metaEpochs marks a store that keeps the epoch history (see
	// EpochHistory); one written before it had none is given one on open.
	metaEpochs = []byte("mepochs")
	// metaClusterID: the cluster id, 8 bytes big-endian (cluster_id.go).
	metaClusterID = []byte("mclusterid")
)

// formatValue marks a MuninnDB store; a DB without it is refused.
const formatValue = "muninn-store/1"

// markerFile is written beside Pebble's files once the store exists, so a
// store whose MANIFEST went missing fails to open instead of starting empty.
const markerFile = "MUNINN-STORE"

// creatingFile is written before a new store's first Pebble files and
// removed once markerFile is there: a process killed in between leaves it,
// and the next open knows the orphan files are its own unfinished creation
// (which never held an acknowledged write: a node serves only once its
// store is open), not a damaged store, and creates the store again.
const creatingFile = "MUNINN-STORE-CREATING"

func seqKey(space byte, s core.Seq) []byte {
	k := make([]byte, 9)
	k[0] = space
	binary.BigEndian.PutUint64(k[1:], uint64(s))
	return k
}

func quarantineKey(p core.Pos) []byte {
	k := make([]byte, 17)
	k[0] = spaceQuarantine
	binary.BigEndian.PutUint64(k[1:], uint64(p.Epoch))
	binary.BigEndian.PutUint64(k[9:], uint64(p.Seq))
	return k
}

// Options tune a Store. The zero value is usable.
type Options struct {
	// CacheSize is Pebble's block cache in bytes (default 64 MiB).
	CacheSize int64
	// Log receives Pebble's messages and the events an operator must see
	// (background, flush and compaction errors, a slow disk, write stalls,
	// low disk space), rate-limited per kind. Default: discarded (errors
	// are still returned).
	Log *slog.Logger
	// DiskFree reports the free space and size of the store's filesystem.
	// Default on the OS's file system: statfs of the directory, or the
	// TestFreeFileEnv file. On any other FS: FS.GetDiskUsage, and no limit
	// at all where the FS does not support it (a vfs.MemFS unless its
	// TestingSetDiskUsage was called): no host path is looked at.
	DiskFree DiskFreeFunc
	// SpaceTTL is how long a free-space sample is used (default 200 ms, or
	// every time when Deterministic; negative: sample every time).
	SpaceTTL time.Duration
	// FS is the file system the store lives on (default vfs.Default, the
	// OS's). Every file operation of the store goes through it: Pebble's
	// own, the marker and IDENTITY files, the write-ahead log check,
	// checkpoints, snapshot installs and their recovery. The simulator runs
	// the store on vfs.NewCrashableMem and crashes it with CrashClone.
	FS vfs.FS
	// NewIdentity mints the store identity when a store is created
	// (default: NewIdentity, from crypto/rand). When it is set the store
	// reads no global randomness: the simulator passes a seeded function.
	NewIdentity func() uint64
	// Deterministic is for the simulator: Pebble runs nothing in the
	// background that could change what a crash of the file system keeps
	// or what reads return, and nothing whose outcome depends on timing
	// (see deterministicOptions). A store that is written too much for it
	// (tens of MiB between restarts) still works, only no longer
	// deterministically. Not for production.
	Deterministic bool
}

// ErrFenced is returned (wrapped) when a save would move the node's epoch
// backwards or append an entry from an epoch the log has moved past.
var ErrFenced = errors.New("fenced")

// ErrClosed is returned after Close or after a failed sync.
var ErrClosed = errors.New("store: closed")

// Store is one node's durable state. Its methods are safe for concurrent use;
// saves are applied one at a time and share fsyncs (see Save).
type Store struct {
	dir  string
	opts Options // FS and NewIdentity set
	fs   vfs.FS

	mu sync.Mutex // serializes saves, prunes, checkpoints and installs
	// dbLife guards db's lifetime for the reads that run outside mu
	// (EntriesMax, LastMembership, Entry): they hold it shared across their
	// scan; setting or closing db (open, closeDB, Close; under mu) holds it
	// exclusively. Order: mu, then dbLife; a reader holding dbLife never
	// takes mu.
	dbLife   sync.RWMutex
	db       *pebble.DB
	cache    interface{ Unref() }
	failed   error          // set when a sync failed: nothing more is written
	hs       core.HardState // persisted
	maxEpoch core.Epoch     // highest epoch persisted in a hard state or an entry
	last     core.Pos       // last log entry (or base when the log is empty)
	base     core.Pos       // the position just before the first retained entry
	members  core.Members
	// baseMembers: the membership in force at base (nil: not known, a store
	// older than this record that has not pruned since).
	baseMembers core.Members
	snapshot    core.Pos
	identity    uint64 // minted when the store is created; see Identity
	// clusterID: see ClusterID (cluster_id.go); written under mu.
	clusterID atomic.Uint64
	// corrupt is set by Pebble's DataCorruption event (any goroutine).
	corrupt atomic.Pointer[error]
	space   *spaceGuard
	plog    *pebbleLog
	// onInstallStep, set by tests, is called at each step of a snapshot
	// install's swap (installStep).
	onInstallStep func(step string)
	// onScan, set by tests, is called by EntriesMax after the first entry
	// of its scan (it holds the DB open then).
	onScan func()
}

// Open opens (creating if needed) the store in dir. An interrupted
// InstallSnapshot is completed or discarded first. A store that is damaged
// (a missing or corrupt MANIFEST, a corrupt table or log file, inconsistent
// meta) fails with an error naming the directory and, where Pebble says, the
// file; it never starts silently with partial state. A write-ahead log that
// is damaged before records synced after the damage is refused (checkWAL);
// a torn tail left by a crash mid-write is not damage.
func Open(dir string, opts Options) (*Store, error) {
	s := newStore(dir, opts)
	if err := recoverInstall(s.fs, dir); err != nil {
		return nil, err
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

// newStore sets up a Store for dir, not opened yet.
func newStore(dir string, opts Options) *Store {
	if opts.FS == nil {
		opts.FS = vfs.Default
	}
	if opts.NewIdentity == nil {
		opts.NewIdentity = NewIdentity
	}
	s := &Store{dir: dir, opts: opts, fs: opts.FS}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s.plog = newPebbleLog(log)
	ttl := opts.SpaceTTL
	switch {
	case ttl == 0 && opts.Deterministic:
		// A cached sample would be used for a wall-clock time: whether a
		// save is refused for space would depend on timing.
		ttl = -1
	case ttl == 0:
		ttl = spaceTTL
	}
	s.space = newSpaceGuard(s.fs, dir, opts.DiskFree, ttl, s.plog)
	return s
}

func (s *Store) open() error {
	dir := s.dir
	existed := fileExists(s.fs, s.fs.PathJoin(dir, markerFile))
	creating := s.fs.PathJoin(dir, creatingFile)
	if !existed {
		if fileExists(s.fs, creating) {
			s.plog.emit(slog.LevelWarn, "store-create", fmt.Sprintf("store %s: its creation was interrupted (a process killed on its first start); creating it again", dir))
			if err := clearDir(s.fs, dir); err != nil {
				return fmt.Errorf("store %s: clearing an interrupted creation: %w", dir, err)
			}
		} else if err := refuseOrphanFiles(s.fs, dir); err != nil {
			return err
		}
		if err := mkdirAllSync(s.fs, dir); err != nil {
			return fmt.Errorf("store %s: %w", dir, err)
		}
		if err := writeFileSync(s.fs, creating, []byte(formatValue+"\n")); err != nil {
			return fmt.Errorf("store %s: %w", dir, err)
		}
	} else if err := checkWAL(s.fs, dir); err != nil {
		return err
	}
	size := s.opts.CacheSize
	if size == 0 {
		size = 64 << 20
	}
	cache := pebble.NewCache(size)
	po := &pebble.Options{
		FS:                 s.fs,
		Cache:              cache,
		Logger:             s.plog,
		ErrorIfNotExists:   existed,
		FormatMajorVersion: pebbleFormat,
		EventListener:      s.listener(s.plog),
	}
	if s.opts.Deterministic {
		deterministicOptions(po)
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		cache.Unref()
		switch {
		case pebble.IsCorruptionError(err):
			return fmt.Errorf("store %s: open: %w: the store is damaged and would start with less than it holds, so it refuses to start. "+
				"Restore this node: move its data directory aside and start it empty, so that it rejoins the cluster as a fresh member (a Lobe, or an Observer if it was one) (docs/storage.md, \"Damage\")", dir, err)
		case errors.Is(err, syscall.ENOSPC):
			return fmt.Errorf("store %s: open: %w: free space on that disk, then start again", dir, err)
		}
		return fmt.Errorf("store %s: open: %w", dir, err)
	}
	s.dbLife.Lock()
	s.db, s.cache = db, cache
	s.dbLife.Unlock()
	s.settle()
	if err := s.loadMeta(!existed); err != nil {
		s.closeDB()
		return err
	}
	if !existed {
		if err := writeFileSync(s.fs, s.fs.PathJoin(dir, markerFile), []byte(formatValue+"\n")); err != nil {
			s.closeDB()
			return fmt.Errorf("store %s: %w", dir, err)
		}
	}
	if fileExists(s.fs, creating) {
		// Created (the marker is synced): the creation is over.
		if err := s.fs.Remove(creating); err != nil {
			s.closeDB()
			return fmt.Errorf("store %s: %w", dir, err)
		}
		if err := syncDir(s.fs, dir); err != nil {
			s.closeDB()
			return fmt.Errorf("store %s: %w", dir, err)
		}
	}
	return nil
}

// mkdirAllSync makes dir and any missing parents, syncing the directory
// that holds each one it makes, so that a crash cannot lose them (Pebble,
// which made the directory before, syncs its parent the same way).
func mkdirAllSync(fs vfs.FS, dir string) error {
	if fileExists(fs, dir) {
		return nil
	}
	parent := fs.PathDir(dir)
	if parent != dir {
		if err := mkdirAllSync(fs, parent); err != nil {
			return err
		}
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if parent == dir {
		return nil
	}
	return syncDir(fs, parent)
}

// clearDir removes everything in dir (an interrupted creation's files).
func clearDir(fs vfs.FS, dir string) error {
	names, err := listDir(fs, dir)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := fs.RemoveAll(fs.PathJoin(dir, name)); err != nil {
			return err
		}
	}
	return syncDir(fs, dir)
}

// refuseOrphanFiles refuses a directory holding Pebble files but no store
// marker, which would otherwise be opened as a fresh, empty DB.
func refuseOrphanFiles(fs vfs.FS, dir string) error {
	names, err := listDir(fs, dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("store %s: %w", dir, err)
	}
	for _, name := range names {
		switch filepath.Ext(name) {
		case ".sst", ".log", ".blob":
			return fmt.Errorf("store %s: holds %s but no %s marker: not a MuninnDB store, or a damaged one; refusing to start empty. "+
				"If this node never started successfully (killed during its first start by a version before %s existed), move the directory aside and start it again", dir, name, markerFile, creatingFile)
		}
	}
	return nil
}

func (s *Store) closeDB() {
	s.dbLife.Lock()
	defer s.dbLife.Unlock()
	if s.db != nil {
		s.db.Close()
		s.db = nil
	}
	if s.cache != nil {
		s.cache.Unref()
		s.cache = nil
	}
}

// Close closes the store.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return ErrClosed
	}
	s.dbLife.Lock()
	defer s.dbLife.Unlock()
	err := s.db.Close()
	s.db = nil
	s.cache.Unref()
	s.cache = nil
	if err != nil {
		return fmt.Errorf("store %s: close: %w", s.dir, err)
	}
	return nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) usable() error {
	if s.db == nil {
		return ErrClosed
	}
	if e := s.corrupt.Load(); e != nil {
		return *e
	}
	return s.failed
}

// get returns a copy of key's value.
func (s *Store) get(key []byte) ([]byte, bool, error) {
	v, c, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := append([]byte(nil), v...)
	c.Close()
	return out, true, nil
}

// loadMeta reads the meta keyspace into s and checks it agrees with the log.
func (s *Store) loadMeta(fresh bool) error {
	f, ok, err := s.get(metaFormat)
	if err != nil {
		return fmt.Errorf("store %s: read meta: %w", s.dir, err)
	}
	if !ok {
		if !fresh {
			return fmt.Errorf("store %s: the format marker is missing: not a MuninnDB store, or damaged", s.dir)
		}
		if err := s.db.Set(metaFormat, []byte(formatValue), pebble.Sync); err != nil {
			return fmt.Errorf("store %s: %w", s.dir, err)
		}
	} else if string(f) != formatValue {
		return fmt.Errorf("store %s: format %q is not %q", s.dir, f, formatValue)
	}
	if err := s.loadIdentity(); err != nil {
		return err
	}
	if err := s.loadClusterID(); err != nil {
		return err
	}
	if v, ok, err := s.get(metaHardState); err != nil {
		return err
	} else if ok {
		if s.hs, err = decodeHardState(v); err != nil {
			return fmt.Errorf("store %s: %w", s.dir, err)
		}
	}
	if v, ok, err := s.get(metaMembers); err != nil {
		return err
	} else if ok {
		if s.members, err = core.DecodeMembers(v); err != nil {
			return fmt.Errorf("store %s: meta members: %w", s.dir, err)
		}
	}
	if v, ok, err := s.get(metaBaseMembers); err != nil {
		return err
	} else if ok {
		if s.baseMembers, err = core.DecodeMembers(v); err != nil {
			return fmt.Errorf("store %s: meta base members: %w", s.dir, err)
		}
	}
	for _, p := range []struct {
		key []byte
		dst *core.Pos
	}{{metaBase, &s.base}, {metaSnapshot, &s.snapshot}} {
		if v, ok, err := s.get(p.key); err != nil {
			return err
		} else if ok {
			if *p.dst, err = decodePos(v); err != nil {
				return fmt.Errorf("store %s: meta %s: %w", s.dir, p.key[1:], err)
			}
		}
	}
	if v, ok, err := s.get(metaMaxEpoch); err != nil {
		return err
	} else if ok {
		if len(v) != 8 {
			return fmt.Errorf("store %s: meta maxepoch: %d bytes, want 8", s.dir, len(v))
		}
		s.maxEpoch = core.Epoch(binary.BigEndian.Uint64(v))
	}
	// The last entry: the applied point must be exactly it, since entries
	// and their effects commit in one batch.
	s.last = s.base
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{spaceLog}, UpperBound: []byte{spaceLog + 1}})
	if err != nil {
		return err
	}
	if it.Last() {
		e, err := decodeEntry(it.Key(), it.Value())
		if err != nil {
			it.Close()
			return fmt.Errorf("store %s: %w", s.dir, err)
		}
		s.last = e.Pos
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("store %s: read log: %w", s.dir, err)
	}
	var applied core.Pos
	if v, ok, err := s.get(metaApplied); err != nil {
		return err
	} else if ok {
		if applied, err = decodePos(v); err != nil {
			return fmt.Errorf("store %s: meta applied: %w", s.dir, err)
		}
	}
	if applied != s.last {
		return fmt.Errorf("store %s: applied point %s does not match the last log entry %s: the store is damaged", s.dir, applied, s.last)
	}
	return s.startEpochHistory()
}

// startEpochHistory gives a store without an epoch history (a new one, or
// one written before the history was kept) the history its retained log
// shows: its base, and each change of epoch after it. Below the base it
// knows nothing, and says nothing (EpochHistory).
func (s *Store) startEpochHistory() error {
	if _, ok, err := s.get(metaEpochs); err != nil || ok {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	prev := s.base
	if prev.Seq > 0 {
		b.Set(seqKey(spaceEpochs, prev.Seq), encodeEpoch(prev.Epoch), nil)
	}
	if s.last != s.base {
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{spaceLog}, UpperBound: []byte{spaceLog + 1}})
		if err != nil {
			return err
		}
		var derr error
		err = scan(it, func(k, v []byte) bool {
			e, err := decodeEntry(k, v)
			if err != nil {
				derr = err
				return false
			}
			if e.Pos.Epoch != prev.Epoch {
				b.Set(seqKey(spaceEpochs, e.Pos.Seq), encodeEpoch(e.Pos.Epoch), nil)
			}
			prev = e.Pos
			return true
		})
		if err == nil {
			err = derr
		}
		if err != nil {
			return fmt.Errorf("store %s: read log: %w", s.dir, err)
		}
	}
	b.Set(metaEpochs, []byte{1}, nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("store %s: %w", s.dir, err)
	}
	return nil
}

// Identity is the store's identity: a random non-zero number minted when
// the store is created (or first opened without one) and kept across
// restarts and snapshot installs, in the file IDENTITY beside Pebble's. A
// node whose data directory was wiped comes back with a new identity, so
// the cluster can tell that it no longer holds what it once acknowledged
// (docs/protocol.md, rule 16). Whoever puts an older copy of a store back
// in service removes IDENTITY first, so the copy rejoins as a new store.
func (s *Store) Identity() uint64 { return s.identity }

// identityFile holds the store identity as 16 hex digits and a newline.
const identityFile = "IDENTITY"

func (s *Store) loadIdentity() error {
	id, err := readIdentity(s.fs, s.dir)
	if err != nil || id != 0 {
		s.identity = id
		return err
	}
	id = s.opts.NewIdentity()
	if id == 0 {
		return fmt.Errorf("store %s: Options.NewIdentity returned 0, which is not an identity", s.dir)
	}
	if err := writeIdentity(s.fs, s.dir, id); err != nil {
		return fmt.Errorf("store %s: write %s: %w", s.dir, identityFile, err)
	}
	s.identity = id
	return nil
}

// readIdentity reads dir's identity file: 0 when there is none.
func readIdentity(fs vfs.FS, dir string) (uint64, error) {
	b, err := readFile(fs, fs.PathJoin(dir, identityFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store %s: read %s: %w", dir, identityFile, err)
	}
	id, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 16, 64)
	if perr != nil || id == 0 {
		return 0, fmt.Errorf("store %s: %s is damaged (%q): remove it to rejoin as a new store, which the Cortex catches up before it counts", dir, identityFile, b)
	}
	return id, nil
}

func writeIdentity(fs vfs.FS, dir string, id uint64) error {
	return writeFileSync(fs, fs.PathJoin(dir, identityFile), fmt.Appendf(nil, "%016x\n", id))
}

// NewIdentity draws a fresh non-zero store identity.
func NewIdentity() uint64 {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic("store: crypto/rand: " + err.Error())
		}
		if id := binary.BigEndian.Uint64(b[:]); id != 0 {
			return id
		}
	}
}

func fileExists(fs vfs.FS, p string) bool {
	_, err := fs.Stat(p)
	return err == nil
}

// listDir lists dir's entries, sorted (a MemFS lists in map order).
func listDir(fs vfs.FS, dir string) ([]string, error) {
	names, err := fs.List(dir)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

// readFile reads a whole file.
func readFile(fs vfs.FS, path string) ([]byte, error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// writeFileSync writes a file and syncs it and its directory.
func writeFileSync(fs vfs.FS, path string, b []byte) error {
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return syncDir(fs, fs.PathDir(path))
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
