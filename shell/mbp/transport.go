package mbp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/ident"
	"github.com/muninndb/muninn/shell/retry"
	"golang.org/x/time/rate"
)

// Defaults for Config's zero fields.
const (
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultDialTimeout      = 3 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultBackoffMin       = 100 * time.Millisecond
	DefaultBackoffMax       = 5 * time.Second
	DefaultQueueLen         = 4096     // messages per lane per peer
	DefaultQueueBytes       = 64 << 20 // queued append bytes per peer
	DefaultRecvLen          = 4096
	DefaultSnapshotRateMB   = 100 // snapshot_rate_mb, in 10^6 bytes/s
	DefaultLivenessWindow   = 3 * time.Second
	// MinSecretLen is the shortest cluster_secret a Transport accepts.
	MinSecretLen = 16
)

// Config configures a Transport. Zero fields take the defaults above.
type Config struct {
	ID     core.NodeID
	Kind   core.Kind
	Secret []byte // cluster_secret; required
	// SecretPrevious is cluster.cluster_secret_previous: accepted from
	// peers during a rotation (see SetSecrets); nil when none.
	SecretPrevious []byte
	// ListenAddr is cluster.bind_addr (":8474"); "127.0.0.1:0" in tests.
	ListenAddr string
	// APIAddr is advertised in the handshake: where this node's REST API is.
	APIAddr string
	// AdvertiseAddr is the MBP address peers dial back for snapshots;
	// the listener's address when empty.
	AdvertiseAddr string
	Logger        *slog.Logger
	// MaxFrame lowers the frame payload limit (at most the hard MaxFrame).
	MaxFrame         int
	HandshakeTimeout time.Duration
	DialTimeout      time.Duration
	// WriteTimeout closes a connection whose writes stall this long.
	WriteTimeout time.Duration
	// BackoffMin and BackoffMax bound the jittered exponential redial delay.
	BackoffMin, BackoffMax time.Duration
	// QueueLen caps each lane of a peer's queue; QueueBytes caps the queued
	// append bytes per peer. Sends beyond are dropped and counted.
	QueueLen   int
	QueueBytes int
	RecvLen    int
	// SnapshotRateMB is snapshot_rate_mb: outgoing snapshot bytes per second
	// (10^6), shared by all streams; negative means unlimited.
	SnapshotRateMB int
	// SnapshotChunk is the chunk size (1 MiB by default).
	SnapshotChunk int
	// SnapshotStaging returns the empty-or-resumable staging directory for an
	// incoming snapshot; nil refuses incoming snapshots.
	SnapshotStaging func(from core.NodeID, id string) (string, error)
	// OnSnapshot is called once an incoming snapshot is complete and every
	// file's SHA-256 checked.
	OnSnapshot func(from core.NodeID, id, dir string)
	// OnSnapshotFailed is called when an incoming stream that was given a
	// staging directory ends without completing (the sender may resume it).
	OnSnapshotFailed func(from core.NodeID, id, dir string, err error)
	// LivenessWindow decides between two control connections claiming the
	// same peer (see attach): one up at least this long that delivered a
	// frame within it is live and is kept. Members heartbeat each other, so
	// the node passes its SDOWN window (3 heartbeats); default 3 s.
	LivenessWindow time.Duration
	// TLS is cluster.tls: when set, every connection runs mutual TLS 1.3
	// (see LoadTLS) under the HMAC handshake. Listen and Connect report a
	// file that cannot be loaded.
	TLS *TLSFiles
	// HintDialTimeout bounds the redial that makes a closed control
	// connection a crash hint (hint.go); default DefaultHintDialTimeout.
	HintDialTimeout time.Duration
	// ClusterID returns this node's cluster id for each handshake (nil: 0);
	// AdoptClusterID is HandshakeConfig.AdoptCluster (cluster_id.go).
	ClusterID      func() uint64
	AdoptClusterID func(peer Hello) error
	// BinaryVersion is sent in every hello (default mbp.BinaryVersion());
	// ProtoMin and ProtoMax the protocol range (default this build's
	// ProtocolMin..ProtocolMax; tests set others). version.go.
	BinaryVersion      string
	ProtoMin, ProtoMax uint16
}

