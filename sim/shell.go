package sim

import (
	"github.com/muninndb/muninn/core"
)

// simShell is a simulated node's side of core.Driver: its store, the
// simulated network and its waiting clients, with the checkers hooked in
// where the driver persists, sends and answers. The ordering is the
// driver's, not the simulator's.
type simShell struct{ sn *SimNode }

func (h simShell) Save(rd *core.Ready, sync bool, rejected func(core.Pos, error)) error {
	if err := h.save(rd, sync, rejected); err != nil {
		return err
	}
	if len(h.sn.applies) == 0 {
		// The model's saves and Pebble's synced ones.
		h.sn.synced, h.sn.syncedEpoch = h.sn.st.Last().Seq, h.sn.st.HardState().Epoch
	}
	return nil
}

// save writes rd to the store and tells the checkers.
func (h simShell) save(rd *core.Ready, sync bool, rejected func(core.Pos, error)) error {
	sn := h.sn
	chk := sn.w.chk
	prev := sn.st.HardState()
	prevLast := sn.st.Last()
	if err := sn.st.Save(rd, sync, func(p core.Pos, why error) {
		if rejected != nil {
			rejected(p, why)
		}
	}); err != nil {
		return err
	}
	if t := rd.Truncate; t != nil {
		chk.onTruncate(sn, t, t.Removed)
		prevLast = t.After
	}
	if rd.HardState != nil {
		chk.onHardState(sn, prev, *rd.HardState)
	}
	if len(rd.Entries) > 0 {
		chk.onAppend(sn, rd.Entries, sn.cause, prev.Epoch)
		for _, e := range rd.Entries {
			chk.onPersisted(sn, prevLast, e)
			prevLast = e.Pos
		}
	}
	return nil
}

func (h simShell) Prune(c core.Compaction) error { return h.sn.st.Prune(c) }
func (h simShell) Admit(n int) error             { return h.sn.st.Admit(n) }
func (h simShell) DiskFull() (bool, string)      { return h.sn.st.DiskFull() }

func (h simShell) InstallSnapshot(dir string, accept func(core.Pos) error) (core.Installed, error) {
	in, err := h.sn.st.InstallSnapshot(dir, accept)
	if err == nil {
		h.sn.synced, h.sn.syncedEpoch = h.sn.st.Last().Seq, h.sn.st.HardState().Epoch
		h.sn.w.chk.onInstalled(h.sn, in)
	}
	return in, err
}

// DropQuarantine serves core.CanaryDropQuarantine.
func (h simShell) DropQuarantine(p core.Pos) (bool, error) { return h.sn.st.DropQuarantine(p) }

func (h simShell) Send(m core.Message) {
	h.sn.w.chk.onSend(h.sn, m)
	h.sn.w.net.send(m)
}

func (h simShell) SendSnapshot(to core.NodeID) { h.sn.w.snapshots.send(h.sn, to) }

func (h simShell) Read(r core.Result) {
	if h.sn.strong[r.ID] {
		delete(h.sn.strong, r.ID)
		if r.Err == nil {
			h.sn.w.chk.onStrongRead(h.sn, r)
		}
	}
	h.answer(r)
}

func (h simShell) Answer(r core.Result) {
	if r.Kind == core.ResultWrite && r.Err == nil {
		h.sn.w.chk.onWriteAnswered(h.sn, r)
	}
	h.answer(r)
}

func (h simShell) answer(r core.Result) {
	sn := h.sn
	if cb, ok := sn.pending[r.ID]; ok {
		delete(sn.pending, r.ID)
		cb(r, sn.st.Data())
	}
}

func (h simShell) Event(e core.Event) {
	sn := h.sn
	sn.w.record("event", sn.id, uint64(e.Kind), uint64(e.Epoch), func() string {
		return e.Kind.String() + " epoch=" + itoa(uint64(e.Epoch)) + " node=" + string(e.Node) + " " + e.Detail
	})
	sn.w.chk.onEvent(sn, e)
}
