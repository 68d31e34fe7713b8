package sim

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/core/engram"
	"github.com/muninndb/muninn/shell/store"
)

// pebbleStore is `--store pebble`: the real shell/store, on Pebble, over a
// crashable in-memory file system (vfs.NewCrashableMem). A crash of the node
// crashes its file system too: the store reopens on CrashClone, which keeps
// exactly what was synced. Disk faults come from the file system (faultFS)
// and from the store's free-space probe.
type pebbleStore struct {
	w       *World
	disk    *diskFaults
	mem     *vfs.MemFS
	st      *store.Store
	rejects int
	snaps   int // checkpoints and stagings made, for unique dir names
	// walFailed is the injected fsync failure that hit this store's
	// write-ahead log. Pebble's log writer keeps that error and panics on
	// it at its next WAL rotation (DB.rotateWAL), so once it is set no
	// write reaches Pebble again: the store must have failed the save or
	// sync it hit (and refuses every write since, as it does), and the
	// node stops and reopens on what its disk kept (storageFailed).
	walFailed error
	// logs: the write-ahead logs whose syncs are not yet copied into the
	// file system (lazyLogs).
	logs *lazyLogs
	// Reads the checkers and the workload repeat between two writes (an
	// append acknowledgement checks the same entry at every heartbeat;
	// every replay reads every node's quarantine), kept until the next
	// write (changed): nothing else changes what the store holds.
	entry       *entryRead
	quarantined []Quarantined
	quarOK      bool
}

// entryRead is the last EntryAt.
type entryRead struct {
	seq core.Seq
	e   core.Entry
	ok  bool
}

// changed forgets the reads kept: the store is being written.
func (p *pebbleStore) changed() { p.entry, p.quarantined, p.quarOK = nil, nil, false }

const pebbleDir = "/db"

func newPebbleStore(w *World, sn *SimNode) (*pebbleStore, error) {
	p := &pebbleStore{w: w, disk: sn.disk, mem: vfs.NewCrashableMem(), logs: newLazyLogs()}
	id := w.newStoreID()
	return p, p.open(func() uint64 { return id })
}

// db opens the store on first use: a crashed node's store, or an old copy
// kept for a later restore, is often never read (opening costs more than a
// seed's saves).
func (p *pebbleStore) db() *store.Store {
	if p.st == nil {
		if err := p.open(nil); err != nil {
			panic(fmt.Sprintf("sim: reopening a store: %v", err))
		}
	}
	return p.st
}

func (p *pebbleStore) open(identity func() uint64) error {
	if identity == nil {
		identity = func() uint64 { panic("sim: a store that exists was opened as new") }
	}
	p.w.pebbles = append(p.w.pebbles, p)
	if p.logs == nil {
		p.logs = newLazyLogs()
	}
	st, err := store.Open(pebbleDir, store.Options{
		FS:            faultFS{FS: p.mem, disk: p.disk, failed: &p.walFailed, logs: p.logs},
		NewIdentity:   identity,
		Deterministic: true,
		// Pebble reserves each memtable's size in the block cache
		// (DB.newMemTable), and memtables pass 1 MiB between restarts
		// under Deterministic: a 1 MiB cache held no block, and every read
		// read and decompressed its block again. Blocks are allocated as
		// they are cached: a store uses what its data needs.
		CacheSize: 16 << 20,
		DiskFree:  p.disk.diskFree,
	})
	if err != nil {
		return err
	}
	p.st = st
	return nil
}

func (p *pebbleStore) Save(rd *core.Ready, sync bool, rejected func(core.Pos, error)) error {
	// An armed fsync failure hits a save's sync, as the model's does. (A
	// checkpoint's own WAL sync failing makes Pebble fatal: the process
	// dies, which the crash fault covers.)
	// Only a synced save's own fsync: a failure Pebble's WAL writer met
	// syncing in the background, after an unsynced save returned, would
	// stay behind unseen, and Pebble panics on it at its next WAL rotation
	// (soak seed range 200001.., not deterministic). Not the sync of a log
	// closed at a rotation inside the save either (faultFile).
	p.changed()
	if err := p.writable(); err != nil {
		return err
	}
	p.disk.saving = sync
	defer func() { p.disk.saving = false }()
	err := p.saw(p.db().Save(store.SaveBatch{HardState: rd.HardState, Truncate: rd.Truncate, Entries: rd.Entries, Members: rd.Members, Now: p.disk.now(),
		Rejected: func(pos core.Pos, why error) {
			p.rejects++
			if rejected != nil {
				rejected(pos, why)
			}
		}}, sync))
	if errors.Is(err, store.ErrNoSpace) {
		return fmt.Errorf("%w: %w", core.ErrNoSpace, err)
	}
	return err
}