func (c Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	def(&c.DialTimeout, DefaultDialTimeout)
	def(&c.WriteTimeout, DefaultWriteTimeout)
	def(&c.BackoffMin, DefaultBackoffMin)
	def(&c.BackoffMax, DefaultBackoffMax)
	def(&c.LivenessWindow, DefaultLivenessWindow)
	def(&c.HintDialTimeout, DefaultHintDialTimeout)
	if c.BinaryVersion == "" {
		c.BinaryVersion = BinaryVersion()
	}
	if c.ProtoMax == 0 {
		c.ProtoMin, c.ProtoMax = ProtocolMin, ProtocolMax
	}
	c.MaxFrame = checkLimit(c.MaxFrame)
	if c.QueueLen <= 0 {
		c.QueueLen = DefaultQueueLen
	}
	if c.QueueBytes <= 0 {
		c.QueueBytes = DefaultQueueBytes
	}
	if c.RecvLen <= 0 {
		c.RecvLen = DefaultRecvLen
	}
	if c.SnapshotRateMB == 0 {
		c.SnapshotRateMB = DefaultSnapshotRateMB
	}
	if c.SnapshotChunk <= 0 || c.SnapshotChunk > c.MaxFrame-64 {
		c.SnapshotChunk = min(DefaultSnapshotChunk, c.MaxFrame-64)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// PeerInfo describes one peer for status output.
type PeerInfo struct {
	ID        core.NodeID
	Kind      core.Kind
	Addr      string // the connection's remote address
	APIAddr   string
	MBPAddr   string
	Connected bool
	Dialed    bool // this node dialed the current connection
	Since     time.Time
	Sent      uint64 // messages written
	Received  uint64 // messages delivered to Recv
	Dropped   uint64 // messages dropped (queue full, not connected, too large)
	Queued    int
	// Version and [ProtoMin, ProtoMax] are from the peer's last hello
	// (ProtoMax 0: a build before negotiation, protocol 1; version.go).
	Version            string
	ProtoMin, ProtoMax uint16
}

// PeerEvent reports a peer connecting (Up) or going away.
type PeerEvent struct {
	Peer PeerInfo
	Up   bool
}

// Transport is one node's MBP endpoint: a listener, persistent dialers, one
// authenticated control connection per peer pair, and snapshot streams.
// Every goroutine it starts stops in Close.
type Transport struct {
	cfg     Config
	log     *slog.Logger
	zc      *Compressor
	limiter *rate.Limiter
	tls     atomic.Pointer[tls.Config] // nil without cluster.tls; SetTLS replaces it
	tlsErr  error                      // loading cluster.tls failed
	// tlsSum fingerprints the cluster.tls files last loaded (SetTLS,
	// which tlsMu serialises).
	tlsMu  sync.Mutex
	tlsSum [3][32]byte
	// secrets are the cluster secrets in force (SetSecrets).
	secrets atomic.Pointer[secretSet]
	recv    chan core.Message
	events  chan PeerEvent
	hints   chan Hint

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.RWMutex
	closed  bool
	ln      net.Listener
	addr    string
	peers   map[core.NodeID]*peer
	dials   map[string]bool
	pending map[net.Conn]struct{} // conns not owned by a peer: handshakes, snapshots
	// authed maps an authenticated connection not owned by a peer (a
	// snapshot stream) to the secret it was authenticated with.
	authed map[net.Conn][]byte
	snaps  map[string]*progress

	dropped       atomic.Uint64 // sends to unknown or disconnected peers
	droppedEvents atomic.Uint64
	clusterLog    clusterLog
}

type peer struct {
	id    core.NodeID
	q     *queue
	hello Hello         // guarded by Transport.mu
	conn  *conn         // guarded by Transport.mu; nil when disconnected
	down  chan struct{} // closed when the peer disconnects
	since time.Time
	// probing: a crash-hint redial of this peer is under way (guarded by
	// Transport.mu): a peer that flaps gets one probe at a time.
	probing bool

	sent, received, dropped atomic.Uint64
}

type conn struct {
	nc     net.Conn
	p      *peer
	dialed bool         // this node dialed it
	dialer core.NodeID  // who dialed it
	secret []byte       // the cluster secret it was authenticated with
	since  time.Time    // when it was attached
	heard  atomic.Int64 // unix nanoseconds of the last frame read
	done   chan struct{}
	once   sync.Once
}

// live reports whether c has been up for at least window and delivered a
// frame within it: a peer that lost this connection (a crash, a reboot, a
// partition) cannot have sent on it since.
func (c *conn) live(now time.Time, window time.Duration) bool {
	if now.Sub(c.since) < window {
		return false
	}
	return now.Sub(time.Unix(0, c.heard.Load())) < window
}

// close closes the TCP connection under any TLS at once (no close_notify,
// which could block: it is called with Transport.mu held).
func (c *conn) close() {
	c.once.Do(func() {
		close(c.done)
		_ = rawConn(c.nc).Close()
	})
}

// New returns a Transport; call Listen and Connect to start it.
func New(cfg Config) *Transport {
	cfg = cfg.withDefaults()
	zc, err := NewCompressor(cfg.MaxFrame)
	if err != nil {
		panic(fmt.Sprintf("mbp: zstd: %v", err)) // only bad static options
	}
	ctx, cancel := context.WithCancel(context.Background())
	lim := rate.NewLimiter(rate.Inf, cfg.SnapshotChunk)
	if cfg.SnapshotRateMB > 0 {
		lim = rate.NewLimiter(rate.Limit(float64(cfg.SnapshotRateMB)*1e6), cfg.SnapshotChunk)
	}
	t := &Transport{
		cfg: cfg, log: cfg.Logger.With("component", "mbp", "node", string(cfg.ID)), zc: zc, limiter: lim,
		recv: make(chan core.Message, cfg.RecvLen), events: make(chan PeerEvent, 256), hints: make(chan Hint, hintBacklog),
		ctx: ctx, cancel: cancel,
		peers: map[core.NodeID]*peer{}, dials: map[string]bool{}, pending: map[net.Conn]struct{}{},
		authed: map[net.Conn][]byte{}, snaps: map[string]*progress{},
	}
	t.secrets.Store(newSecretSet(cfg.Secret, cfg.SecretPrevious))
	if cfg.TLS != nil {
		var tc *tls.Config
		tc, t.tlsErr = LoadTLS(*cfg.TLS)
		t.tls.Store(tc)
		t.tlsSum = tlsFingerprint(*cfg.TLS)
	}
	return t
}

// errConfig checks what every connection needs.
func (t *Transport) errConfig() error {
	if t.tlsErr != nil {
		return t.tlsErr
	}
	if err := ident.CheckNodeID(string(t.cfg.ID)); err != nil {
		return fmt.Errorf("mbp: node id %q: %v: set cluster.node_id to %s", t.cfg.ID, err, ident.NodeIDRule)
	}
	if err := checkSecrets(t.secrets.Load()); err != nil {
		return err
	}
	if len(t.cfg.APIAddr) > MaxAddrLen || len(t.cfg.AdvertiseAddr) > MaxAddrLen {
		return fmt.Errorf("mbp: advertised address over %d bytes", MaxAddrLen)
	}
	return nil
}

// checkSecrets checks the secrets every handshake needs.
func checkSecrets(ss *secretSet) error {
	if len(ss.cur) == 0 {
		return errors.New("mbp: cluster_secret is empty: set cluster.cluster_secret (or MUNINN_CLUSTER_SECRET), the same on every node; generate one with: openssl rand -hex 32")
	}
	if len(ss.cur) < MinSecretLen {
		return fmt.Errorf("mbp: cluster_secret is too short (%d bytes): set cluster.cluster_secret (or MUNINN_CLUSTER_SECRET) to at least %d bytes, the same on every node; generate one with: openssl rand -hex 32", len(ss.cur), MinSecretLen)
	}
	if len(ss.prev) > 0 && len(ss.prev) < MinSecretLen {
		return fmt.Errorf("mbp: cluster_secret_previous is too short (%d bytes): set cluster.cluster_secret_previous (or MUNINN_CLUSTER_SECRET_PREVIOUS) to the secret being retired, at least %d bytes, or remove it", len(ss.prev), MinSecretLen)
	}
	return nil
}

// Listen binds ListenAddr and accepts peers in the background.
func (t *Transport) Listen() error {
	if err := t.errConfig(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", t.cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("mbp: listen on %s (cluster.bind_addr): %w", t.cfg.ListenAddr, err)
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		ln.Close()
		return net.ErrClosed
	}
	t.ln = ln
	t.addr = t.cfg.AdvertiseAddr
	if t.addr == "" {
		t.addr = ln.Addr().String()
	}
	t.wg.Add(1)
	t.mu.Unlock()
	t.log.Info("mbp listening", "addr", ln.Addr().String(), "tls", t.tls.Load() != nil)
	go t.acceptLoop(ln)
	return nil
}

// Addr is the listener's address ("" before Listen).
func (t *Transport) Addr() string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.ln == nil {
		return ""
	}
	return t.ln.Addr().String()
}

func (t *Transport) hello(p Purpose) HandshakeConfig {
	t.mu.RLock()
	addr := t.addr
	t.mu.RUnlock()
	var cid uint64
	if t.cfg.ClusterID != nil {
		cid = t.cfg.ClusterID()
	}
	ss := t.secrets.Load()
	return HandshakeConfig{Secret: ss.cur, Previous: ss.prev, Local: Hello{ID: t.cfg.ID, Kind: t.cfg.Kind, APIAddr: t.cfg.APIAddr, MBPAddr: addr, Purpose: p, ClusterID: cid,
		Version: t.cfg.BinaryVersion, ProtoMin: t.cfg.ProtoMin, ProtoMax: t.cfg.ProtoMax},
		AdoptCluster: t.cfg.AdoptClusterID}
}

// track registers a connection not yet owned by a peer so Close can end it.
// A TLS connection is tracked as its TCP connection (rawConn).
func (t *Transport) track(nc net.Conn) bool {
	nc = rawConn(nc)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		nc.Close()
		return false
	}
	t.pending[nc] = struct{}{}
	return true
}

