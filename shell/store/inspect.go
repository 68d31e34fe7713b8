package store

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/muninndb/muninn/core"
)

// Summary is what a stopped node's store says about its place in the log:
// enough to tell which of several nodes is the freshest (muninn cluster
// recover) without starting any of them.
type Summary struct {
	Dir       string
	Identity  uint64 // 0 when the store has no IDENTITY file
	HardState core.HardState
	Last      core.Pos // last log entry (Base when the log is empty)
	Base      core.Pos
	Members   core.Members
}

// ErrInUse is returned (wrapped) by Inspect when a running node holds the
// store.
var ErrInUse = errors.New("store in use")

// Inspect reads a store's position, commit point and membership without
// changing anything: Pebble is opened read-only (its WAL is replayed in
// memory), no interrupted install is finished, nothing is minted. A store
// that a running node holds is refused with ErrInUse: that node is asked
// through its API instead.
func Inspect(dir string) (Summary, error) {
	fs := vfs.Default
	sum := Summary{Dir: dir}
	if !fileExists(fs, fs.PathJoin(dir, markerFile)) {
		return sum, fmt.Errorf("store %s: no %s marker: not a MuninnDB store (give the node's data_dir, which holds db/)", dir, markerFile)
	}
	if fileExists(fs, dir+".install") || fileExists(fs, dir+".old") {
		return sum, fmt.Errorf("store %s: a snapshot install was interrupted here: start the node once to finish or discard it, then stop it and ask again", dir)
	}
	lock, err := pebble.LockDirectory(dir, fs)
	if err != nil {
		return sum, fmt.Errorf("store %s: %w: it is locked by a running node (%v): ask that node through its API (--addr), or stop it first", dir, ErrInUse, err)
	}
	defer lock.Close()
	db, err := pebble.Open(dir, &pebble.Options{
		FS: fs, ReadOnly: true, ErrorIfNotExists: true, Lock: lock,
		Logger: newPebbleLog(slog.New(slog.DiscardHandler)),
	})
	if err != nil {
		return sum, fmt.Errorf("store %s: open read-only: %w", dir, err)
	}
	defer db.Close()
	get := func(key []byte) ([]byte, bool, error) {
		v, c, err := db.Get(key)
		if errors.Is(err, pebble.ErrNotFound) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("store %s: read %s: %w", dir, key[1:], err)
		}
		defer c.Close()
		return append([]byte(nil), v...), true, nil
	}
	if f, ok, err := get(metaFormat); err != nil {
		return sum, err
	} else if !ok || string(f) != formatValue {
		return sum, fmt.Errorf("store %s: format %q is not %q", dir, f, formatValue)
	}
	if sum.Identity, err = readIdentity(fs, dir); err != nil {
		return sum, err
	}
	if v, ok, err := get(metaHardState); err != nil {
		return sum, err
	} else if ok {
		if sum.HardState, err = decodeHardState(v); err != nil {
			return sum, fmt.Errorf("store %s: %w", dir, err)
		}
	}
	if v, ok, err := get(metaMembers); err != nil {
		return sum, err
	} else if ok {
		if sum.Members, err = core.DecodeMembers(v); err != nil {
			return sum, fmt.Errorf("store %s: meta members: %w", dir, err)
		}
	}
	if v, ok, err := get(metaBase); err != nil {
		return sum, err
	} else if ok {
		if sum.Base, err = decodePos(v); err != nil {
			return sum, fmt.Errorf("store %s: meta base: %w", dir, err)
		}
	}
	sum.Last = sum.Base
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{spaceLog}, UpperBound: []byte{spaceLog + 1}})
	if err != nil {
		return sum, err
	}
	if it.Last() {
		e, err := decodeEntry(it.Key(), it.Value())
		if err != nil {
			it.Close()
			return sum, fmt.Errorf("store %s: %w", dir, err)
		}
		sum.Last = e.Pos
	}
	if err := it.Close(); err != nil {
		return sum, fmt.Errorf("store %s: read log: %w", dir, err)
	}
	return sum, nil
}