// writable refuses every write once an injected fsync failure has hit the
// store's log (walFailed): the real node stops on the failed save, and a
// write reaching Pebble after it could only panic there.
func (p *pebbleStore) writable() error {
	if p.walFailed != nil {
		return fmt.Errorf("sim: the write-ahead log failed to sync, the node must stop: %w", p.walFailed)
	}
	return nil
}

// saw checks that a write the store made through its log saw the fsync
// failure injected while it ran, if any: a store that acknowledged a write
// whose sync failed is a bug (an acknowledged write may be lost), reported
// as one; the write then fails, so that the node stops.
func (p *pebbleStore) saw(err error) error {
	if err != nil || p.walFailed == nil {
		return err
	}
	p.w.chk.violate("storage-unseen-failure", false, p.disk.node, "the store acknowledged a write although an fsync of its write-ahead log failed meanwhile: "+p.walFailed.Error())
	return p.writable()
}

func (p *pebbleStore) Prune(c core.Compaction) error {
	p.changed()
	if err := p.writable(); err != nil {
		return err
	}
	_, err := p.db().PruneAt(c.Upto.Seq, c.Members)
	return err
}

func (p *pebbleStore) Admit(n int) error {
	if err := p.db().Admit(n); err != nil {
		return fmt.Errorf("%w: %w", core.ErrNoSpace, err)
	}
	return nil
}

func (p *pebbleStore) DiskFull() (bool, string) { return p.db().DiskFull() }

func (p *pebbleStore) InstallSnapshot(dir string, accept func(core.Pos) error) (core.Installed, error) {
	defer p.mem.RemoveAll(dir)
	p.changed()
	if err := p.writable(); err != nil {
		return core.Installed{}, err
	}
	pos, err := p.db().InstallSnapshotAt(dir, p.disk.now(), accept)
	if err != nil {
		return core.Installed{}, err
	}
	r, err := p.db().Load()
	if err != nil {
		return core.Installed{}, err
	}
	return core.Installed{Pos: pos, HardState: r.HardState, Members: r.Members}, nil
}

func (p *pebbleStore) DropQuarantine(pos core.Pos) (bool, error) {
	p.changed()
	if err := p.writable(); err != nil {
		return false, err
	}
	return p.db().DropQuarantine(pos)
}

func (p *pebbleStore) HardState() core.HardState {
	hs, _, _ := p.db().State()
	return hs
}

func (p *pebbleStore) Last() core.Pos {
	_, last, _ := p.db().State()
	return last
}

func (p *pebbleStore) Base() core.Pos {
	_, _, base := p.db().State()
	return base
}

func (p *pebbleStore) EntryAt(seq core.Seq) (core.Entry, bool) {
	if r := p.entry; r != nil && r.seq == seq {
		return r.e, r.ok
	}
	if seq <= p.Base().Seq || seq > p.Last().Seq {
		return core.Entry{}, false
	}
	e, ok, err := p.db().Entry(seq)
	if err != nil {
		return core.Entry{}, false
	}
	p.entry = &entryRead{seq: seq, e: e, ok: ok}
	return e, ok
}

func (p *pebbleStore) Data() engram.KV { return p.db().ReadKV() }

func (p *pebbleStore) Quarantined() []Quarantined {
	if p.quarOK {
		return p.quarantined
	}
	qs, err := p.db().Quarantine()
	if err != nil {
		panic(fmt.Sprintf("sim: reading the quarantine: %v", err))
	}
	out := make([]Quarantined, 0, len(qs))
	for _, q := range qs {
		e := core.Entry{Pos: q.Pos(), Payload: q.Payload, Type: core.EntryMembership}
		if q.Type == core.EntryData.String() {
			e.Type = core.EntryData
		}
		x := Quarantined{Entry: e, Reason: q.Reason, At: q.TimeMS}
		if len(q.Base) > 0 {
			if b, err := engram.DecodePrecondition(q.Base); err == nil {
				x.Base = b
			}
		}
		out = append(out, x)
	}
	p.quarantined, p.quarOK = out, true
	return out
}