func (t *Transport) untrack(nc net.Conn) {
	t.mu.Lock()
	delete(t.pending, rawConn(nc))
	delete(t.authed, rawConn(nc))
	t.mu.Unlock()
}

// authenticated records the secret a tracked connection was authenticated
// with, so SetSecrets can close it when that secret is retired. It fails
// when the secret was retired during the handshake.
func (t *Transport) authenticated(nc net.Conn, secret []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.secrets.Load().accepts(secret) {
		return errRetired
	}
	if _, ok := t.pending[rawConn(nc)]; ok {
		t.authed[rawConn(nc)] = secret
	}
	return nil
}

func (t *Transport) acceptLoop(ln net.Listener) {
	defer t.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if t.ctx.Err() != nil {
				return
			}
			t.log.Warn("mbp accept failed", "err", err)
			select {
			case <-time.After(50 * time.Millisecond):
			case <-t.ctx.Done():
				return
			}
			continue
		}
		if !t.track(nc) {
			continue
		}
		t.wg.Add(1)
		go t.serve(nc)
	}
}

// serve authenticates an inbound connection and hands it on.
func (t *Transport) serve(nc net.Conn) {
	defer t.wg.Done()
	remote := nc.RemoteAddr().String()
	_ = nc.SetDeadline(time.Now().Add(t.cfg.HandshakeTimeout))
	nc, err := t.secure(t.ctx, nc, true)
	var (
		h      Hello
		secret []byte
	)
	if err == nil {
		h, secret, err = acceptHandshake(nc, t.hello(0))
	}
	if err == nil {
		err = t.authenticated(nc, secret)
	}
	_ = nc.SetDeadline(time.Time{})
	if err != nil {
		t.logRefusal(remote, err)
		lingerClose(nc, err)
		t.untrack(nc)
		return
	}
	switch h.Purpose {
	case PurposeControl:
		t.untrack(nc)
		t.attach(nc, h, false, secret)
	case PurposeSnapshot:
		t.serveSnapshot(nc, h)
		t.untrack(nc)
		nc.Close()
	}
}

