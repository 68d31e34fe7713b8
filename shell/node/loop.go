package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/store"
)

// maxBurst bounds how many queued inputs one turn takes before carrying out
// the Ready, so one fsync covers a burst of writes (group commit).
const maxBurst = 1024

// loop is the one goroutine that owns the core.
func (n *Node) loop() {
	defer close(n.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		n.handleReady()
		n.publish()
		wait := time.Duration(n.core.NextDeadline() - n.now())
		if wait < 0 {
			wait = 0
		}
		timer.Reset(wait)
		select {
		case <-n.stop:
			n.failWaiters()
			return
		case m := <-n.inbox:
			n.step(m)
			n.drain()
		case r := <-n.reqs:
			n.handle(r)
			n.drain()
		case s := <-n.snapIn:
			n.installSnapshot(s)
		case to := <-n.snapFail:
			n.core.SnapshotFailed(n.now(), to)
		case <-timer.C:
			// Take what arrived first: after a stall the Cortex's heartbeats
			// may be waiting, and must count before timeouts are judged.
			n.drain()
		}
		n.core.Tick(n.now())
		n.syncPeers()
		n.checkDisk()
	}
}

// drain takes whatever else is already waiting, up to maxBurst inputs.
func (n *Node) drain() {
	for i := 0; i < maxBurst; i++ {
		select {
		case m := <-n.inbox:
			n.step(m)
		case r := <-n.reqs:
			n.handle(r)
		default:
			return
		}
	}
}

func (n *Node) handle(r request) {
	if n.refuseNoSpace(r) {
		return
	}
	n.waiters[r.id] = r.reply
	if r.serve != nil {
		n.serves[r.id] = r.serve
	}
	now := n.now()
	switch r.kind {
	case reqWrite:
		n.core.Propose(now, r.id, r.payload, r.dur)
	case reqRead:
		n.core.Read(now, r.id, r.cons, r.maxLag)
	case reqTransfer:
		n.core.TransferCortex(now, r.id, r.target)
	case reqAdd:
		n.core.AddMember(now, r.id, r.member)
	case reqRemove:
		n.core.RemoveMember(now, r.id, r.target)
	}
}

// handleReady carries out every Ready in the contract's order: persist,
// send, stream snapshots, answer clients, log events.
func (n *Node) handleReady() {
	for n.core.HasReady() {
		rd := n.core.Ready()
		// Reads first, from the state before this Ready (core.Ready's
		// contract).
		for _, r := range rd.Results {
			if fn := n.serves[r.ID]; fn != nil {
				delete(n.serves, r.ID)
				if r.Kind == core.ResultRead && r.Err == nil {
					fn()
				}
			}
		}
		// Heartbeats first: they depend on nothing being persisted, and a
		// slow fsync must not look like a dead Cortex to the Lobes.
		for _, m := range rd.Messages {
			if m.Type.Urgent() && n.tr != nil {
				n.tr.Send(m.To, m)
			}
		}
		batch := store.SaveBatch{HardState: rd.HardState, Truncate: rd.Truncate, Entries: rd.Entries, Members: rd.Members, Now: time.Now().UnixMilli(), Rejected: n.noteRejected}
		start := time.Now()
		sync := rd.MustSync(n.prevHS)
		if err := n.store.Save(batch, sync); err != nil {
			// Nothing of this Ready may go out: a vote or an ack for state
			// that is not on disk would break the protocol. Out of space,
			// the Ready is held until the disk has room (holdReady); any
			// other failure stops the node.
			if errors.Is(err, store.ErrNoSpace) {
				err = n.holdReady(rd, batch, sync, err)
			}
			if errors.Is(err, ErrStopped) {
				return
			}
			if err != nil {
				n.fail(err)
				return
			}
		}
		n.metrics.saveSeconds.Observe(time.Since(start).Seconds())
		if rd.HardState != nil {
			n.prevHS = *rd.HardState
		}
		if rd.Truncate != nil {
			n.metrics.quarantined.Add(float64(len(rd.Truncate.Removed)))
			n.log.Warn(fmt.Sprintf("quarantined %d entries after %s: %s", len(rd.Truncate.Removed), rd.Truncate.After, rd.Truncate.Reason))
		}
		if c := rd.Compact; c != nil {
			if _, err := n.store.Prune(c.Upto.Seq); err != nil {
				n.log.Warn("log pruning failed; will retry at the next compaction", "err", err)
			}
		}
		for _, m := range rd.Messages {
			if !m.Type.Urgent() && n.tr != nil {
				n.tr.Send(m.To, m)
			}
		}
		for _, s := range rd.Snapshots {
			n.sendSnapshot(s.To)
		}
		for _, r := range rd.Results {
			if ch, ok := n.waiters[r.ID]; ok {
				ch <- n.applied(r)
				delete(n.waiters, r.ID)
			}
		}
		n.forgetRejected(n.core.Commit().Seq)
		for _, e := range rd.Events {
			n.onEvent(e)
		}
		n.core.Advance()
	}
}