func (p *pebbleStore) Rejects() int { return p.rejects }

func (p *pebbleStore) Restored() core.Restored {
	r, err := p.db().Load()
	if err != nil {
		panic(fmt.Sprintf("sim: loading the store: %v", err))
	}
	return core.Restored{HardState: r.HardState, Snap: r.Base, SnapMembers: r.Members, Entries: r.Entries}
}

func (p *pebbleStore) Members() core.Members {
	r, err := p.db().Load()
	if err != nil {
		return nil
	}
	return r.Members
}

func (p *pebbleStore) Identity() uint64 { return p.db().Identity() }

func (p *pebbleStore) Close() {
	p.changed()
	if p.st != nil {
		p.st.Close()
		p.st = nil
	}
}

// Crash keeps what was synced: the store is reopened on a crash clone of
// its file system (only synced data: Pebble's clone draws its choice of
// unsynced blocks in map order, which would break determinism).
func (p *pebbleStore) Crash() (nodeStore, error) {
	clone := p.crashClone()
	p.Close()
	return &pebbleStore{w: p.w, disk: p.disk, mem: clone, rejects: p.rejects, snaps: p.snaps, logs: newLazyLogs()}, nil
}

// Copy is an old copy of the store: what a crash now would keep.
func (p *pebbleStore) Copy() nodeStore {
	return &pebbleStore{w: p.w, disk: p.disk, mem: p.crashClone(), logs: newLazyLogs()}
}

// crashClone is CrashClone(CrashCloneCfg{}) with the logs' lazy syncs
// carried out in the clone (lazyLogs).
func (p *pebbleStore) crashClone() *vfs.MemFS {
	clone := p.mem.CrashClone(vfs.CrashCloneCfg{})
	if err := p.logs.patch(clone); err != nil {
		panic(fmt.Sprintf("sim: carrying a log's syncs into a crash clone: %v", err))
	}
	return clone
}

// reidentify rewrites the store's identity file, as restoring a copy by the
// documented procedure does (a new identity for an older store).
func (p *pebbleStore) reidentify(id uint64) error {
	p.Close() // forgets the reads kept too
	f, err := p.mem.Create(pebbleDir+"/IDENTITY", vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(f, "%016x\n", id); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	f.Close()
	return nil
}

// Checkpoint takes a checkpoint on the node's file system and reads its
// files, in sorted order, for the stream.
func (p *pebbleStore) Checkpoint() (*snapImage, error) {
	if err := p.writable(); err != nil {
		return nil, err
	}
	p.snaps++
	dir := "/snapshot-out/" + itoa(uint64(p.snaps))
	defer p.mem.RemoveAll(dir)
	if _, err := p.db().Checkpoint(dir); err != nil {
		return nil, err
	}
	names, err := store.CheckpointFiles(p.mem, dir)
	if err != nil {
		return nil, err
	}
	img := &snapImage{size: dataSize(p.db().ReadKV())}
	for _, name := range names {
		f, err := p.mem.Open(p.mem.PathJoin(dir, name))
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		img.files = append(img.files, snapFile{name: name, data: b})
	}
	return img, nil
}

// Stage writes a streamed checkpoint into the node's file system.
func (p *pebbleStore) Stage(img *snapImage) (string, error) {
	p.snaps++
	dir := "/snapshot-in/" + itoa(uint64(p.snaps))
	for _, sf := range img.files {
		path := p.mem.PathJoin(dir, sf.name)
		if i := strings.LastIndex(path, "/"); i > 0 {
			if err := p.mem.MkdirAll(path[:i], 0o755); err != nil {
				return "", err
			}
		}
		f, err := p.mem.Create(path, vfs.WriteCategoryUnspecified)
		if err != nil {
			return "", err
		}
		if _, err := f.Write(sf.data); err != nil {
			f.Close()
			return "", err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return "", err
		}
		f.Close()
	}
	return dir, nil
}

// faultFS is the node's file system with its disk faults: an armed sync
// failure hits the next sync of a write-ahead log that a save waits for (a
// save's fsync), and is recorded in failed.
type faultFS struct {
	vfs.FS
	disk   *diskFaults
	failed *error
	logs   *lazyLogs
}

func (f faultFS) wrap(file vfs.File, name string, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return file, err
	}
	ff := &faultFile{File: file, fs: f}
	if n, err := strconv.ParseUint(strings.TrimSuffix(f.PathBase(name), ".log"), 10, 32); err == nil {
		ff.eof = eofTrailer(uint32(n))
	}
	return ff, nil
}