func (t *Transport) logRefusal(remote string, err error) {
	var ce *ClusterError
	switch {
	case t.ctx.Err() != nil:
	case errors.Is(err, io.EOF):
		// Closed before its first byte: a port probe, such as a peer's
		// crash-hint redial (hint.go) or a load balancer's check.
		t.log.Debug("mbp connection closed before its handshake", "remote", remote)
	case errors.Is(err, ErrTLS):
		t.log.Warn("mbp connection refused: TLS failed, check cluster.tls (cert, key, ca) on both nodes", "remote", remote, "err", err)
	case t.tls.Load() == nil && looksLikeTLS(err):
		t.log.Warn("mbp connection refused: the peer speaks TLS but cluster.tls is not set on this node; set it on every node or on none", "remote", remote, "err", err)
	case errors.Is(err, ErrAuth):
		t.log.Warn("mbp connection refused: authentication failed, check cluster_secret on both nodes", "remote", remote, "err", err)
	case errors.As(err, &ce):
		t.logCluster(remote, ce, err)
	case errors.Is(err, ErrProtocol):
		t.logProtocol(remote, err)
	default:
		t.log.Warn("mbp connection refused", "remote", remote, "err", err)
	}
}

// Connect keeps a connection to addr (a seed or peer) for as long as the
// Transport is open, redialing with capped jittered exponential backoff.
// Calling it again for the same address does nothing.
func (t *Transport) Connect(addr string) error {
	if err := t.errConfig(); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return net.ErrClosed
	}
	if t.dials[addr] {
		return nil
	}
	t.dials[addr] = true
	t.wg.Add(1)
	go t.dialLoop(addr)
	return nil
}

