package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/mbp"
	"github.com/muninndb/muninn/shell/retry"
	"github.com/muninndb/muninn/shell/store"
)

// Node runs one MuninnDB node.
type Node struct {
	opts   Options
	log    *slog.Logger
	store  *store.Store
	tr     *mbp.Transport // nil when standalone
	origin time.Time

	reqs  chan request
	inbox chan core.Message
	stop  chan struct{}
	// stopped ends when stop is closed (for waits that take a context).
	stopped    context.Context
	endStopped context.CancelFunc
	done       chan struct{}
	snapIn     chan snapInstall
	snapFail   chan core.NodeID
	fatal      chan error
	status     atomic.Pointer[Snapshot]
	nextID     atomic.Uint64
	metrics    *Metrics
	events     *EventHub

	// loop-owned
	core    *core.Node
	waiters map[uint64]chan core.Result
	serves  map[uint64]func()
	drv     *core.Driver
	sync    *syncer // fsyncs of applied Readys (persist.go)
	ready   bool
	peers   peerSync
	staging staging
	// readiness: the last quorum-wait line logged (readiness.go)
	readiness readinessLog

	closeOnce sync.Once
	bg        sync.WaitGroup
	// sending holds the peers a snapshot is streaming to: the core may ask
	// again while a long one runs (it presumes a snapshot unanswered for
	// an SDOWN window lost), and a second stream would remove the first's
	// checkpoint under it.
	sendingMu sync.Mutex
	sending   map[core.NodeID]bool
	decay     *decayWorker
	archiver  *archiver // nil unless Options.ArchiveDir (archive.go)

	switcher atomic.Pointer[Switcher] // mode.go: set by the process (muninn start)
	protocol uint16                   // the active protocol version last published (loop only; version.go)
}

// Snapshot is what the loop last published about the node, for the API.
type Snapshot struct {
	Core    core.Status
	Members core.Members
	// APIAddrs maps member ids to their advertised API URLs.
	APIAddrs map[core.NodeID]string
	Peers    []mbp.PeerInfo
	Started  time.Time
	Joining  bool
	Now      core.Time
	// Protocol is the cluster's active protocol version (version.go).
	Protocol uint16
}

type request struct {
	kind    reqKind
	id      uint64
	payload []byte
	dur     core.Durability
	cons    core.Consistency
	maxLag  int64
	target  core.NodeID
	member  core.Member
	serve   func() // reads: run in the loop when allowed
	reply   chan core.Result
}

type reqKind uint8

const (
	reqWrite reqKind = iota + 1
	reqRead
	reqTransfer
	reqAdd
	reqRemove
)

type snapInstall struct {
	from core.NodeID
	dir  string
}

