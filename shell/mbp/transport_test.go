package mbp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
)

// logBuf is a goroutine-safe log sink.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// leakCheck fails the test if goroutines started during it outlive it.
func leakCheck(t *testing.T) {
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for runtime.NumGoroutine() > base {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Fatalf("goroutine leak: %d > %d\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func newTestTransport(t *testing.T, id core.NodeID, secret string, mod ...func(*Config)) (*Transport, *logBuf) {
	t.Helper()
	lb := &logBuf{}
	cfg := Config{
		ID: id, Kind: core.KindAuto, Secret: []byte(secret), ListenAddr: "127.0.0.1:0",
		APIAddr: "api-" + string(id), Logger: slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})),
		BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond, HandshakeTimeout: time.Second,
	}
	for _, f := range mod {
		f(&cfg)
	}
	tr := New(cfg)
	if err := tr.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr, lb
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func connected(tr *Transport, id core.NodeID) bool {
	for _, p := range tr.Peers() {
		if p.ID == id && p.Connected {
			return true
		}
	}
	return false
}

func recvOne(t *testing.T, tr *Transport) core.Message {
	t.Helper()
	select {
	case m := <-tr.Recv():
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
	}
	return core.Message{}
}

func TestTransportExchange(t *testing.T) {
	leakCheck(t)
	a, _ := newTestTransport(t, "node-a", testSecret)
	b, _ := newTestTransport(t, "node-b", testSecret, func(c *Config) { c.Kind = core.KindSentinel })
	if err := a.Connect(b.Addr()); err != nil {
		t.Fatal(err)
	}
	for _, tr := range []*Transport{a, b} {
		select {
		case e := <-tr.Events():
			if !e.Up {
				t.Fatalf("first event %+v", e)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no connected event")
		}
	}
	waitFor(t, "both connected", func() bool { return connected(a, "node-b") && connected(b, "node-a") })
	pa := a.Peers()[0]
	if pa.Kind != core.KindSentinel || pa.APIAddr != "api-node-b" || pa.MBPAddr != b.Addr() || !pa.Dialed {
		t.Fatalf("a sees %+v", pa)
	}

	if !a.Send("node-b", core.Message{Type: core.MsgHeartbeat, Epoch: 3, SentAt: 42}) {
		t.Fatal("send refused")
	}
	m := recvOne(t, b)
	if m.From != "node-a" || m.To != "node-b" || m.Epoch != 3 || m.SentAt != 42 {
		t.Fatalf("got %v", m)
	}

	// A large, compressible append crosses compressed and arrives intact.
	app := core.Message{Type: core.MsgAppend, Prev: core.Pos{Epoch: 1, Seq: 9}}
	for i := 0; i < 1000; i++ {
		app.Entries = append(app.Entries, core.Entry{Pos: core.Pos{Epoch: 1, Seq: core.Seq(10 + i)},
			Payload: []byte(fmt.Sprintf(`{"vault":"default","concept":"engram %d"}`, i))})
	}
	b.Send("node-a", app)
	got := recvOne(t, a)
	if len(got.Entries) != 1000 || string(got.Entries[999].Payload) != string(app.Entries[999].Payload) {
		t.Fatalf("append arrived as %v", got)
	}
	if b.Send("node-zz", app) || b.Dropped() != 1 {
		t.Fatal("send to an unknown peer not dropped")
	}
}

// A wrong secret is refused on both ends, logged, and never logged in clear.
func TestTransportWrongSecret(t *testing.T) {
	leakCheck(t)
	a, la := newTestTransport(t, "node-a", "secret-of-a-0123456789")
	b, lb := newTestTransport(t, "node-b", "secret-of-b-0123456789")
	_ = a.Connect(b.Addr())
	waitFor(t, "refusals logged", func() bool {
		return strings.Contains(la.String(), "authentication failed") && strings.Contains(lb.String(), "authentication failed")
	})
	time.Sleep(50 * time.Millisecond)
	if len(a.Peers()) != 0 || len(b.Peers()) != 0 {
		t.Fatalf("peers after refusal: %v / %v", a.Peers(), b.Peers())
	}
	for _, l := range []string{la.String(), lb.String()} {
		if strings.Contains(l, "secret-of-") {
			t.Fatalf("log leaks a secret:\n%s", l)
		}
	}
}

// A peer that goes away is redialed until it comes back.
func TestTransportReconnect(t *testing.T) {
	leakCheck(t)
	a, _ := newTestTransport(t, "node-a", testSecret)
	b, _ := newTestTransport(t, "node-b", testSecret)
	addr := b.Addr()
	_ = a.Connect(addr)
	waitFor(t, "connected", func() bool { return connected(a, "node-b") })
	b.Close()
	waitFor(t, "disconnected", func() bool { return !connected(a, "node-b") })
	if a.Send("node-b", core.Message{Type: core.MsgHeartbeat}) {
		t.Fatal("send to a disconnected peer accepted")
	}
	b2, _ := newTestTransport(t, "node-b", testSecret, func(c *Config) { c.ListenAddr = addr })
	waitFor(t, "reconnected", func() bool { return connected(a, "node-b") })
	a.Send("node-b", core.Message{Type: core.MsgVote, Epoch: 7})
	if m := recvOne(t, b2); m.Epoch != 7 {
		t.Fatalf("got %v", m)
	}
	var ups, downs int
	for len(a.Events()) > 0 {
		if e := <-a.Events(); e.Up {
			ups++
		} else {
			downs++
		}
	}
	if ups != 2 || downs != 1 {
		t.Fatalf("events: %d up, %d down", ups, downs)
	}
}

// When both dial, both keep the connection dialed by the lower id.
func TestTransportBothDial(t *testing.T) {
	leakCheck(t)
	a, _ := newTestTransport(t, "node-a", testSecret)
	b, _ := newTestTransport(t, "node-b", testSecret)
	_ = a.Connect(b.Addr())
	_ = b.Connect(a.Addr())
	stable := func() bool {
		pa, pb := a.Peers(), b.Peers()
		return len(pa) == 1 && len(pb) == 1 && pa[0].Connected && pb[0].Connected && pa[0].Dialed && !pb[0].Dialed
	}
	waitFor(t, "one connection dialed by node-a", stable)
	time.Sleep(300 * time.Millisecond)
	if !stable() {
		t.Fatalf("not stable: %+v / %+v", a.Peers(), b.Peers())
	}
	a.Send("node-b", core.Message{Type: core.MsgHeartbeat, Epoch: 1})
	b.Send("node-a", core.Message{Type: core.MsgHeartbeatResp, Epoch: 2})
	if recvOne(t, b).Epoch != 1 || recvOne(t, a).Epoch != 2 {
		t.Fatal("wrong messages")
	}
}

// rawAuthed opens an authenticated control connection to tr by hand.
func rawAuthed(t *testing.T, tr *Transport, id core.NodeID) net.Conn {
	nc, err := net.Dial("tcp", tr.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := DialHandshake(nc, hsConfig(id, testSecret)); err != nil {
		t.Fatal(err)
	}
	return nc
}

func expectClosed(t *testing.T, nc net.Conn) {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, nc); err != nil {
		var ne net.Error
		if errorsAs(err, &ne) && ne.Timeout() {
			t.Fatal("connection not closed")
		}
	}
}

// Unknown versions and types, and spoofed senders, close the connection
// with a log line naming the value.
func TestTransportBadFrames(t *testing.T) {
	leakCheck(t)
	b, lb := newTestTransport(t, "node-b", testSecret)
	cases := []struct {
		name, log string
		send      func(nc net.Conn)
	}{
		{"unknown version", "unknown protocol version 9", func(nc net.Conn) { nc.Write([]byte{9, 0x10, 0, 0, 0, 0, 0}) }},
		{"unknown type", "unknown frame type 0x66", func(nc net.Conn) { nc.Write([]byte{Version, 0x66, 0, 0, 0, 0, 0}) }},
		{"handshake frame", "unexpected hello frame", func(nc net.Conn) { WriteFrame(nc, FrameHello, 0, nil) }},
		{"bad message", "unknown message type 200", func(nc net.Conn) { WriteFrame(nc, FrameMessage, 0, []byte{200}) }},
		{"spoofed", "spoofed sender", func(nc net.Conn) {
			WriteFrame(nc, FrameMessage, 0, EncodeMessage(core.Message{Type: core.MsgVote, From: "node-c"}))
		}},
		{"zip bomb", "bad compressed frame", func(nc net.Conn) { WriteFrame(nc, FrameMessage, FlagZstd, []byte("junk")) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			nc := rawAuthed(t, b, "node-x")
			c.send(nc)
			expectClosed(t, nc)
			waitFor(t, "log line", func() bool { return strings.Contains(lb.String(), c.log) })
			waitFor(t, "peer down", func() bool { return !connected(b, "node-x") })
		})
	}
}

// A connection that never completes the handshake is closed at the deadline.
func TestTransportHandshakeDeadline(t *testing.T) {
	leakCheck(t)
	b, _ := newTestTransport(t, "node-b", testSecret, func(c *Config) { c.HandshakeTimeout = 100 * time.Millisecond })
	nc, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	start := time.Now()
	expectClosed(t, nc)
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("closed after %v", el)
	}
}

