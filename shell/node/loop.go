package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/mbp"
)

// maxBurst bounds how many queued inputs one turn takes before carrying out
// the Ready, so one fsync covers a burst of writes (group commit).
const maxBurst = 1024

// loop is the one goroutine that owns the core. It feeds the driver
// (core.Driver, which carries out every Ready in the contract's order) with
// messages, requests, snapshots and ticks.
func (n *Node) loop() {
	defer close(n.done)
	defer n.sync.close()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var hints <-chan mbp.Hint // crash hints (rule 18); none standalone
	if n.tr != nil {
		hints = n.tr.Hints()
	}
	for {
		if err := n.drv.Drive(n.now()); err != nil {
			n.fail(err)
			return
		}
		n.publish()
		wait := time.Duration(n.drv.NextDeadline() - n.now())
		if wait < 0 {
			wait = 0
		}
		timer.Reset(wait)
		select {
		case <-n.stop:
			n.failWaiters()
			return
		case m := <-n.inbox:
			n.drv.Step(n.now(), m)
			n.drain()
		case r := <-n.reqs:
			n.handle(r)
			n.drain()
		case <-n.sync.note:
			if err := n.saved(); err != nil {
				n.fail(err)
				return
			}
		case s := <-n.snapIn:
			// The store is replaced: no save may be half-done.
			for n.drv.Pending() > 0 {
				select {
				case <-n.sync.note:
					if err := n.saved(); err != nil {
						n.fail(err)
						return
					}
				case <-n.stop:
					n.failWaiters()
					return
				}
			}
			err := n.drv.InstallSnapshot(n.now(), s.from, s.dir)
			n.removeStaging(s.dir) // the store copied it, or it is refused: see staging.go
			if err != nil {
				n.fail(err)
				return
			}
		case to := <-n.snapFail:
			n.drv.SnapshotFailed(n.now(), to)
		case h, ok := <-hints:
			if !ok {
				hints = nil
				break
			}
			n.hint(h)
			n.drain()
		case <-timer.C:
			// Take what arrived first: after a stall the Cortex's heartbeats
			// may be waiting, and must count before timeouts are judged.
			n.drain()
		}
		if err := n.drv.Tick(n.now()); err != nil {
			n.fail(err)
			return
		}
		n.syncPeers()
	}
}

// saved hands the driver every save whose fsync completed; an fsync that
// failed stops the node (after one, nothing in the WAL can be trusted).
func (n *Node) saved() error {
	k, err := n.sync.take()
	for i := 0; i < k; i++ {
		if e := n.drv.Saved(n.now()); e != nil {
			return e
		}
	}
	return err
}

// drain takes whatever else is already waiting, up to maxBurst inputs.
func (n *Node) drain() {
	for i := 0; i < maxBurst; i++ {
		select {
		case m := <-n.inbox:
			n.drv.Step(n.now(), m)
		case r := <-n.reqs:
			n.handle(r)
		default:
			return
		}
	}
}

func (n *Node) handle(r request) {
	n.waiters[r.id] = r.reply
	if r.serve != nil {
		n.serves[r.id] = r.serve
	}
	req := core.Request{ID: r.id, Payload: r.payload, Durability: r.dur, Consistency: r.cons, MaxLagMs: r.maxLag, Target: r.target, Member: r.member}
	switch r.kind {
	case reqWrite:
		req.Kind = core.RequestWrite
	case reqRead:
		req.Kind = core.RequestRead
	case reqTransfer:
		req.Kind = core.RequestTransfer
	case reqAdd:
		req.Kind = core.RequestAdd
	case reqRemove:
		req.Kind = core.RequestRemove
	}
	n.drv.Request(n.now(), req)
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
	n.noteProtocol(snap)
	n.status.Store(snap)
	n.noteReadiness(snap)
	if !n.core.HasReady() {
		// A Ready left for group commit, behind a truncation or held for
		// disk space holds core events of this state, reported when it is
		// carried out: compare only then, or epoch_changed would go out
		// before the old epoch's sdown and odown (netns soak, rotate-kill
		// and kill).
		n.events.observe(st, snap.APIAddrs)
	}
	if !n.ready && st.Cortex != "" && st.Role != core.RoleCandidate {
		// Ready once the node serves: it is Cortex or knows who is.
		n.ready = true
		n.log.Info(fmt.Sprintf("MuninnDB ready (role=%s, cluster_size=%d)", st.Role, clusterSize(st.Members, snap.Peers)))
	}
	n.metrics.observe(st)
	n.decay.set(st.Role == core.RoleCortex)
}

// clusterSize is the ready line's cluster_size: the membership's size,
// or, for a node that does not hold the membership yet (a joining node
// before its snapshot, a Sentinel), itself and the peers it is connected
// to, not 0.
func clusterSize(members core.Members, peers []mbp.PeerInfo) int {
	if len(members) > 0 {
		return len(members)
	}
	return 1 + len(peers)
}

// sendSnapshot streams a checkpoint of the store to a peer far behind.
func (n *Node) sendSnapshot(to core.NodeID) {
	if n.tr == nil {
		return
	}
	n.sendingMu.Lock()
	if n.sending[to] {
		n.sendingMu.Unlock()
		n.log.Info("snapshot already streaming; not starting another", "peer", to)
		return
	}
	if n.sending == nil {
		n.sending = map[core.NodeID]bool{}
	}
	n.sending[to] = true
	n.sendingMu.Unlock()
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		dir := filepath.Join(n.opts.DataDir, "snapshot-out", string(to))
		os.RemoveAll(dir)
		ok := false
		if _, err := n.store.Checkpoint(dir); err != nil {
			n.log.Warn("snapshot checkpoint failed", "peer", to, "err", err)
		} else if err := n.tr.SendSnapshot(context.Background(), to, dir); err != nil {
			n.log.Warn("snapshot stream failed; will retry", "peer", to, "err", err)
		} else {
			ok = true
			n.log.Info("snapshot sent", "peer", to)
		}
		os.RemoveAll(dir) // before the mark goes: a next stream reuses dir
		n.sendingMu.Lock()
		delete(n.sending, to) // before the failure is reported: the core may ask again at once
		n.sendingMu.Unlock()
		if !ok {
			select {
			case n.snapFail <- to:
			case <-n.stop:
			}
		}
	}()
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