func (n *Node) failWaiters() {
	for id, ch := range n.waiters {
		ch <- core.Result{ID: id, Err: &core.Error{Code: core.CodeUnavailable, Msg: ErrStopped.Error()}}
		delete(n.waiters, id)
		delete(n.serves, id)
	}
}

func (n *Node) publish() {
	st := n.core.Status()
	snap := &Snapshot{Core: st, Members: st.Members, Now: n.now(), Started: n.origin, APIAddrs: map[core.NodeID]string{n.opts.ID: n.opts.APIAddr}}
	if n.tr != nil {
		snap.Peers = n.tr.Peers()
		for _, p := range snap.Peers {
			if p.APIAddr != "" {
				snap.APIAddrs[p.ID] = p.APIAddr
			}
		}
	}
	if _, ok := st.Members.Get(n.opts.ID); !ok && n.opts.Cluster {
		snap.Joining = true
	}
	n.status.Store(snap)
	if !n.ready && st.Cortex != "" && st.Role != core.RoleCandidate {
		// Ready once the node serves: it is Cortex or knows who is.
		n.ready = true
		n.log.Info(fmt.Sprintf("MuninnDB ready (role=%s, cluster_size=%d)", st.Role, len(st.Members)))
	}
	n.metrics.observe(st)
	n.decay.set(st.Role == core.RoleCortex)
}

// sendSnapshot streams a checkpoint of the store to a peer far behind.
func (n *Node) sendSnapshot(to core.NodeID) {
	if n.tr == nil {
		return
	}
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		dir := filepath.Join(n.opts.DataDir, "snapshot-out", string(to))
		os.RemoveAll(dir)
		defer os.RemoveAll(dir)
		ok := false
		if _, err := n.store.Checkpoint(dir); err != nil {
			n.log.Warn("snapshot checkpoint failed", "peer", to, "err", err)
		} else if err := n.tr.SendSnapshot(context.Background(), to, dir); err != nil {
			n.log.Warn("snapshot stream failed; will retry", "peer", to, "err", err)
		} else {
			ok = true
			n.log.Info("snapshot sent", "peer", to)
		}
		if !ok {
			select {
			case n.snapFail <- to:
			case <-n.stop:
			}
		}
	}()
}

func (n *Node) installSnapshot(s snapInstall) {
	defer n.removeStaging(s.dir) // the store copied it, or it is refused: see staging.go
	pos, err := n.store.InstallSnapshot(s.dir)
	if err != nil {
		n.log.Error("installing snapshot failed", "from", s.from, "err", err)
		return
	}
	r, err := n.store.Load()
	if err != nil {
		n.log.Error("reading installed snapshot failed", "err", err)
		return
	}
	// The checkpoint carries the sender's hard state. Keep this node's own
	// vote (one vote per epoch) unless the snapshot is from a later epoch,
	// whose vote this node has not cast; the core adopts that epoch too, so
	// its next hard state is never below what the store recorded.
	mine := n.prevHS
	if mine.Epoch < r.HardState.Epoch {
		mine.Epoch, mine.Vote = r.HardState.Epoch, ""
	}
	mine.Commit = r.HardState.Commit
	if err := n.store.Save(store.SaveBatch{HardState: &mine}, true); err != nil {
		n.fail(fmt.Errorf("restoring the hard state after a snapshot: %w", err))
		return
	}
	n.prevHS = mine
	n.core.SnapshotInstalled(n.now(), pos, mine.Epoch, r.Members)
	n.log.Info(fmt.Sprintf("installed snapshot from %s at %s", s.from, pos))
}

// fail stops the node after a storage failure: nothing of the Ready may go
// out, since a vote or an ack for state that is not on disk would break the
// protocol. Fatal reports it so the process exits instead of lingering.
func (n *Node) fail(err error) {
	n.log.Error("storage failed; stopping the node so it cannot acknowledge what it did not persist", "err", err)
	n.failWaiters()
	select {
	case n.fatal <- err:
	default:
	}
	go n.Close()
	<-n.stop
}