func TestQueueLanesAndLimits(t *testing.T) {
	q := newQueue()
	big := core.Message{Type: core.MsgAppend, Entries: []core.Entry{{Payload: make([]byte, 1000)}}}
	if !q.push(big, 10, 1500) || q.push(big, 10, 1500) {
		t.Fatal("byte cap not applied")
	}
	for i := 0; i < 3; i++ {
		if !q.push(core.Message{Type: core.MsgHeartbeat, Epoch: core.Epoch(i)}, 3, 1500) {
			t.Fatal("priority push refused")
		}
	}
	if q.push(core.Message{Type: core.MsgVote}, 3, 1500) {
		t.Fatal("priority lane cap not applied")
	}
	for i := 0; i < 3; i++ {
		if m, _ := q.pop(); m.Type != core.MsgHeartbeat || m.Epoch != core.Epoch(i) {
			t.Fatalf("pop %d: %v", i, m)
		}
	}
	if m, _ := q.pop(); m.Type != core.MsgAppend {
		t.Fatalf("got %v", m)
	}
	if _, b := q.queued(); b != 0 {
		t.Fatalf("bytes left %d", b)
	}
}

// Heartbeats overtake queued appends: the priority lane is written first.
func TestTransportPriority(t *testing.T) {
	leakCheck(t)
	a, _ := newTestTransport(t, "node-a", testSecret)
	b, _ := newTestTransport(t, "node-b", testSecret)
	_ = a.Connect(b.Addr())
	waitFor(t, "connected", func() bool { return connected(a, "node-b") })
	a.mu.RLock()
	p := a.peers["node-b"]
	a.mu.RUnlock()
	p.q.mu.Lock() // hold the writer while both lanes fill
	p.q.lo = append(p.q.lo, core.Message{Type: core.MsgAppend, From: "node-a", Epoch: 1}, core.Message{Type: core.MsgAppend, From: "node-a", Epoch: 2})
	p.q.hi = append(p.q.hi, core.Message{Type: core.MsgHeartbeat, From: "node-a", Epoch: 3})
	p.q.mu.Unlock()
	select {
	case p.q.notify <- struct{}{}:
	default:
	}
	if e := recvOne(t, b).Epoch; e != 3 {
		t.Fatalf("first delivered epoch %d, want the heartbeat", e)
	}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// testSecret is a cluster_secret long enough for a Transport.
const testSecret = "0123456789abcdef-mbp-test"

func peerAddr(tr *Transport, id core.NodeID) string {
	for _, p := range tr.Peers() {
		if p.ID == id && p.Connected {
			return p.Addr
		}
	}
	return ""
}

// A second authenticated connection claiming a connected peer's id (a
// secret holder impersonating a member) is refused while the current
// connection is live, and logged with both remote addresses; once the
// current one has been silent for the liveness window (the peer lost it:
// a crash, a reboot) a new connection replaces it, also with a warning.
func TestTransportImpostorRefused(t *testing.T) {
	leakCheck(t)
	const window = 300 * time.Millisecond
	a, alog := newTestTransport(t, "node-a", testSecret, func(c *Config) { c.LivenessWindow = window })
	orig := rawAuthed(t, a, "node-b")
	waitFor(t, "node-b attached", func() bool { return peerAddr(a, "node-b") == orig.LocalAddr().String() })

	// The real node-b heartbeats, as members do.
	var lastSent atomic.Int64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		for {
			_ = orig.SetWriteDeadline(time.Now().Add(time.Second))
			if WriteFrame(orig, FrameMessage, 0, EncodeMessage(core.Message{Type: core.MsgHeartbeat, From: "node-b", To: "node-a"})) != nil {
				return
			}
			lastSent.Store(time.Now().UnixNano())
			select {
			case <-stop:
				return
			case <-tk.C:
			}
		}
	}()
	go func() {
		for range a.Recv() {
		}
	}()
	since := time.Now()
	waitFor(t, "the connection to be established", func() bool { return time.Since(since) > window+50*time.Millisecond })

	imp := rawAuthed(t, a, "node-b")
	expectClosed(t, imp)
	waitFor(t, "the refusal logged", func() bool { return strings.Contains(alog.String(), "refused a second connection") })
	line := ""
	for _, l := range strings.Split(alog.String(), "\n") {
		if strings.Contains(l, "refused a second connection") {
			line = l
		}
	}
	for _, want := range []string{"peer=node-b", "current_remote=" + orig.LocalAddr().String(), "new_remote=" + imp.LocalAddr().String()} {
		if !strings.Contains(line, want) {
			t.Errorf("refusal log line lacks %q: %s", want, line)
		}
	}
	if got := peerAddr(a, "node-b"); got != orig.LocalAddr().String() {
		t.Fatalf("node-b is now reached at %s, want the original %s", got, orig.LocalAddr())
	}

	// node-b goes silent: a new connection from it is taken as a reconnect.
	close(stop)
	<-done
	waitFor(t, "the connection to be silent for the window", func() bool {
		return time.Since(time.Unix(0, lastSent.Load())) > window+50*time.Millisecond
	})
	again := rawAuthed(t, a, "node-b")
	waitFor(t, "the new connection attached", func() bool { return peerAddr(a, "node-b") == again.LocalAddr().String() })
	expectClosed(t, orig)
	if !strings.Contains(alog.String(), "has been silent, so it is replaced") {
		t.Fatalf("replacement not logged:\n%s", alog.String())
	}
	again.Close()
	waitFor(t, "node-b down", func() bool { return !connected(a, "node-b") })
}

// A Transport refuses a cluster_secret under MinSecretLen, naming the key,
// the variable and how to generate one, never the secret.
func TestTransportShortSecret(t *testing.T) {
	tr := New(Config{ID: "node-a", Secret: []byte("short-secret"), ListenAddr: "127.0.0.1:0"})
	defer tr.Close()
	err := tr.Listen()
	if err == nil {
		t.Fatal("a 12-byte secret was accepted")
	}
	for _, want := range []string{"cluster.cluster_secret", "MUNINN_CLUSTER_SECRET", "at least 16 bytes", "openssl rand -hex 32"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "short-secret") {
		t.Errorf("error shows the secret: %v", err)
	}
	bad := New(Config{ID: "../x", Secret: []byte(testSecret)})
	defer bad.Close()
	if err := bad.Connect("127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "cluster.node_id") {
		t.Errorf("node id ../x: %v", err)
	}
}