// Start opens the store, starts the transport (cluster mode) and the loop.
func Start(opts Options) (*Node, error) {
	opts.defaults()
	if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data directory %s: %w (set data_dir to a writable directory)", opts.DataDir, err)
	}
	st, err := store.Open(filepath.Join(opts.DataDir, "db"), storeOptions(opts))
	if err != nil {
		return nil, err
	}
	n := &Node{
		opts: opts, log: opts.Logger, store: st, origin: time.Now(),
		reqs: make(chan request, 1024), inbox: make(chan core.Message, 4096),
		stop: make(chan struct{}), done: make(chan struct{}), snapIn: make(chan snapInstall, 1), snapFail: make(chan core.NodeID, 1), fatal: make(chan error, 1),
		waiters: map[uint64]chan core.Result{}, serves: map[uint64]func(){}, metrics: newMetrics(opts.ID),
		staging: staging{active: map[string]int{}, gen: map[string]uint64{}, timers: map[string]*time.Timer{}},
	}
	n.stopped, n.endStopped = context.WithCancel(context.Background())
	// Snapshot staging left by a stop or a kill is stale: its stream is
	// sent again from the start.
	if err := clearStaging(opts.DataDir); err != nil {
		n.log.Warn("stale snapshot staging left in place", "err", err)
	}
	restored, err := st.Load()
	if err != nil {
		st.Close()
		return nil, err
	}
	// The seed's recovery step "find the node with the highest seq" reads
	// this line and the one at stop (muninn cluster recover asks the same).
	n.log.Info("store opened: " + positionText(st))
	fresh := restored.HardState.Epoch == 0 && len(restored.Entries) == 0 && restored.Base.Seq == 0
	var bootstrap core.Members
	if !opts.Cluster {
		bootstrap = core.Members{{ID: opts.ID, Kind: core.KindAuto}}
	}
	if opts.Cluster {
		// The seed's line, with the settings that decide failover.
		cc := core.Config{Heartbeat: opts.Heartbeat, LeaseTTL: opts.LeaseTTL, Priority: opts.Priority}.WithDefaults()
		prio := cc.Priority
		if opts.NeverCortex || opts.Kind != core.KindAuto {
			prio = 0
		}
		n.log.Info(fmt.Sprintf("cluster mode enabled, node_id=%s", opts.ID), "priority", prio,
			"heartbeat_ms", cc.Heartbeat.Milliseconds(), "lease_ttl", cc.LeaseTTL.String(), "down_after", cc.DownAfter().String())
		if err := n.startTransport(); err != nil {
			st.Close()
			return nil, err
		}
		if fresh {
			bootstrap, err = n.discover()
			if err != nil {
				n.tr.Close()
				st.Close()
				return nil, err
			}
		}
	}
	var seed [8]byte
	rand.Read(seed[:])
	cfg := core.Config{
		ID: opts.ID, Kind: opts.Kind, Heartbeat: opts.Heartbeat, LeaseTTL: opts.LeaseTTL,
		Priority: opts.Priority, NeverCortex: opts.NeverCortex && opts.Cluster,
		Seed: binary.LittleEndian.Uint64(seed[:]), Bootstrap: bootstrap,
		Store: st.Identity(), Addr: opts.AdvertiseAddr,
	}.WithDefaults()
	if err := cfg.Validate(); err != nil {
		n.closeIO()
		return nil, err
	}
	if restored, err = n.adoptStandalone(restored); err != nil {
		n.closeIO()
		return nil, err
	}
	members := restored.Members
	n.core = core.New(cfg, core.Restored{
		HardState: restored.HardState, Snap: restored.Base, SnapMembers: members, Entries: restored.Entries,
	}, n.now())
	n.drv = core.NewDriver(n.core, restored.HardState, nodeStorage{n}, nil, nodeReplies{n})
	n.drv.Log, n.drv.Kind = n.log, opts.Kind
	n.sync = newSyncer(n.metrics)
	n.drv.Pipeline = nodeStorage{n}
	// One fsync in flight; the writes arriving meanwhile form the next
	// batch (group commit), whose appends go out as soon as it is taken.
	n.drv.MaxInflight, n.drv.InflightWait = 1, 50*time.Millisecond
	if n.tr != nil {
		n.drv.Transport = nodeTransport{n}
	}
	n.decay = newDecayWorker(n)
	n.events = newEventHub(string(opts.ID))
	n.publish()
	if opts.ArchiveDir != "" && opts.Kind != core.KindSentinel {
		n.archiver = startArchiver(n)
	}
	go n.loop()
	return n, nil
}

func (n *Node) now() core.Time { return core.Time(time.Since(n.origin)) }

func (n *Node) startTransport() error {
	n.tr = mbp.New(mbp.Config{
		ID: n.opts.ID, Kind: n.opts.Kind, Secret: n.opts.Secret, SecretPrevious: n.opts.SecretPrevious,
		ListenAddr: n.opts.BindAddr, AdvertiseAddr: n.opts.AdvertiseAddr, APIAddr: n.opts.APIAddr,
		Logger: n.log, SnapshotRateMB: n.opts.SnapshotRateMB, TLS: n.opts.TLS,
		// Snapshots only from the Cortex this node follows, into
		// snapshot-in/<id> (id checked), removed once installed or
		// abandoned: see staging.go.
		SnapshotStaging: n.snapshotStaging,
		OnSnapshot: func(from core.NodeID, id, dir string) {
			n.snapshotDone(from, id, dir, true)
		},
		OnSnapshotFailed: func(from core.NodeID, id, dir string, err error) {
			n.snapshotDone(from, id, dir, false)
		},
		// A member heartbeats every member: a connection silent for the
		// SDOWN window is the one a restarted peer lost.
		LivenessWindow: core.Config{Heartbeat: n.opts.Heartbeat, LeaseTTL: n.opts.LeaseTTL}.WithDefaults().DownAfter(),
		// A crash hint's redial is refused at once or not at all.
		HintDialTimeout: min(n.opts.Heartbeat/2, mbp.DefaultHintDialTimeout),
		// Cluster ids in the handshake (cluster_id.go).
		ClusterID: n.store.ClusterID, AdoptClusterID: n.adoptClusterID,
	})
	if err := n.tr.Listen(); err != nil {
		return fmt.Errorf("listen on cluster.bind_addr %s: %w", n.opts.BindAddr, err)
	}
	go n.logSeeds()
	for _, s := range n.opts.Seeds {
		if s == n.opts.BindAddr || s == n.opts.AdvertiseAddr {
			continue
		}
		n.log.Info(fmt.Sprintf("connecting to seed %s...", s))
		if err := n.tr.Connect(s); err != nil {
			return fmt.Errorf("seed %s: %w", s, err)
		}
	}
	go func() {
		for {
			select {
			case m, ok := <-n.tr.Recv():
				if !ok {
					return
				}
				select {
				case n.inbox <- m:
				case <-n.stop:
					return
				}
			case <-n.stop:
				return
			}
		}
	}()
	return nil
}