func (t *Transport) sleep(d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-t.ctx.Done():
		return false
	}
}

// dial opens and authenticates one connection to addr.
func (t *Transport) dial(ctx context.Context, addr string, p Purpose) (net.Conn, Hello, error) {
	nc, h, _, err := t.dialAuth(ctx, addr, p)
	return nc, h, err
}

// dialAuth is dial, also returning the secret the connection was
// authenticated with.
func (t *Transport) dialAuth(ctx context.Context, addr string, p Purpose) (net.Conn, Hello, []byte, error) {
	d := net.Dialer{Timeout: t.cfg.DialTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, Hello{}, nil, err
	}
	if !t.track(nc) {
		return nil, Hello{}, nil, net.ErrClosed
	}
	_ = nc.SetDeadline(time.Now().Add(t.cfg.HandshakeTimeout))
	nc, err = t.secure(ctx, nc, false)
	var (
		h      Hello
		secret []byte
	)
	if err == nil {
		h, secret, err = dialHandshake(nc, t.hello(p))
		if err != nil && t.tls.Load() != nil {
			err = refusedAfterTLS(err)
		}
	}
	if err == nil {
		err = t.authenticated(nc, secret)
	}
	_ = nc.SetDeadline(time.Time{})
	if err != nil {
		t.untrack(nc)
		nc.Close()
		return nil, Hello{}, nil, err
	}
	return nc, h, secret, nil
}

func (t *Transport) dialLoop(addr string) {
	defer t.wg.Done()
	// Not retry.Do: this loop never ends while the Transport is open, and
	// a connection that lasted starts the delays again.
	b := retry.Redial(t.cfg.BackoffMin, t.cfg.BackoffMax).BackOff()
	var known core.NodeID
	failures := 0
	for {
		if known != "" {
			// Someone else's connection to this peer is up (it dialed us
			// and won): wait for it to go before dialing.
			if down := t.downChan(known); down != nil {
				select {
				case <-down:
				case <-t.ctx.Done():
					return
				}
			}
		}
		if t.ctx.Err() != nil {
			return
		}
		nc, h, secret, err := t.dialAuth(t.ctx, addr, PurposeControl)
		if err != nil {
			if t.ctx.Err() != nil {
				return
			}
			failures++
			wait := b.NextBackOff()
			if errors.Is(err, ErrAuth) || errors.Is(err, ErrCluster) || errors.Is(err, ErrProtocol) || failures == 1 || failures%20 == 0 {
				t.logRefusal(addr, fmt.Errorf("dial %s (attempt %d, retrying in %v): %w", addr, failures, wait.Round(time.Millisecond), err))
			}
			if !t.sleep(wait) {
				return
			}
			continue
		}
		t.untrack(nc)
		known = h.ID
		c := t.attach(nc, h, true, secret)
		if c == nil {
			continue
		}
		failures = 0
		start := time.Now()
		select {
		case <-c.done:
		case <-t.ctx.Done():
			return
		}
		if time.Since(start) > t.cfg.BackoffMax {
			b.Reset()
		}
		if !t.sleep(b.NextBackOff()) {
			return
		}
	}
}

func (t *Transport) downChan(id core.NodeID) chan struct{} {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if p := t.peers[id]; p != nil && p.conn != nil {
		return p.down
	}
	return nil
}

// prefer reports whether connection a (dialed by da) should replace b
// (dialed by db) between this node and peer. Both ends decide alike: the
// connection dialed by the lower node id wins; between two dialed by the
// same node, the newer (the older is likely dead) wins.
func (t *Transport) prefer(peer, da, db core.NodeID) bool {
	lower := min(t.cfg.ID, peer)
	if (da == lower) != (db == lower) {
		return da == lower
	}
	return true
}

