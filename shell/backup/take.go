package backup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/store"
)

// StoreDir is where a node keeps its store below its data directory
// (node.Start opens <data_dir>/db).
const StoreDir = "db"

// Take checkpoints st into dir (which must not exist, on the store's file
// system: the checkpoint is hard links) and returns its manifest. Writes
// wait only while the checkpoint is made (hard links and a WAL flush);
// the hashing reads the checkpoint's immutable files.
func Take(st *store.Store, dir, node string) (Manifest, error) {
	m, err := Checkpoint(st, dir, node)
	if err != nil {
		return Manifest{}, err
	}
	if err := Describe(&m, dir); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// Checkpoint is Take's first step: the checkpoint, and a manifest with
// its position and membership but no files yet (Describe adds them).
func Checkpoint(st *store.Store, dir, node string) (Manifest, error) {
	p, err := st.CheckpointForBackup(dir)
	if err != nil {
		return Manifest{}, err
	}
	m := Manifest{
		Format: Version, Created: time.Now().UTC(), SourceNode: node,
		SourceStore: fmt.Sprintf("%016x", p.Identity),
		Position:    pos(p.Last), Commit: pos(p.Commit), Epoch: uint64(p.Epoch),
	}
	for _, mb := range p.Members {
		m.Members = append(m.Members, Member{ID: string(mb.ID), Kind: mb.Kind.String(), Learner: mb.Learner})
	}
	return m, nil
}

func pos(p core.Pos) Pos { return Pos{Epoch: uint64(p.Epoch), Seq: uint64(p.Seq)} }

// OpenStopped opens the store of a stopped node's data directory,
// refusing a directory with no store and one a running node holds.
func OpenStopped(dataDir string) (*store.Store, error) {
	dir := filepath.Join(dataDir, StoreDir)
	if _, err := os.Stat(filepath.Join(dir, "MUNINN-STORE")); err != nil {
		return nil, fmt.Errorf("%s holds no muninn store (no %s): pass the node's data_dir", dataDir, filepath.Join(StoreDir, "MUNINN-STORE"))
	}
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) || strings.Contains(err.Error(), "lock") {
			return nil, fmt.Errorf("%s is in use (Pebble's LOCK is held): a node is running on it; stop it first, or back it up online with --addr: %w", dataDir, err)
		}
		return nil, err
	}
	return st, nil
}

// Read checks the backup at path (a tar.zst file or a backup directory),
// writing its files under dst when dst != "" (see Decode).
func Read(path, dst string, o ReadOptions) (Manifest, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Manifest{}, err
	}
	var m Manifest
	if fi.IsDir() {
		m, err = DecodeDir(path, dst, o)
	} else {
		f, ferr := os.Open(path)
		if ferr != nil {
			return Manifest{}, ferr
		}
		m, err = Decode(f, dst, o)
		f.Close()
	}
	if err != nil {
		return m, fmt.Errorf("backup %s: %w", path, err)
	}
	return m, nil
}

// Opened is what opening a backup's checkpoint as a store found.
type Opened struct {
	// Last is the last log position restored: the manifest's, or where
	// the archive replay ended (before the restore's membership entry).
	Last     Pos
	Members  []Member
	Identity uint64
	// ClusterID is the restored store's new cluster id (protocol rule 19;
	// 0 for a store that was never written).
	ClusterID uint64
	// Replayed says what the archive replay did (a restore with Archive).
	Replayed Replayed
}

// openCheck opens the store in dir (a checkpoint just extracted) and
// checks it holds the position the manifest says; restore, when set,
// replays the archive it names (see replay) and makes the store a single
// voter (see makeStandalone).
func openCheck(dir string, m Manifest, restore *RestoreOptions) (Opened, error) {
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		return Opened{}, fmt.Errorf("the checkpoint does not open as a store: %w", err)
	}
	defer st.Close()
	_, last, _ := st.State()
	if pos(last) != m.Position {
		return Opened{}, fmt.Errorf("the checkpoint ends at %s, the manifest says %s", pos(last), m.Position)
	}
	o := Opened{Last: m.Position}
	if restore != nil {
		r, err := replay(st, m, *restore)
		if err != nil {
			return Opened{}, err
		}
		o.Replayed = r
		_, last, _ := st.State()
		o.Last = pos(last)
		if err := makeStandalone(st, m); err != nil {
			return Opened{}, err
		}
	}
	o.Identity = st.Identity()
	o.ClusterID = st.ClusterID()
	for _, mb := range st.Members() {
		o.Members = append(o.Members, Member{ID: string(mb.ID), Kind: mb.Kind.String(), Learner: mb.Learner})
	}
	return o, nil
}

