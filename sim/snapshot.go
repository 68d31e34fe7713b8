package sim

import (
	"time"

	"github.com/muninndb/muninn/core"
)

// snapshots streams a Cortex's checkpoint to a node far behind (rule 7), as
// the runner does over MBP: the receiver accepts a stream only from the
// Cortex it follows; the checkpoint crosses the simulated network in
// chunks, each with a drawn latency; a cut, a lost chunk or a crash or
// pause of either end fails the stream, and the sender's driver is told so
// the core tries again. The receiver's driver installs it.
type snapshots struct {
	w      *World
	active map[[2]core.NodeID]bool
}

// snapChunk is the size of one chunk on the simulated wire.
const snapChunk = 64 << 10

func newSnapshots(w *World) *snapshots {
	return &snapshots{w: w, active: map[[2]core.NodeID]bool{}}
}

func (s *snapshots) send(from *SimNode, to core.NodeID) {
	w := s.w
	w.stats.Snapshots++
	key := [2]core.NodeID{from.id, to}
	inc := from.incarnation
	fail := func(why string) {
		delete(s.active, key)
		w.record("snapshot-failed", from.id, 0, 0, func() string { return "to " + string(to) + ": " + why })
		if from.live() && from.incarnation == inc {
			from.drv.SnapshotFailed(from.local(w.now), to)
			from.drive(nil)
		}
	}
	rcv := w.node(to)
	if rcv == nil || s.active[key] {
		return
	}
	s.active[key] = true
	img, err := from.st.Checkpoint()
	if err != nil {
		w.after(w.set.Heartbeat, func() { fail("checkpoint: " + err.Error()) })
		return
	}
	rinc := rcv.incarnation
	chunks := max(1, (img.size+snapChunk-1)/snapChunk)
	w.record("snapshot-start", from.id, uint64(chunks), 0, func() string { return "to " + string(to) })
	var step func(i int)
	step = func(i int) {
		switch {
		case !from.live() || from.incarnation != inc:
			fail("the sender stopped")
			return
		case !rcv.live() || rcv.incarnation != rinc:
			fail("the receiver stopped")
			return
		case !w.net.linkUp(from.id, to) || w.rngNet.Chance(w.net.loss):
			fail("the link dropped chunk " + itoa(uint64(i)))
			return
		case i == 0 && rcv.n.Cortex() != from.id:
			fail("the receiver follows " + string(rcv.n.Cortex()) + ", not the sender")
			return
		}
		if i+1 < chunks {
			w.after(w.rngNet.Between(w.set.LatencyMin, w.set.LatencyMax), func() { step(i + 1) })
			return
		}
		delete(s.active, key)
		rcv.installSnapshot(from.id, img)
	}
	w.after(w.rngNet.Between(w.set.LatencyMin, w.set.LatencyMax)+time.Millisecond, func() { step(0) })
}

// installSnapshot has the driver install a streamed checkpoint.
func (sn *SimNode) installSnapshot(from core.NodeID, img *snapImage) {
	w := sn.w
	if sn.whenIdle(func() { sn.installSnapshot(from, img) }) {
		return // after the saves in flight, as the node's loop waits
	}
	dir, err := sn.st.Stage(img)
	if err != nil {
		if sn.disk.injected(err) {
			sn.storageFailed(err)
			return
		}
		w.chk.violate("snapshot-stage", false, sn.id, "staging a snapshot failed: "+err.Error())
		return
	}
	w.record("snapshot-install", sn.id, 0, 0, func() string { return "from " + string(from) })
	if err := sn.drv.InstallSnapshot(sn.local(w.now), from, dir); err != nil {
		sn.storageFailed(err)
		return
	}
	sn.drive(nil)
}
