package node

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/muninndb/muninn/shell/store"
)

// syncer waits for the fsyncs of applied Readys beside the loop, so the loop
// never blocks on the disk (pipelined persistence, docs/protocol.md). The
// loop applies a Ready (store.SaveNoWait) and queues its Pending; the syncer
// waits for each in order (Pebble syncs the WAL once for every batch queued
// behind an fsync in progress, so a burst shares one fsync) and counts it
// done; the loop then calls core.Driver.Saved once per completed save.
type syncer struct {
	q     chan pendingSave
	note  chan struct{} // a save completed (or failed); capacity 1
	done  atomic.Int64  // completed, not yet handed to the driver
	errMu sync.Mutex
	err   error // the first failed fsync: the node stops
	quit  chan struct{}
	m     *Metrics
}

type pendingSave struct {
	p     *store.Pending
	start time.Time
}

// syncQueue bounds the saves waiting for their fsync; the loop blocks
// (backpressure) beyond it.
const syncQueue = 4096

func newSyncer(m *Metrics) *syncer {
	s := &syncer{q: make(chan pendingSave, syncQueue), note: make(chan struct{}, 1), quit: make(chan struct{}), m: m}
	go s.run()
	return s
}

func (s *syncer) run() {
	defer close(s.quit)
	for ps := range s.q {
		if err := ps.p.Wait(); err != nil {
			s.errMu.Lock()
			if s.err == nil {
				s.err = err
			}
			s.errMu.Unlock()
			s.notify()
			// Drain the rest without waiting: nothing after a failed
			// fsync counts (the store refuses every later write anyway).
			for range s.q {
			}
			return
		}
		if s.m != nil {
			s.m.saveSeconds.Observe(time.Since(ps.start).Seconds())
		}
		s.done.Add(1)
		s.notify()
	}
}

func (s *syncer) notify() {
	select {
	case s.note <- struct{}{}:
	default:
	}
}

// add queues an applied save; from the loop only.
func (s *syncer) add(p *store.Pending, start time.Time) { s.q <- pendingSave{p, start} }

// take returns how many saves completed since the last call, and the error
// that stopped the syncer, if any.
func (s *syncer) take() (int, error) {
	k := int(s.done.Swap(0))
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return k, s.err
}

// close stops the syncer once every queued fsync has returned.
func (s *syncer) close() {
	close(s.q)
	<-s.quit
}