// makeStandalone leaves a restored store with one voter bound to its new
// store identity, so it starts as a standalone node: it appends a
// membership entry, as a Cortex would, naming one voter (the source
// node, or the single member there was) with the restored store's
// identity. Without it the membership still records the source store for
// that member (rule 16), and the node, reporting its new identity, would
// not count toward its own quorum and never run. A standalone node
// started under another id then adopts the data (node.adoptStandalone).
// A store with no epoch yet (never written) is left as is.
func makeStandalone(st *store.Store, m Manifest) error {
	// A new cluster identity (protocol rule 19): the old cluster refuses
	// this store's node, and it refuses the old cluster's nodes.
	if _, err := st.MintClusterID(); err != nil {
		return fmt.Errorf("give the restored store a new cluster id: %w", err)
	}
	hs, last, _ := st.State()
	ms := st.Members()
	if hs.Epoch == 0 {
		return nil
	}
	id := core.NodeID(m.SourceNode)
	if len(ms) == 1 {
		id = ms[0].ID
	}
	if id == "" && len(ms) > 0 {
		id = ms[0].ID
	}
	if id == "" {
		id = "standalone"
	}
	newMs := core.Members{{ID: id, Kind: core.KindAuto, Store: st.Identity()}}
	e := core.Entry{Pos: core.Pos{Epoch: max(hs.Epoch, last.Epoch), Seq: last.Seq + 1}, Type: core.EntryMembership, Payload: core.EncodeMembers(newMs)}
	hs.Vote, hs.VoteStore = "", 0
	if err := st.Save(store.SaveBatch{HardState: &hs, Entries: []core.Entry{e}, Members: newMs, Now: time.Now().UnixMilli()}, true); err != nil {
		return fmt.Errorf("make the restored store a single voter: %w", err)
	}
	return nil
}

// Verify reads the whole backup at path, checking every checksum, then
// opens its checkpoint as a store in a temporary directory (removed
// after) to prove it opens at the manifest's position. The directory is
// made next to the backup, where there is room for it (a tmpfs /tmp may
// not hold a large store), or in the system's temp dir if that fails (a
// read-only medium).
func Verify(path string, o ReadOptions) (Manifest, error) {
	tmp, err := os.MkdirTemp(filepath.Dir(filepath.Clean(path)), ".muninn-verify-")
	if err != nil {
		tmp, err = os.MkdirTemp("", "muninn-verify-")
	}
	if err != nil {
		return Manifest{}, err
	}
	defer os.RemoveAll(tmp)
	m, err := Read(path, filepath.Join(tmp, StoreDir), o)
	if err != nil {
		return m, err
	}
	if _, err := openCheck(filepath.Join(tmp, StoreDir), m, nil); err != nil {
		return m, fmt.Errorf("backup %s: %w", path, err)
	}
	return m, nil
}

// Restore restores the backup at path as the data directory dataDir,
// which must not exist or be empty (an empty lost+found, as a new ext4
// volume's root holds, does not count). It extracts into a staging
// directory inside dataDir (see RestoreWith), checking every checksum,
// opens the store there (which mints a new store identity: the checkpoint
// carries none), makes it a single voter, and only then renames it into
// place: on any error the staging directory is removed and dataDir is
// left as it was.
func Restore(path, dataDir string, o ReadOptions) (Manifest, Opened, error) {
	return RestoreWith(path, dataDir, RestoreOptions{ReadOptions: o})
}

// StagingPrefix starts the name of the directory a restore extracts into,
// inside the target data directory: <data-dir>/.restore-XXXX/db. Staging
// inside the target keeps every byte on the target's file system (the
// final rename never crosses file systems, and the target itself, which
// may be a mount point, is never removed or replaced). A killed restore
// leaves it behind; the next restore refuses the directory, naming it
// (CheckEmpty).
const StagingPrefix = ".restore-"