// Close stops the node: the loop, the transport and the store.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.stop)
		n.endStopped()
		<-n.done
		n.events.close()
		n.bg.Wait()
		n.staging.close()
		if n.archiver != nil {
			n.archiver.stop()
		}
		n.closeIO()
		n.log.Info("stopped: " + positionText(n.store))
	})
	return nil
}

// positionText is the store's last log position and commit point as the
// start and stop lines give them (read from memory: valid after Close).
func positionText(st *store.Store) string {
	hs, last, _ := st.State()
	return fmt.Sprintf("last epoch=%d seq=%d commit=%d", last.Epoch, last.Seq, hs.Commit.Seq)
}

func (n *Node) closeIO() {
	if n.tr != nil {
		n.tr.Close()
	}
	n.store.Close()
}

// Fatal delivers the error that stopped the node on its own (a storage
// failure); the process should exit non-zero.
func (n *Node) Fatal() <-chan error { return n.fatal }

// Store gives read access to the node's data.
func (n *Node) Store() *store.Store { return n.store }

// Status returns what the loop last published.
func (n *Node) Status() *Snapshot { return n.status.Load() }

// Metrics returns the node's metrics.
func (n *Node) Metrics() *Metrics { return n.metrics }

// ID returns the node id.
func (n *Node) ID() core.NodeID { return n.opts.ID }

// Options returns the options the node runs with.
func (n *Node) Options() Options { return n.opts }

// Write proposes a state-machine command and waits for its result. While
// no Cortex is known (an election) or a handoff is under way it holds the
// write and retries for up to ForwardWait (rule 13), so a failover shows up
// as latency; a *core.Error with CodeNotCortex names the Cortex to forward to.
func (n *Node) Write(ctx context.Context, payload []byte, d core.Durability) (core.Pos, error) {
	r, err := n.hold(ctx, request{kind: reqWrite, payload: payload, dur: d})
	if err != nil {
		return core.Pos{}, err
	}
	return r.Pos, nil
}

// hold calls the loop, retrying while the cluster is between Cortexes
// (shell/retry's Hold policy, within ForwardWait).
func (n *Node) hold(ctx context.Context, req request) (core.Result, error) {
	// One try first: the retry's context, timer and backoff cost about 5 µs
	// a write and are needed only between Cortexes.
	r, callErr := n.call(ctx, req)
	switch {
	case callErr != nil:
		return r, callErr
	case r.Err == nil:
		return r, nil
	case r.Err.Code != core.CodeNoCortex && r.Err.Code != core.CodeTransferring:
		return r, r.Err
	}
	return n.holdRetry(ctx, req)
}

func (n *Node) holdRetry(ctx context.Context, req request) (core.Result, error) {
	var r core.Result
	var callErr error
	wait, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(n.stopped, cancel)()
	err := retry.Do(wait, retry.Hold(n.opts.ForwardWait), func() error {
		r, callErr = n.call(ctx, req)
		switch {
		case callErr != nil:
			return retry.Permanent(callErr)
		case r.Err == nil:
			return nil
		case r.Err.Code != core.CodeNoCortex && r.Err.Code != core.CodeTransferring:
			return retry.Permanent(r.Err)
		}
		return r.Err
	})
	switch {
	case callErr != nil:
		return r, callErr
	case err == nil:
		return r, nil
	case ctx.Err() != nil:
		return r, ctx.Err()
	case n.stopped.Err() != nil:
		return r, ErrStopped
	}
	return r, r.Err
}

