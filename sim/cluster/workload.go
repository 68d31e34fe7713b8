package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/client"
	"github.com/muninndb/muninn/sim"
)

// WorkloadConfig shapes the clients.
type WorkloadConfig struct {
	// ClientsPerNode clients are bound to each data node.
	ClientsPerNode int
	// MaxOps bounds the operations of one segment.
	MaxOps int
	// Think is the mean pause between a client's operations.
	Think time.Duration
	// Timeout bounds one operation (a write may be held by a Lobe for
	// forward_wait_ms during an election).
	Timeout time.Duration
	// MaxLagMs is the bound of bounded reads.
	MaxLagMs int64
}

// Workload is one segment's clients and their recorded history.
type Workload struct {
	cfg      WorkloadConfig
	api      *API
	nodes    []Node
	RegVault string
	UniVault string
	RegIDs   []string
	start    time.Time

	// hold, when set (nanoseconds since start), replaces the deadline
	// Run was given: a nemesis that takes as long as it takes (rolling,
	// churn) keeps the clients running until it is done (holdUntil).
	hold atomic.Int64

	mu    sync.Mutex
	ops   []*Op
	acked []string // acknowledged unique ids, for reads
	count int
}

// NewWorkload prepares a workload over nodes writing to vaults named after
// tag (fresh per segment).
func NewWorkload(cfg WorkloadConfig, api *API, nodes []Node, tag string, start time.Time) *Workload {
	w := &Workload{cfg: cfg, api: api, nodes: nodes, RegVault: "reg-" + tag, UniVault: "uniq-" + tag, start: start}
	for k := 0; k < sim.Registers; k++ {
		w.RegIDs = append(w.RegIDs, client.NewID())
	}
	return w
}

// Ops returns the recorded history, in completion order.
func (w *Workload) Ops() []*Op {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.ops)
}

func (w *Workload) now() time.Duration { return time.Since(w.start) }

// holdUntil makes the clients run until d (since the start) instead of
// the deadline Run was given; 0 restores that deadline.
func (w *Workload) holdUntil(d time.Duration) { w.hold.Store(int64(d)) }

// running reports whether the clients go on: before the deadline until,
// or the one holdUntil set.
func (w *Workload) running(until time.Duration) bool {
	if h := time.Duration(w.hold.Load()); h > 0 {
		until = h
	}
	return w.now() < until
}

// Setup creates the registers (value "init") with quorum writes, retrying
// until each exists.
func (w *Workload) Setup(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for k, id := range w.RegIDs {
		for i := 0; ; i++ {
			n := w.nodes[(k+i)%len(w.nodes)]
			r, err := w.api.Do(ctx, n, "POST", "/api/engrams", url.Values{"durability": {"quorum"}},
				apitypes.WriteRequest{Vault: w.RegVault, ID: id, Concept: "register " + strconv.Itoa(k), Content: "init"}, w.cfg.Timeout)
			if err == nil && (r.Status == 201 || r.Status == 200 || r.Status == 409) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("creating register %d on %s: %v %d %s", k, n.ID, err, r.Status, truncate(string(r.Body), 200))
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}

// FollowerClient is the client id of the Cortex-following client.
const FollowerClient = 999

// Run runs the clients until the deadline (since the segment start) or
// MaxOps operations, then waits for the operations in flight. Besides the
// clients bound to one node each, a Cortex-following client (shell/client
// over every data node's published port) makes local writes: it sees a
// failover as an application using the Go client would.
func (w *Workload) Run(ctx context.Context, until time.Duration, follower *client.Client) {
	var wg sync.WaitGroup
	if follower != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.follow(ctx, follower, until)
		}()
	}
	cid := 0
	for _, n := range w.nodes {
		for i := 0; i < w.cfg.ClientsPerNode; i++ {
			wg.Add(1)
			go func(c int, n Node) {
				defer wg.Done()
				w.client(ctx, c, n, until)
			}(cid, n)
			cid++
		}
	}
	wg.Wait()
}