// attach makes nc the peer's control connection, or closes it if the
// peer's current one wins. It returns nil when nc was closed.
//
// A second authenticated connection claiming a connected peer's id is
// either a crossing dial (both nodes dialed at once: the current one is
// younger than LivenessWindow, and prefer decides alike on both ends), a
// peer that lost its connection and dialed again (the current one has been
// silent for LivenessWindow: it is replaced), or an impostor holding the
// secret (the current one is live: the newcomer is refused, so it cannot
// take the real node's place). The last two are logged as warnings with
// both remote addresses.
func (t *Transport) attach(nc net.Conn, h Hello, dialed bool, secret []byte) *conn {
	dialer := h.ID
	if dialed {
		dialer = t.cfg.ID
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		nc.Close()
		return nil
	}
	if !t.secrets.Load().accepts(secret) {
		// Retired by SetSecrets during the handshake: its sweep could not
		// see this connection.
		t.mu.Unlock()
		nc.Close()
		t.log.Info("mbp connection closed: its cluster secret was retired while it authenticated", "peer", string(h.ID))
		return nil
	}
	p := t.peers[h.ID]
	if p == nil {
		p = &peer{id: h.ID, q: newQueue()}
		t.peers[h.ID] = p
	}
	now := time.Now()
	if old := p.conn; old != nil {
		attrs := []any{"peer", string(h.ID), "current_remote", old.nc.RemoteAddr().String(), "current_dialer", string(old.dialer),
			"new_remote", nc.RemoteAddr().String(), "new_dialer", string(dialer), "current_age", now.Sub(old.since).Round(time.Millisecond)}
		switch {
		case old.live(now, t.cfg.LivenessWindow):
			t.mu.Unlock()
			t.log.Warn("mbp refused a second connection claiming a connected peer's node id: the current connection is live (another process with this node id and cluster_secret?)", attrs...)
			refuseLate(nc, fmt.Sprintf("node id %s is already connected to %s over a live connection", h.ID, t.cfg.ID))
			return nil
		case now.Sub(old.since) < t.cfg.LivenessWindow:
			// Crossing dials: both ends keep the same one (prefer).
			if !t.prefer(h.ID, dialer, old.dialer) {
				t.mu.Unlock()
				nc.Close()
				t.log.Info("mbp duplicate connection closed (crossing dials)", attrs...)
				return nil
			}
			t.log.Info("mbp duplicate connection replaces a newer one (crossing dials)", attrs...)
		default:
			t.log.Warn("mbp a second connection claims a connected peer's node id; the current connection has been silent, so it is replaced (the peer restarted or lost it)", attrs...)
		}
		old.close() // its reader sees p.conn != old and leaves the peer up
	}
	c := &conn{nc: nc, p: p, dialed: dialed, dialer: dialer, secret: secret, since: now, done: make(chan struct{})}
	c.heard.Store(now.UnixNano())
	up := p.conn == nil
	p.conn, p.hello = c, h
	if up {
		p.down = make(chan struct{})
		p.since = time.Now()
		t.emit(PeerEvent{Peer: t.infoLocked(p), Up: true})
	}
	t.wg.Add(2)
	t.mu.Unlock()
	if up {
		t.log.Info("mbp peer connected", "peer", string(h.ID), "kind", h.Kind.String(), "remote", nc.RemoteAddr().String(), "dialed", dialed)
	}
	go t.readLoop(c)
	go t.writeLoop(c)
	return c
}

// secretSet is the cluster secrets a Transport accepts: cur, which it
// proves with first, and prev (cluster_secret_previous) during a rotation.
type secretSet struct{ cur, prev []byte }

func newSecretSet(cur, prev []byte) *secretSet {
	ss := &secretSet{cur: bytes.Clone(cur)}
	if len(prev) > 0 && !bytes.Equal(prev, cur) {
		ss.prev = bytes.Clone(prev)
	}
	return ss
}

// accepts reports whether a connection authenticated with secret may stay.
func (ss *secretSet) accepts(secret []byte) bool {
	return bytes.Equal(secret, ss.cur) || (len(ss.prev) > 0 && bytes.Equal(secret, ss.prev))
}

// errRetired: the secret a connection authenticated with was retired
// (SetSecrets) while it did.
var errRetired = errors.New("mbp: the cluster secret this connection authenticated with was retired during its handshake")

// Secrets returns the cluster secrets in force: cluster_secret and
// cluster_secret_previous (nil when none). Do not modify them.
func (t *Transport) Secrets() (current, previous []byte) {
	ss := t.secrets.Load()
	return ss.cur, ss.prev
}

