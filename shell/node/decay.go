package node

import (
	"context"
	"crypto/rand"
	"sync"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/core/engram"
)

// decayWorker is the Cortex-only cognitive worker: every interval it decays
// the activation of every vault through ordinary replicated writes. It runs
// only while this node is Cortex; demotion stops it.
type decayWorker struct {
	n      *Node
	mu     sync.Mutex
	cancel context.CancelFunc
}

func newDecayWorker(n *Node) *decayWorker { return &decayWorker{n: n} }

func (w *decayWorker) set(active bool) {
	if w.n.opts.DecayInterval <= 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if active == (w.cancel != nil) {
		return
	}
	if !active {
		w.cancel()
		w.cancel = nil
		w.n.metrics.decayActive.Set(0)
		w.n.log.Info("cognitive worker stopped (no longer cortex)")
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	w.n.metrics.decayActive.Set(1)
	w.n.log.Info("cognitive worker started: activation decay", "interval", w.n.opts.DecayInterval, "factor", w.n.opts.DecayFactor)
	w.n.bg.Add(1)
	go func() {
		defer w.n.bg.Done()
		t := time.NewTicker(w.n.opts.DecayInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-w.n.stop:
				return
			case <-t.C:
				w.run(ctx)
			}
		}
	}()
}

// run decays every vault with one entry (decay-all), however many vaults
// there are: an idle cluster writes one log entry per interval.
func (w *decayWorker) run(ctx context.Context) {
	cmd := engram.Command{Op: engram.OpDecayAll, Factor: w.n.opts.DecayFactor, At: uint64(time.Now().UnixMilli())}
	payload, err := engram.EncodeCommand(cmd)
	if err != nil {
		w.n.log.Warn("decay: bad command", "err", err)
		return
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := w.n.Write(wctx, payload, core.Local); err != nil {
		w.n.log.Debug("decay skipped", "err", err) // demoted or stopping: the next Cortex decays
	}
}

// NewEngramID makes a new sortable engram id from the wall clock.
func NewEngramID() string {
	var rnd [10]byte
	rand.Read(rnd[:])
	return engram.NewID(uint64(time.Now().UnixMilli()), rnd)
}
