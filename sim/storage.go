package sim

import (
	"bytes"
	"fmt"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/core/engram"
)

// nodeStore is a simulated node's durable state: the driver's core.Storage,
// plus the views the checkers read. Two implement it: the real shell/store
// on Pebble over a crashable in-memory file system (store_pebble.go, the
// code users run) and a fast in-memory model (store.go). See
// docs/simulation.md, "What runs real".
type nodeStore interface {
	core.Storage
	DropQuarantine(p core.Pos) (bool, error)

	HardState() core.HardState
	Last() core.Pos
	// Base is the position just before the first retained entry.
	Base() core.Pos
	EntryAt(seq core.Seq) (core.Entry, bool)
	// Data is the state machine, read-only.
	Data() engram.KV
	Quarantined() []Quarantined
	Rejects() int
	Restored() core.Restored
	Members() core.Members
	Identity() uint64

	// Crash returns what a crash of the process keeps: the store reopened
	// on what was synced. The receiver is unusable afterwards.
	Crash() (nodeStore, error)
	// Copy returns an old copy of the store, to put back later (a restore
	// from a backup); the copy keeps this store's identity.
	Copy() nodeStore
	// Checkpoint is the snapshot a Cortex streams to a node far behind.
	Checkpoint() (*snapImage, error)
	// Stage writes a streamed snapshot where InstallSnapshot reads it.
	Stage(img *snapImage) (dir string, err error)
	Close()
}

// snapImage is a checkpoint in flight: files for Pebble, a frozen copy for
// the model. size is the state machine's bytes (dataSize).
type snapImage struct {
	files []snapFile
	model *Store
	size  int
}

type snapFile struct {
	name string
	data []byte
}

// dataImage is a state machine's keys and values, copied out in order.
type dataImage struct {
	kvs []struct{ k, v []byte }
	err error
}

func dataOf(kv engram.KV) *dataImage {
	d := &dataImage{}
	d.err = kv.Scan(engram.DataStart, engram.DataEnd, func(k, v []byte) bool {
		d.kvs = append(d.kvs, struct{ k, v []byte }{bytes.Clone(k), bytes.Clone(v)})
		return true
	})
	return d
}

// equal reports whether a holds the same keys and values as d, and if not
// the first key where they differ (d's key at the first mismatch, else the
// first key only a holds).
func (d *dataImage) equal(a engram.KV) (bool, string) {
	if d.err != nil {
		return false, d.err.Error()
	}
	i := 0
	why := ""
	if err := a.Scan(engram.DataStart, engram.DataEnd, func(k, v []byte) bool {
		if i >= len(d.kvs) {
			why = fmt.Sprintf("key %q", k)
			return false
		}
		if !bytes.Equal(d.kvs[i].k, k) || !bytes.Equal(d.kvs[i].v, v) {
			why = fmt.Sprintf("key %q", d.kvs[i].k)
			return false
		}
		i++
		return true
	}); err != nil {
		return false, err.Error()
	}
	if why != "" {
		return false, why
	}
	if i != len(d.kvs) {
		return false, fmt.Sprintf("key %q", d.kvs[i].k)
	}
	return true, ""
}

// dataSize is the bytes of a state machine's keys and values: what a
// snapshot stream is cut into chunks by, the same for both stores, so the
// model and Pebble run the same trace.
func dataSize(kv engram.KV) int {
	n := 0
	kv.Scan(engram.DataStart, engram.DataEnd, func(k, v []byte) bool { n += len(k) + len(v); return true })
	return n
}

// dataLen counts the keys of a state machine.
func dataLen(kv engram.KV) int {
	n := 0
	kv.Scan(engram.DataStart, engram.DataEnd, func(k, v []byte) bool { n++; return true })
	return n
}