func (w *Workload) client(ctx context.Context, c int, n Node, until time.Duration) {
	rng := rand.New(rand.NewPCG(uint64(c)+1, uint64(w.start.UnixNano())))
	seq := 0
	for ctx.Err() == nil && w.running(until) && w.take() {
		w.mu.Lock()
		var pickFrom string
		if len(w.acked) > 0 {
			pickFrom = w.acked[rng.IntN(len(w.acked))]
		}
		w.mu.Unlock()

		op := &Op{Client: c, Node: n.ID}
		switch x := rng.Float64(); {
		case n.Observer:
			// An Observer serves reads (strong ones forwarded to the
			// Cortex, like a Lobe's) and refuses writes: a few writes
			// check that it does (checkObserver).
			switch {
			case x < 0.1:
				op.Kind = OpLocalWrite
			case x < 0.6:
				op.Kind = OpRegRead
			case x < 0.8:
				op.Kind = OpEventualRead
			default:
				op.Kind = OpBoundedRead
			}
		case x < 0.25:
			op.Kind = OpRegWrite
		case x < 0.5:
			op.Kind = OpRegRead
		case x < 0.7:
			op.Kind = OpLocalWrite
		case x < 0.8:
			op.Kind = OpQuorumWrite
		case x < 0.9:
			op.Kind = OpEventualRead
		default:
			op.Kind = OpBoundedRead
		}
		if (op.Kind == OpEventualRead || op.Kind == OpBoundedRead) && pickFrom == "" {
			op.Kind = OpLocalWrite
			if n.Observer {
				op.Kind = OpRegRead
			}
		}
		seq++
		switch op.Kind {
		case OpRegWrite, OpRegRead:
			op.Key = rng.IntN(len(w.RegIDs))
			op.ID = w.RegIDs[op.Key]
			if op.Kind == OpRegWrite {
				op.Value = fmt.Sprintf("c%d-%d", c, seq)
			}
		case OpLocalWrite, OpQuorumWrite:
			op.ID = client.NewID()
		default:
			op.ID = pickFrom
		}
		w.do(ctx, n, op)
		w.mu.Lock()
		w.ops = append(w.ops, op)
		if op.Outcome == OK && (op.Kind == OpLocalWrite || op.Kind == OpQuorumWrite) {
			w.acked = append(w.acked, op.ID)
		}
		w.mu.Unlock()
		pause := time.Duration(rng.ExpFloat64() * float64(w.cfg.Think))
		if op.Outcome != OK {
			pause += 50 * time.Millisecond
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
}

// take counts one more operation against MaxOps; false when spent.
func (w *Workload) take() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.count >= w.cfg.MaxOps {
		return false
	}
	w.count++
	return true
}

// follow writes unique engrams, alternately local and quorum, through the
// Go client, which follows the Cortex and retries across nodes. A call
// that fails is recorded as unknown when the client says its outcome is
// ambiguous (some attempt may have been applied), else as failed.
func (w *Workload) follow(ctx context.Context, fc *client.Client, until time.Duration) {
	for i := 0; ctx.Err() == nil && w.running(until) && w.take(); i++ {
		op := &Op{Client: FollowerClient, Node: "follower", Kind: OpLocalWrite, ID: client.NewID()}
		dur := "local"
		if i%2 == 1 {
			op.Kind, dur = OpQuorumWrite, "quorum"
		}
		op.Call = w.now()
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		res, err := fc.Write(cctx, apitypes.WriteRequest{Vault: w.UniVault, ID: op.ID, Concept: "fault test", Content: "written by the following client"}, client.Durability(dur))
		cancel()
		op.Return = w.now()
		switch {
		case err == nil:
			op.Outcome, op.Epoch, op.Seq = OK, res.Epoch, res.Seq
		case errors.Is(err, client.ErrAmbiguous):
			op.Outcome, op.Code = Unknown, truncate(err.Error(), 120)
		default:
			op.Outcome, op.Code = Fail, truncate(err.Error(), 120)
		}
		w.mu.Lock()
		w.ops = append(w.ops, op)
		if op.Outcome == OK {
			w.acked = append(w.acked, op.ID)
		}
		w.mu.Unlock()
		pause := w.cfg.Think
		if op.Outcome != OK {
			pause = 20 * time.Millisecond
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
}

// do sends op once to n and records its outcome.
func (w *Workload) do(ctx context.Context, n Node, op *Op) {
	var (
		method, path = "GET", "/api/engrams/" + op.ID
		q            = url.Values{}
		body         any
	)
	switch op.Kind {
	case OpRegWrite:
		method = "PATCH"
		q.Set("vault", w.RegVault)
		q.Set("durability", "quorum")
		v := op.Value
		body = apitypes.UpdateRequest{Content: &v}
	case OpRegRead:
		q.Set("vault", w.RegVault)
		q.Set("consistency", "strong")
	case OpLocalWrite, OpQuorumWrite:
		method, path = "POST", "/api/engrams"
		dur := "local"
		if op.Kind == OpQuorumWrite {
			dur = "quorum"
		}
		q.Set("durability", dur)
		body = apitypes.WriteRequest{Vault: w.UniVault, ID: op.ID, Concept: "fault test", Content: "written by client " + strconv.Itoa(op.Client)}
	case OpEventualRead:
		q.Set("vault", w.UniVault)
		q.Set("consistency", "eventual")
	case OpBoundedRead:
		q.Set("vault", w.UniVault)
		q.Set("consistency", "bounded")
		q.Set("max_lag_ms", strconv.FormatInt(w.cfg.MaxLagMs, 10))
	}
	op.Call = w.now()
	r, err := w.api.Do(ctx, n, method, path, q, body, w.cfg.Timeout)
	op.Return = w.now()
	op.Status, op.AnsweredBy = r.Status, r.Node
	op.Outcome, op.Code = classify(op.Kind.Write(), r, err)
	if op.Outcome != OK {
		return
	}
	switch op.Kind {
	case OpRegRead, OpEventualRead, OpBoundedRead:
		if r.Status == 404 {
			op.Value = Absent
			return
		}
		var e apitypes.Engram
		if json.Unmarshal(r.Body, &e) != nil {
			op.Outcome, op.Code = Fail, "undecodable answer"
			return
		}
		if op.Kind == OpRegRead {
			op.Value = e.Content
		} else {
			op.Value = "found"
		}
	default:
		var res apitypes.WriteResult
		if json.Unmarshal(r.Body, &res) == nil {
			op.Epoch, op.Seq = res.Epoch, res.Seq
		}
	}
}

// definite lists the API error codes that say nothing was done.
var definite = map[string]bool{
	apitypes.CodeBadRequest: true, apitypes.CodeUnauthorized: true, apitypes.CodeForbidden: true,
	apitypes.CodeReadOnlyNode: true, apitypes.CodeNotCortex: true, apitypes.CodeNoCortex: true,
	apitypes.CodeHandoff: true, apitypes.CodeChangeInProgress: true, apitypes.CodeStarting: true,
	apitypes.CodeQuorumImpossible: true, apitypes.CodeTooStale: true, apitypes.CodeTooLarge: true,
	apitypes.CodeMethodNotAllowed: true,
	// Fewer than W data voters answer: refused before anything was
	// written (rule 17).
	codeQuorumUnavailable: true,
}

// Codes the API answers that apitypes does not name (core.Code values).
const (
	codeQuorumUnavailable   = "quorum_unavailable"
	codeInsufficientStorage = "insufficient_storage"
)

// classify turns one exchange into an outcome: reads either succeed or
// fail; a write that may have reached the Cortex without an answer is
// unknown.
func classify(write bool, r Reply, err error) (Outcome, string) {
	if err != nil {
		msg := err.Error()
		if !r.Sent {
			return Fail, "refused: " + truncate(msg, 120)
		}
		if write {
			return Unknown, truncate(msg, 120)
		}
		return Fail, truncate(msg, 120)
	}
	if r.Status/100 == 2 {
		return OK, ""
	}
	code := r.Code()
	if code == "" {
		code = "http_" + strconv.Itoa(r.Status)
	}
	if !write && r.Status == 404 && code == apitypes.CodeNotFound {
		return OK, ""
	}
	if definite[code] {
		return Fail, code
	}
	// 507: refused before it was logged, unless the disk filled while the
	// node was storing it; then the message asks to read it back.
	if code == codeInsufficientStorage && !strings.Contains(r.Message(), "read it back") {
		return Fail, code
	}
	if write {
		return Unknown, code
	}
	return Fail, code
}
