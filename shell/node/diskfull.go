package node

import (
	"errors"
	"fmt"
	"time"

	"github.com/muninndb/muninn/core"
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
//     holds everything, handing it the role, so the cluster keeps taking
//     writes; with none it stays and keeps refusing;
//   - if a save is refused anyway (the disk filled from elsewhere, past
//     half the reserve), that Ready is held, never carried out in part:
//     see holdReady.
//
// Everything resumes on its own once space is freed.

// spaceRetry is how often a held Ready's save is retried.
const spaceRetry = 250 * time.Millisecond

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

func noSpace(kind core.ResultKind, id uint64, err error) core.Result {
	return core.Result{ID: id, Kind: kind, Err: &core.Error{Code: core.CodeInsufficientStorage, Msg: err.Error()}}
}

// refuseNoSpace answers, on a Cortex whose disk is below the reserve, a
// request that would append an entry, and reports whether it did. Other
// nodes leave the answer to the core: a Lobe's writes go to the Cortex,
// which judges its own disk.
func (n *Node) refuseNoSpace(r request) bool {
	var need int
	var kind core.ResultKind
	switch r.kind {
	case reqWrite:
		need, kind = len(r.payload), core.ResultWrite
	case reqAdd, reqRemove:
		need, kind = 1024, core.ResultAdmin
	default:
		return false
	}
	if n.core.Role() != core.RoleCortex {
		return false
	}
	if err := n.store.Admit(need); err != nil {
		r.reply <- noSpace(kind, r.id, err)
		return true
	}
	return false
}

// step hands a peer's message to the core, unless this node cannot store
// what it brings: appends carrying entries (not acknowledged, so the
// Cortex retransmits them later), and timeout-now (this node could not
// lead).
func (n *Node) step(m core.Message) {
	if n.opts.Kind != core.KindSentinel {
		switch {
		case m.Type == core.MsgAppend && len(m.Entries) > 0:
			need := 0
			for _, e := range m.Entries {
				need += len(e.Payload) + 32
			}
			if n.store.Admit(need) != nil {
				return
			}
		case m.Type == core.MsgTimeoutNow:
			if full, _ := n.store.DiskFull(); full {
				n.log.Warn(fmt.Sprintf("declining the handoff from %s: this node's disk is below its reserve", m.From))
				return
			}
		}
	}
	n.core.Step(n.now(), m)
}

// checkDisk makes a Cortex whose disk is below the reserve step down, as
// soon as a data voter holds everything and can take over.
func (n *Node) checkDisk() {
	if n.core.Role() != core.RoleCortex || n.core.Successor() == "" {
		return
	}
	if full, why := n.store.DiskFull(); full {
		n.core.StepDown(n.now(), why)
	}
}

// holdReady is handleReady's answer to a save refused for space (a
// store.ErrNoSpace): nothing of the Ready was written, so nothing of it may
// go out — not a vote, an acknowledgement, a result, nor entries sent on —
// and the core, which already counts it done, cannot take it back. So the
// loop holds it, as if the process were paused between persisting and
// sending: it retries the save every spaceRetry and, once it succeeds,
// carries out the rest of the Ready as usual. Meanwhile peers' messages are
// dropped (as a lossy network would), every request is answered at once,
// and the clients this Ready would have answered are answered now: their
// outcome is unknown until the node resumes. The cluster sees a silent node
// and carries on without it (a silent Cortex is replaced).
//
// It returns nil once the Ready is persisted, ErrStopped when the node
// stops, or the save's error when it is no longer about space.
func (n *Node) holdReady(rd core.Ready, batch store.SaveBatch, sync bool, err error) error {
	n.log.Error("the store refused this node's next entries: the disk filled past half its reserve from elsewhere. "+
		"The node holds them unsent and takes no requests until space is freed, then resumes on its own", "err", err)
	held := fmt.Sprintf("%v; the node was storing this request's outcome when the disk filled: it is held until space is freed and may still be applied, so read it back before retrying", err)
	for _, r := range rd.Results {
		if ch, ok := n.waiters[r.ID]; ok {
			code := core.CodeInsufficientStorage
			if r.Kind == core.ResultRead {
				code = core.CodeUnavailable
			}
			ch <- core.Result{ID: r.ID, Kind: r.Kind, Err: &core.Error{Code: code, Msg: held}}
			delete(n.waiters, r.ID)
		}
	}
	start := time.Now()
	t := time.NewTicker(spaceRetry)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return ErrStopped
		case r := <-n.reqs:
			res := noSpace(core.ResultWrite, r.id, fmt.Errorf("%w: this node is holding entries it could not store and takes no requests until space is freed", err))
			switch r.kind {
			case reqRead:
				res.Kind, res.Err.Code = core.ResultRead, core.CodeUnavailable
			case reqTransfer, reqAdd, reqRemove:
				res.Kind = core.ResultAdmin
			}
			r.reply <- res
		case <-n.inbox:
		case <-t.C:
			serr := n.store.Save(batch, sync)
			if serr == nil {
				n.log.Info(fmt.Sprintf("disk space freed: stored the held entries after %s; resuming", time.Since(start).Round(time.Millisecond)))
				return nil
			}
			if !errors.Is(serr, store.ErrNoSpace) {
				return serr
			}
		}
	}
}
