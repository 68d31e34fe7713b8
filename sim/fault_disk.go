package sim

import (
	"errors"
	"fmt"
	"time"

	"github.com/muninndb/muninn/core"
)

// Disk faults (docs/simulation.md, "Disk faults"): a node's next synced
// save fails (an fsync or write error: the runner stops the node, which
// comes back on what its disk kept), or its disk fills for a while (the
// store's reserve refuses new entries: writes are refused with
// insufficient_storage, a full Cortex hands off, a save that finds the
// disk full is held). The same faults drive the model store and the real
// one on Pebble (store_pebble.go wires them into its file system).

// diskFaults is one node's disk: it outlives the node's processes.
type diskFaults struct {
	w    *World
	node core.NodeID
	// failSync: the next synced save fails, as an fsync error would.
	failSync bool
	// full: the disk is below the store's reserve.
	full bool
	// failed is the error of the last injected failure, to tell it from a
	// bug.
	failed error
	// saving: a save is under way (store_pebble.go).
	saving bool
}

// walSyncFails is the Pebble file system's check at a WAL sync: only a
// save's sync fails.
func (d *diskFaults) walSyncFails() error {
	if !d.saving {
		return nil
	}
	return d.syncFails()
}

// errInjected marks a failure this file injected.
var errInjected = errors.New("injected disk fault")

// injected reports whether err is a failure this disk was made to have.
func (d *diskFaults) injected(err error) bool {
	return errors.Is(err, errInjected) || (d.failed != nil && err != nil && errors.Is(err, d.failed))
}

// syncFails is asked at each sync: it consumes an armed failure.
func (d *diskFaults) syncFails() error {
	if !d.failSync {
		return nil
	}
	d.failSync = false
	d.failed = fmt.Errorf("fsync: input/output error (%w)", errInjected)
	return d.failed
}

// beforeSave is the model store's check before a save.
func (d *diskFaults) beforeSave(sync bool) error {
	if d == nil || !sync {
		return nil
	}
	return d.syncFails()
}

// admit refuses n more bytes of entries while the disk is full.
func (d *diskFaults) admit(n int) error {
	if d != nil && d.full {
		return fmt.Errorf("%w: the disk of %s is below its reserve (%w)", core.ErrNoSpace, d.node, errInjected)
	}
	return nil
}

func (d *diskFaults) isFull() (bool, string) {
	if d != nil && d.full {
		return true, "the disk of " + string(d.node) + " is below its reserve"
	}
	return false, ""
}

// now is the wall time a store records (quarantine times), in unix ms.
func (d *diskFaults) now() int64 {
	if d == nil {
		return 0
	}
	return d.w.now / int64(time.Millisecond)
}

// diskFault injects one disk fault on a data node.
func (f *Faults) diskFault() {
	w := f.w
	sn := f.target()
	if !sn.up() || sn.spec.Kind == core.KindSentinel {
		return
	}
	if f.r.Chance(0.5) {
		w.stats.DiskErrors++
		w.record("disk-error", sn.id, 0, 0, nil)
		sn.disk.failSync = true
		// Unused by the next heartbeat interval, it is withdrawn: the fault
		// hits a node that was saving.
		w.after(w.set.Heartbeat, func() { sn.disk.failSync = false })
		return
	}
	w.stats.DiskFulls++
	w.record("disk-full", sn.id, 0, 0, nil)
	sn.disk.full = true
	w.after(f.r.Between(time.Second, 6*time.Second), func() {
		w.record("disk-freed", sn.id, 0, 0, nil)
		sn.disk.full = false
	})
}

// diskFree is the store's free-space probe: plenty, or nothing while the
// disk is full.
func (d *diskFaults) diskFree() (free, total uint64, err error) {
	const total64 = 64 << 30
	if d.full {
		return 0, total64, nil
	}
	return total64 / 2, total64, nil
}