// SetSecrets replaces the cluster secrets (a reload during a rotation;
// docs/clustering.md, "Rotating cluster_secret"): new handshakes prove
// with current and accept a peer proving current or previous, and every
// connection, control or snapshot, authenticated with a secret no longer
// accepted is closed at once (its dialer redials with a secret both ends
// hold). It returns how many connections it closed; on an invalid secret
// it changes nothing.
func (t *Transport) SetSecrets(current, previous []byte) (int, error) {
	ss := newSecretSet(current, previous)
	if err := checkSecrets(ss); err != nil {
		return 0, err
	}
	var retired []*conn
	t.mu.Lock()
	// Stored under mu: attach and authenticated check the set under mu,
	// so a handshake that ends after this sweep sees the new set.
	t.secrets.Store(ss)
	for _, p := range t.peers {
		if c := p.conn; c != nil && !ss.accepts(c.secret) {
			retired = append(retired, c)
			c.close()
		}
	}
	streams := 0
	for nc, secret := range t.authed {
		if !ss.accepts(secret) {
			delete(t.authed, nc)
			_ = nc.Close()
			streams++
		}
	}
	t.mu.Unlock()
	for _, c := range retired {
		t.log.Warn("mbp closed a connection authenticated with a retired cluster secret; the peer reconnects with the current one", "peer", string(c.p.id), "remote", c.nc.RemoteAddr().String())
	}
	if streams > 0 {
		t.log.Warn("mbp closed snapshot streams authenticated with a retired cluster secret; they resume with the current one", "streams", streams)
	}
	return len(retired) + streams, nil
}

// refuseLate tells an authenticated peer why its connection is closed
// (best effort, bounded) and closes it.
func refuseLate(nc net.Conn, reason string) {
	_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
	_ = WriteFrame(nc, FrameRefuse, 0, []byte(reason))
	nc.Close()
}

// detach forgets c; the peer is down unless another connection replaced it.
// A connection the peer closed or reset may be a crash: probeCrash redials
// at once to tell (rule 18). One replaced by another (attach), or closed
// by us (Close, a write deadline), is not.
func (t *Transport) detach(c *conn, err error) {
	c.close()
	t.mu.Lock()
	p := c.p
	if p.conn != c {
		t.mu.Unlock()
		return
	}
	p.conn = nil
	close(p.down)
	p.q.reset()
	t.emit(PeerEvent{Peer: t.infoLocked(p), Up: false})
	closing := t.closed
	probe := ""
	if !closing && !p.probing && closedByPeer(err) {
		if probe = hintAddr(p.hello.MBPAddr, c.nc.RemoteAddr()); probe != "" {
			p.probing = true
			t.wg.Add(1)
		}
	}
	t.mu.Unlock()
	if !closing {
		t.log.Info("mbp peer disconnected", "peer", string(p.id), "err", err)
	}
	if probe != "" {
		go t.probeCrash(p, probe, err)
	}
}

// emit queues an event; a consumer that falls 256 events behind loses some.
func (t *Transport) emit(e PeerEvent) {
	select {
	case t.events <- e:
	default:
		t.droppedEvents.Add(1)
	}
}

func (t *Transport) readLoop(c *conn) {
	defer t.wg.Done()
	err := t.read(c)
	t.detach(c, err)
}

func (t *Transport) read(c *conn) error {
	br := bufio.NewReaderSize(c.nc, 64<<10)
	id := c.p.id
	for {
		f, err := ReadFrame(br, t.cfg.MaxFrame)
		if err != nil {
			if errors.Is(err, ErrVersion) || errors.Is(err, ErrType) || errors.Is(err, ErrFlags) || errors.Is(err, ErrTooLarge) {
				t.log.Warn("mbp closing connection: bad frame from peer", "peer", string(id), "err", err)
			}
			return err
		}
		c.heard.Store(time.Now().UnixNano())
		if f.Type == FrameRefuse {
			err := fmt.Errorf("refused by peer: %q", f.Payload)
			t.log.Warn("mbp connection refused by the peer after authentication", "peer", string(id), "err", err)
			return err
		}
		if f.Type != FrameMessage {
			err := fmt.Errorf("unexpected %s frame on a control connection", f.Type)
			t.log.Warn("mbp closing connection", "peer", string(id), "err", err)
			return err
		}
		payload := f.Payload
		if f.Flags&FlagZstd != 0 {
			if payload, err = t.zc.Decompress(payload); err != nil {
				t.log.Warn("mbp closing connection: bad compressed frame", "peer", string(id), "err", err)
				return err
			}
		}
		m, err := DecodeMessage(payload)
		if err != nil {
			t.log.Warn("mbp closing connection: bad message", "peer", string(id), "err", err)
			return err
		}
		if m.From != id {
			err := fmt.Errorf("message claims to be from %q", m.From)
			t.log.Warn("mbp closing connection: spoofed sender", "peer", string(id), "err", err)
			return err
		}
		select {
		case t.recv <- m:
			c.p.received.Add(1)
		case <-c.done:
			return net.ErrClosed
		}
	}
}