// Read serves a read at level c: serve reads the store. An eventual read is
// served at once. A bounded or strong read is served by the runner's loop
// the moment the core allows it, before the Ready that allowed it is
// persisted, so it sees exactly the state the core vouched for and nothing
// appended after (the contract on core.Ready). A *core.Error names where to
// forward instead; serve was then not called.
func (n *Node) Read(ctx context.Context, c core.Consistency, maxLagMs int64, serve func()) error {
	if n.opts.Kind == core.KindSentinel {
		return &core.Error{Code: core.CodeReadOnly, Msg: "this node is a sentinel and holds no data"}
	}
	if c == core.Eventual {
		serve()
		return nil
	}
	_, err := n.hold(ctx, request{kind: reqRead, cons: c, maxLag: maxLagMs, serve: serve})
	return err
}

// Transfer hands the Cortex role to target ("" picks the most caught-up).
func (n *Node) Transfer(ctx context.Context, target core.NodeID) error {
	return n.admin(ctx, request{kind: reqTransfer, target: target})
}

// AddMember adds a node to the cluster.
func (n *Node) AddMember(ctx context.Context, m core.Member) error {
	return n.admin(ctx, request{kind: reqAdd, member: m})
}

// RemoveMember removes a node from the cluster.
func (n *Node) RemoveMember(ctx context.Context, id core.NodeID) error {
	return n.admin(ctx, request{kind: reqRemove, target: id})
}

func (n *Node) admin(ctx context.Context, req request) error {
	r, err := n.call(ctx, req)
	if err != nil {
		return err
	}
	if r.Err != nil {
		return r.Err
	}
	return nil
}

// ErrStopped is returned once the node is shutting down.
var ErrStopped = errors.New("the node is shutting down; retry on another node")

func (n *Node) call(ctx context.Context, req request) (core.Result, error) {
	req.id = n.nextID.Add(1)
	req.reply = make(chan core.Result, 1)
	select {
	case n.reqs <- req:
	case <-ctx.Done():
		return core.Result{}, ctx.Err()
	case <-n.stop:
		return core.Result{}, ErrStopped
	}
	wait := time.NewTimer(n.opts.RequestWait)
	defer wait.Stop()
	select {
	case r := <-req.reply:
		return r, nil
	case <-ctx.Done():
		return core.Result{}, ctx.Err()
	case <-n.stop:
		return core.Result{}, ErrStopped
	case <-wait.C:
		// The loop still holds it (the reply channel is buffered): a
		// write may yet be applied, a read is simply not answered.
		if req.kind == reqRead {
			return core.Result{}, &core.Error{Code: core.CodeUnavailable, Msg: fmt.Sprintf("no answer within %s; retry the read", n.opts.RequestWait)}
		}
		return core.Result{}, &core.Error{Code: core.CodeUnknownOutcome, Msg: fmt.Sprintf("no answer within %s (a commit is slow or stalled): it may still be applied; read it back before retrying", n.opts.RequestWait)}
	}
}

// DefaultRequestWait is RequestWait's default: longer than any bound the
// protocol sets itself (an SDOWN window for a commit that cannot come, 5 s
// of quorum loss before a Cortex demotes), so it fires only when commits
// are slow, not impossible; and shorter than the 8 s a forwarding node or
// the Go client waits, so they get this answer rather than a timeout.
const DefaultRequestWait = 7 * time.Second

// adoptStandalone lets a node that ran alone come back under another
// node_id (standalone → cluster mode, muninn cluster enable): when the
// stored membership is one voter that is not this node, nobody else holds
// its data or counts on its vote, so the runner appends, in the last epoch,
// the membership entry a Cortex would have proposed to rename it.
func (n *Node) adoptStandalone(r store.Restored) (store.Restored, error) {
	ms := r.Members
	if len(ms) != 1 || ms[0].ID == n.opts.ID || r.HardState.Epoch == 0 {
		return r, nil
	}
	last := r.Base
	if k := len(r.Entries); k > 0 {
		last = r.Entries[k-1].Pos
	}
	newMs := core.Members{{ID: n.opts.ID, Kind: core.KindAuto}}
	e := core.Entry{Pos: core.Pos{Epoch: r.HardState.Epoch, Seq: last.Seq + 1}, Type: core.EntryMembership, Payload: core.EncodeMembers(newMs)}
	hs := r.HardState
	hs.Vote, hs.VoteStore = "", 0
	if err := n.store.Save(store.SaveBatch{HardState: &hs, Entries: []core.Entry{e}, Members: newMs, Now: time.Now().UnixMilli()}, true); err != nil {
		return r, fmt.Errorf("adopting the data of node %s as %s: %w", ms[0].ID, n.opts.ID, err)
	}
	n.log.Info(fmt.Sprintf("this data directory belonged to the single node %s; it continues as %s", ms[0].ID, n.opts.ID))
	return n.store.Load()
}