func (f faultFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	file, err := f.FS.Create(name, c)
	ff, err := f.wrap(file, name, err)
	if x, ok := ff.(*faultFile); ok {
		// A new, empty log: its syncs can be recorded as lengths.
		x.lazy, x.path = true, name
	}
	return ff, err
}

// Rename keeps the paths of lazily synced logs current (a snapshot install
// renames the store's directory).
func (f faultFS) Rename(old, name string) error {
	if err := f.FS.Rename(old, name); err != nil {
		return err
	}
	f.logs.renamed(old, name)
	return nil
}

func (f faultFS) ReuseForWrite(old, name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	file, err := f.FS.ReuseForWrite(old, name, c)
	return f.wrap(file, name, err)
}

func (f faultFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	file, err := f.FS.OpenReadWrite(name, c, opts...)
	return f.wrap(file, name, err)
}

// faultFile is a write-ahead log. An armed sync failure hits a sync a save
// waits for (Pebble's log writer syncs for the synced commits queued; the
// error reaches the store's Save or Sync, which fails and refuses every
// later write), never the sync of a log being closed: a commit that fills
// the memtable closes the current log inside the commit, before writing
// its batch to the next one (DB.rotateWAL), and Pebble panics if that sync
// fails ("it is possible we lost a write"), a fatal error the process does
// not survive. On a real disk that is a crash, which the crash fault
// covers; the armed failure then hits the save's own sync, in the new log.
// Where memtables fill varies from run to run (Pebble draws skiplist
// heights from math/rand), so a seed whose fault met a rotation panicked
// in some replays only (seed 100429 with --store pebble, at 7d454b3). A
// log is being closed when the last thing written to it is its EOF
// trailer.
type faultFile struct {
	vfs.File
	fs faultFS
	// eof is the EOF trailer Pebble writes when it closes this log (nil if
	// the name is not a log number); closing: the last write ended with it.
	eof     []byte
	closing bool
	// A lazy log (created empty through faultFS.Create) records its syncs
	// as lengths (lazyLogs): written is its length, synced how much of it
	// a sync made durable, copied how much the file system holds as
	// synced; path is its name.
	lazy                    bool
	path                    string
	written, synced, copied int64
	// tail is what was synced but not copied when the log was closed.
	tail []byte
}

// eofTrailer is the EOF trailer of log n (record.LogWriter.emitEOFTrailer):
// a recyclable full chunk header with no checksum, no payload and the next
// log's number, which readers take as the end of the log.
func eofTrailer(n uint32) []byte {
	b := make([]byte, walRecycleHeader)
	b[6] = 5 // recyclable full chunk
	binary.LittleEndian.PutUint32(b[7:], n+1)
	return b
}

// walRecycleHeader is the size of a recyclable chunk header: checksum(4)
// length(2) type(1) log number(4).
const walRecycleHeader = 11

func (f *faultFile) Write(p []byte) (int, error) {
	// Looked at before the write: under Pebble's invariants (race builds)
	// MemFS flips the bytes it was given once it has copied them.
	closing := f.eof != nil && bytes.HasSuffix(p, f.eof)
	n, err := f.File.Write(p)
	f.closing = closing && n == len(p)
	if f.lazy {
		f.fs.logs.mu.Lock()
		f.written += int64(n)
		f.fs.logs.mu.Unlock()
	}
	return n, err
}

