package node

import (
	"github.com/muninndb/muninn/shell/store"
)

// A full disk (docs/storage.md, "Disk space"). The store keeps a reserve
// it never spends on new entries (store.Admit, store.Reserve). The runner
// keeps the protocol core from ever producing entries the store cannot
// take, so that nothing is acknowledged that is not on disk and nothing
// queues up in memory:
//
//   - on the Cortex, a write or a membership change is refused before it
//     reaches the core, with insufficient_storage (HTTP 507);
//   - a node does not take replicated entries (appends that carry entries
//     are dropped before the core sees them, so they are not acknowledged
//     and the Cortex retransmits), nor a handoff it could not lead;
//   - a Cortex steps down (core.StepDown) as soon as another data voter
//     holds everything (and, elected on crash hints, its commit floor has
//     passed: rule 18), handing it the role, so the cluster keeps taking
//     writes; with none it stays and keeps refusing;
//   - if a save is refused anyway (the disk filled from elsewhere, past
//     half the reserve), that Ready is held, never carried out in part.
//
// The first three are core.Driver's Request, Step and Tick, the hold is
// core.Driver.Held: the simulator runs them too.
//
// Everything resumes on its own once space is freed.

// storeOptions are the store's options for a node: Pebble's messages and
// events, and the store's disk-space transitions, go to the node's log.
func storeOptions(o Options) store.Options {
	so := store.Options{Log: o.Logger}
	if testStoreOptions != nil {
		testStoreOptions(o.DataDir, &so)
	}
	return so
}

// testStoreOptions lets this package's tests give a node a fake disk.
var testStoreOptions func(dataDir string, o *store.Options)