func (t *Transport) writeLoop(c *conn) {
	defer t.wg.Done()
	err := t.write(c)
	if err != nil {
		t.detach(c, err)
	}
}

// write drains the peer's queue, priority lane first, one frame per
// message. Frames coalesce in a bufio.Writer flushed when the queue is
// empty, so a burst costs few syscalls and an idle link sends at once.
func (t *Transport) write(c *conn) error {
	bw := bufio.NewWriterSize(c.nc, 64<<10)
	q := c.p.q
	var buf []byte
	for {
		m, ok := q.pop()
		if !ok {
			if bw.Buffered() > 0 {
				_ = c.nc.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout))
				if err := bw.Flush(); err != nil {
					return err
				}
			}
			select {
			case <-q.notify:
				continue
			case <-c.done:
				return nil
			}
		}
		buf = AppendMessage(buf[:0], m)
		payload, flags := buf, Flags(0)
		if z, ok := t.zc.Compress(buf); ok {
			payload, flags = z, FlagZstd
		}
		if len(payload) > t.cfg.MaxFrame || len(m.Entries) > MaxEntries {
			c.p.dropped.Add(1)
			t.log.Error("mbp message too large to send, dropped", "peer", string(c.p.id), "type", m.Type.String(), "bytes", len(payload), "entries", len(m.Entries), "limit", t.cfg.MaxFrame)
			continue
		}
		_ = c.nc.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout))
		if err := WriteFrame(bw, FrameMessage, flags, payload); err != nil {
			return err
		}
		c.p.sent.Add(1)
		if cap(buf) > 4<<20 {
			buf = nil // don't pin a huge buffer after one large append
		}
	}
}

// Send queues m for peer to without blocking. It returns false, counting a
// drop, when the peer is not connected or its queue is full: the protocol
// retransmits. From and To default to this node and to.
func (t *Transport) Send(to core.NodeID, m core.Message) bool {
	if m.From == "" {
		m.From = t.cfg.ID
	}
	if m.To == "" {
		m.To = to
	}
	t.mu.RLock()
	p := t.peers[to]
	up := p != nil && p.conn != nil
	t.mu.RUnlock()
	if !up {
		t.dropped.Add(1)
		if p != nil {
			p.dropped.Add(1)
		}
		return false
	}
	if !p.q.push(m, t.cfg.QueueLen, t.cfg.QueueBytes) {
		p.dropped.Add(1)
		return false
	}
	return true
}

// Recv delivers messages from authenticated peers. It is closed by Close.
// A slow consumer applies backpressure to the peers (TCP flow control).
func (t *Transport) Recv() <-chan core.Message { return t.recv }

// Events delivers peer connected/disconnected events; it is closed by Close.
// Events beyond a 256-event backlog are dropped (Peers is the truth).
func (t *Transport) Events() <-chan PeerEvent { return t.events }

// Dropped counts sends to unknown or disconnected peers.
func (t *Transport) Dropped() uint64 { return t.dropped.Load() }

func (t *Transport) infoLocked(p *peer) PeerInfo {
	n, _ := p.q.queued()
	pi := PeerInfo{ID: p.id, Kind: p.hello.Kind, APIAddr: p.hello.APIAddr, MBPAddr: p.hello.MBPAddr,
		Connected: p.conn != nil, Since: p.since, Sent: p.sent.Load(), Received: p.received.Load(),
		Dropped: p.dropped.Load(), Queued: n, Version: p.hello.Version, ProtoMin: p.hello.ProtoMin, ProtoMax: p.hello.ProtoMax}
	if p.conn != nil {
		pi.Addr = p.conn.nc.RemoteAddr().String()
		pi.Dialed = p.conn.dialed
	}
	return pi
}

// Peers lists every peer ever authenticated, sorted by id.
func (t *Transport) Peers() []PeerInfo {
	t.mu.RLock()
	out := make([]PeerInfo, 0, len(t.peers))
	for _, p := range t.peers {
		out = append(out, t.infoLocked(p))
	}
	t.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Close stops the listener, dialers, connections and snapshot streams and
// waits for every goroutine the Transport started. Recv and Events are
// closed when it returns.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.cancel()
	if t.ln != nil {
		t.ln.Close()
	}
	for _, p := range t.peers {
		if p.conn != nil {
			p.conn.close()
		}
	}
	for nc := range t.pending {
		nc.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
	t.zc.Close()
	close(t.recv)
	close(t.events)
	close(t.hints)
	return nil
}

var _ io.Closer = (*Transport)(nil)