// fails consumes an armed sync failure, unless this sync closes the log.
func (f *faultFile) fails() error {
	if f.closing {
		return nil
	}
	err := f.fs.disk.walSyncFails()
	if err != nil {
		*f.fs.failed = err
	}
	return err
}

func (f *faultFile) Sync() error {
	if err := f.fails(); err != nil {
		return err
	}
	if f.lazy {
		f.fs.logs.synced(f)
		return nil
	}
	return f.File.Sync()
}

func (f *faultFile) SyncData() error {
	if err := f.fails(); err != nil {
		return err
	}
	if f.lazy {
		f.fs.logs.synced(f)
		return nil
	}
	return f.File.SyncData()
}

func (f *faultFile) Close() error {
	if f.lazy {
		if err := f.fs.logs.closing(f); err != nil {
			return err
		}
	}
	return f.File.Close()
}

func (f *faultFile) SyncTo(length int64) (bool, error) {
	if err := f.fails(); err != nil {
		return false, err
	}
	return f.File.SyncTo(length)
}

// lazyLogs records a write-ahead log's syncs as lengths instead of copying
// the file. MemFS copies a whole file into its synced image on every sync
// (memFile.Sync), and a log grows to its memtable's size (256 KiB, then
// doubling): that copying was 7% of a Pebble run. A log is only ever
// appended to, so what a sync made durable is its first synced bytes; the
// copy is made once, when the log is closed, or in a crash clone
// (pebbleStore.crashClone), which then holds exactly what
// CrashClone(CrashCloneCfg{}) holds after real syncs. The log writer runs
// on Pebble's goroutine: mu guards every lazy log's lengths.
type lazyLogs struct {
	mu      sync.Mutex
	pending map[*faultFile]bool // synced or closed past what MemFS holds
}

func newLazyLogs() *lazyLogs { return &lazyLogs{pending: map[*faultFile]bool{}} }

// synced is a sync of f: what was written is durable.
func (l *lazyLogs) synced(f *faultFile) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f.synced = f.written
	if f.synced > f.copied {
		l.pending[f] = true
	}
}

// closing copies f's syncs into the file system before its handle goes:
// with a real sync if all it holds was synced (the usual case: a log is
// synced as it is closed), else by keeping the synced bytes not copied
// for a crash clone to write.
func (l *lazyLogs) closing(f *faultFile) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.pending[f] {
		return nil
	}
	if f.synced == f.written {
		if err := f.File.Sync(); err != nil {
			return err
		}
		f.copied = f.synced
		delete(l.pending, f)
		return nil
	}
	b := make([]byte, f.synced-f.copied)
	if _, err := f.File.ReadAt(b, f.copied); err != nil {
		return err
	}
	f.tail = b
	return nil
}

// renamed moves the paths of pending logs at or under old to new.
func (l *lazyLogs) renamed(old, name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for f := range l.pending {
		if f.path == old {
			f.path = name
		} else if rest, ok := strings.CutPrefix(f.path, old+"/"); ok {
			f.path = name + "/" + rest
		}
	}
}

// patch writes into clone, a crash clone of the file system, what each
// pending log's syncs made durable beyond what the file system held as
// synced: the clone's copy of a log holds its last copied bytes (if its
// directory entry was synced at all).
func (l *lazyLogs) patch(clone *vfs.MemFS) error {
	if l == nil {
		return nil // never opened: nothing was written
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for f := range l.pending {
		fi, err := clone.Stat(f.path)
		if err != nil {
			continue // the clone has no such file: its entry was never synced
		}
		if fi.Size() != f.copied {
			return fmt.Errorf("%s: the clone holds %d bytes, the log's synced image %d", f.path, fi.Size(), f.copied)
		}
		b := f.tail
		if b == nil {
			b = make([]byte, f.synced-f.copied)
			if _, err := f.File.ReadAt(b, f.copied); err != nil {
				return err
			}
		}
		c, err := clone.OpenReadWrite(f.path, vfs.WriteCategoryUnspecified)
		if err != nil {
			return err
		}
		if _, err := c.WriteAt(b, f.copied); err != nil {
			return err
		}
		if err := c.Sync(); err != nil {
			return err
		}
		if err := c.Close(); err != nil {
			return err
		}
	}
	return nil
}