// RestoreWith is Restore with point-in-time recovery: with o.Archive set,
// the log entries archived above the backup's position are replayed into
// the restored store (up to o.ToSeq or o.ToTime, or to the end of the
// contiguous archive) before it is made a single voter; see replay.
//
// dataDir is created when it does not exist. The backup is extracted into
// <dataDir>/.restore-XXXX/db, opened, checked and synced there, then
// renamed to <dataDir>/db (one rename within one directory tree of one
// file system), the staging directory removed and dataDir synced. On any
// error nothing is left in dataDir: the staging directory is removed, and
// dataDir too when this call created it.
func RestoreWith(path, dataDir string, o RestoreOptions) (Manifest, Opened, error) {
	if err := o.check(); err != nil {
		return Manifest{}, Opened{}, err
	}
	if err := CheckEmpty(dataDir); err != nil {
		return Manifest{}, Opened{}, err
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return Manifest{}, Opened{}, err
	}
	created := false
	if _, err := os.Lstat(abs); errors.Is(err, os.ErrNotExist) {
		if err := os.Mkdir(abs, 0o755); err != nil {
			return Manifest{}, Opened{}, fmt.Errorf("restore into %s: create it: %w: create its parent directory first, or give a --data-dir this user can create", dataDir, err)
		}
		created = true
	}
	tmp, err := os.MkdirTemp(abs, StagingPrefix)
	if err != nil {
		if created {
			os.Remove(abs)
		}
		return Manifest{}, Opened{}, fmt.Errorf("restore into %s: create the staging directory inside it: %w: make %s writable by the user running the restore "+
			"(a new volume's root belongs to root: chown it to the user muninn runs as)", dataDir, err, dataDir)
	}
	final := filepath.Join(abs, StoreDir)
	moved := false
	m, op, err := func() (Manifest, Opened, error) {
		m, err := Read(path, filepath.Join(tmp, StoreDir), o.ReadOptions)
		if err != nil {
			return m, Opened{}, targetErr(err, dataDir, m)
		}
		op, err := openCheck(filepath.Join(tmp, StoreDir), m, &o)
		if err != nil {
			return m, op, targetErr(fmt.Errorf("backup %s: %w", path, err), dataDir, m)
		}
		if err := syncDirs(tmp); err != nil {
			return m, op, fmt.Errorf("restore into %s: sync the staged store: %w: check the volume (dmesg) and restore again", dataDir, err)
		}
		if err := os.Rename(filepath.Join(tmp, StoreDir), final); err != nil {
			return m, op, fmt.Errorf("restore into %s: move the staged store into place: %w: nothing was restored; "+
				"check that no other restore or node uses %s, and restore again", dataDir, err, dataDir)
		}
		moved = true
		if err := os.Remove(tmp); err != nil {
			return m, op, fmt.Errorf("restore into %s: remove the emptied staging directory %s: %w", dataDir, tmp, err)
		}
		if err := syncDir(abs); err != nil {
			return m, op, fmt.Errorf("restore into %s: sync it: %w: check the volume (dmesg) and restore again", dataDir, err)
		}
		if created {
			if err := syncDir(filepath.Dir(abs)); err != nil {
				return m, op, fmt.Errorf("restore into %s: sync its parent directory: %w: check the volume (dmesg) and restore again", dataDir, err)
			}
		}
		return m, op, nil
	}()
	if err != nil {
		// Nothing half-restored: what this call put in dataDir goes.
		os.RemoveAll(tmp)
		if moved {
			os.RemoveAll(final)
		}
		if created {
			os.Remove(abs)
		}
		return m, op, err
	}
	return m, op, nil
}

// targetErr adds to a failed extraction what the target needs when the
// target is the cause: a full file system.
func targetErr(err error, dataDir string, m Manifest) error {
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("restore into %s: its file system is full (the backup holds %d bytes): %w: free space there or restore onto a larger volume; nothing was left in %s",
			dataDir, m.TotalBytes, err, dataDir)
	}
	return err
}

// CheckEmpty refuses a restore target that holds anything, but for an
// empty lost+found (a new ext4 volume's root holds one; one this user
// cannot list counts as empty). A staging
// directory a killed restore left (StagingPrefix) is named, with the
// command that removes it: it is not removed here, as a restore still
// running into the same directory owns it.
func CheckEmpty(dataDir string) error {
	fi, err := os.Lstat(dataDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("restore into %s: %w", dataDir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s exists and is not a directory: restore into a new, empty data directory", dataDir)
	}
	ents, err := os.ReadDir(dataDir)
	if err != nil {
		return fmt.Errorf("restore into %s: list it: %w: make it readable by the user running the restore", dataDir, err)
	}
	var other []string
	for _, e := range ents {
		p := filepath.Join(dataDir, e.Name())
		switch {
		case strings.HasPrefix(e.Name(), StagingPrefix) && e.IsDir():
			return fmt.Errorf("%s holds %s, the staging directory of a restore that was killed (or is still running into it): "+
				"if no restore is running, remove it (rm -rf %s) and restore again; a restore never overwrites data", dataDir, p, p)
		case e.Name() == "lost+found" && e.IsDir():
			// Empty, or root's and unreadable to this user (mode 0700 on
			// a volume whose root was chowned to muninn's user): fsck's,
			// not a node's; the restore never touches it.
			sub, err := os.ReadDir(p)
			if (err == nil && len(sub) == 0) || errors.Is(err, os.ErrPermission) {
				continue
			}
		}
		other = append(other, e.Name())
	}
	if len(other) > 0 {
		return fmt.Errorf("%s is not empty (it holds %s): restore into a new, empty data directory, or move this one aside first; a restore never overwrites data", dataDir, other[0])
	}
	return nil
}
