package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/ident"
)

// Snapshot staging directories under the data directory. snapshot-in/<id>
// holds a snapshot being received (a resumed stream continues in it);
// snapshot-out/<member> a checkpoint being sent. Both are removed once
// used or abandoned, and at start-up, so the disk holds about one copy of
// the data plus one snapshot in flight.
const (
	stagingIn  = "snapshot-in"
	stagingOut = "snapshot-out"
)

// abandonAfter is how long an interrupted incoming snapshot is kept for
// its sender to resume it (the sender redials within its 5 s backoff cap)
// before its staging directory is removed.
const abandonAfter = time.Minute

// staging tracks incoming snapshot streams so that a directory in use is
// never removed, and abandoned ones are.
type staging struct {
	mu     sync.Mutex
	closed bool
	active map[string]int         // snapshot id -> streams writing it
	gen    map[string]uint64      // bumped whenever an id is offered or done
	timers map[string]*time.Timer // pending abandonment, by id
}

// clearStaging removes every staging directory: at start-up nothing is in
// flight (a snapshot interrupted by a stop or a kill is sent again, and an
// interrupted checkpoint is taken again).
func clearStaging(dataDir string) error {
	for _, d := range []string{stagingIn, stagingOut} {
		if err := os.RemoveAll(filepath.Join(dataDir, d)); err != nil {
			return fmt.Errorf("removing the snapshot staging directory %s: %w", filepath.Join(dataDir, d), err)
		}
	}
	return nil
}

// outStaging is where a checkpoint for member to is written before it is
// streamed: snapshot-out/<to>, refused unless to is a safe name.
func (n *Node) outStaging(to core.NodeID) (string, error) {
	return ident.Join(filepath.Join(n.opts.DataDir, stagingOut), string(to))
}

// checkSnapshotSender refuses a snapshot from anyone but the Cortex this
// node follows (which is of the node's own epoch: a node follows only the
// Cortex of its current epoch). A member, or anyone holding the secret,
// cannot make the node replace its data.
func (n *Node) checkSnapshotSender(from core.NodeID) error {
	snap := n.Status()
	if snap == nil {
		return errors.New("this node is starting; snapshots are accepted once it follows a Cortex")
	}
	st := snap.Core
	switch {
	case st.Cortex == "":
		return fmt.Errorf("this node (%s) follows no Cortex at epoch %d (an election?); snapshots are accepted only from the Cortex", st.ID, st.Epoch)
	case st.Cortex == st.ID:
		return fmt.Errorf("this node (%s) is the Cortex of epoch %d and accepts no snapshot", st.ID, st.Epoch)
	case from != st.Cortex:
		return fmt.Errorf("snapshots are accepted only from the Cortex this node follows (%s, epoch %d), not from %s", st.Cortex, st.Epoch, from)
	}
	return nil
}

// snapshotStaging is the transport's SnapshotStaging: the staging
// directory for snapshot id from the Cortex. Any other staging directory
// not being written is removed (its snapshot was abandoned: only one is in
// flight).
func (n *Node) snapshotStaging(from core.NodeID, id string) (string, error) {
	if err := n.checkSnapshotSender(from); err != nil {
		n.log.Warn("snapshot refused", "from", from, "id", id, "err", err)
		return "", err
	}
	parent := filepath.Join(n.opts.DataDir, stagingIn)
	dir, err := ident.Join(parent, id)
	if err != nil {
		n.log.Warn("snapshot refused", "from", from, "err", err)
		return "", err
	}
	s := &n.staging
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", ErrStopped
	}
	s.active[id]++
	s.gen[id]++
	if t := s.timers[id]; t != nil {
		t.Stop()
		delete(s.timers, id)
	}
	ents, _ := os.ReadDir(parent)
	for _, e := range ents {
		if e.Name() != id && s.active[e.Name()] == 0 {
			if err := os.RemoveAll(filepath.Join(parent, e.Name())); err == nil {
				n.log.Info("removed an abandoned snapshot staging directory", "dir", filepath.Join(parent, e.Name()))
			}
			delete(s.gen, e.Name())
		}
	}
	return dir, nil
}

// snapshotDone ends a stream of id. A complete snapshot (ok) is handed to
// the loop if its sender is still the Cortex, else removed. An interrupted
// one is kept abandonAfter for its sender to resume, then removed.
func (n *Node) snapshotDone(from core.NodeID, id, dir string, ok bool) {
	s := &n.staging
	s.mu.Lock()
	if s.active[id]--; s.active[id] <= 0 {
		delete(s.active, id)
	}
	s.gen[id]++
	g := s.gen[id]
	if !ok && !s.closed && s.active[id] == 0 {
		if t := s.timers[id]; t != nil {
			t.Stop()
		}
		s.timers[id] = time.AfterFunc(abandonAfter, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.closed || s.gen[id] != g || s.active[id] > 0 {
				return
			}
			delete(s.timers, id)
			delete(s.gen, id)
			if err := os.RemoveAll(dir); err == nil {
				n.log.Info("removed the staging directory of an abandoned snapshot", "from", from, "id", id, "dir", dir)
			}
		})
	}
	s.mu.Unlock()
	if !ok {
		return
	}
	if err := n.checkSnapshotSender(from); err != nil {
		n.log.Warn("received snapshot not installed", "from", from, "id", id, "err", err)
		n.removeStaging(dir)
		return
	}
	select {
	case n.snapIn <- snapInstall{from: from, dir: dir}:
	case <-n.stop:
	}
}

// removeStaging removes an incoming snapshot's staging directory once it is
// installed (the store copied it) or refused.
func (n *Node) removeStaging(dir string) {
	if err := os.RemoveAll(dir); err != nil {
		n.log.Warn("removing a snapshot staging directory failed", "dir", dir, "err", err)
	}
}

// closeStaging stops pending abandonment timers.
func (s *staging) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, t := range s.timers {
		t.Stop()
	}
	s.timers = nil
}
