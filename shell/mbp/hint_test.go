package mbp

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
)

// refusedAddr is a loopback address nothing listens on (a listener bound
// and closed): a dial there is refused, as at a crashed peer's port.
func refusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// rawPeer opens an authenticated control connection to tr as id,
// advertising mbpAddr as its listener.
func rawPeer(t *testing.T, tr *Transport, id core.NodeID, mbpAddr string) *net.TCPConn {
	t.Helper()
	nc, err := net.Dial("tcp", tr.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	hc := hsConfig(id, testSecret)
	hc.Local.MBPAddr = mbpAddr
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := DialHandshake(nc, hc); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Time{})
	waitFor(t, string(id)+" attached", func() bool { return peerAddr(tr, id) == nc.LocalAddr().String() })
	return nc.(*net.TCPConn)
}

func expectHint(t *testing.T, tr *Transport, peer core.NodeID, why ...string) {
	t.Helper()
	select {
	case h := <-tr.Hints():
		if h.Peer != peer {
			t.Fatalf("hint for %q, want %q", h.Peer, peer)
		}
		for _, w := range why {
			if !strings.Contains(h.Why, w) {
				t.Fatalf("hint %q does not say %q", h.Why, w)
			}
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no crash hint for %s", peer)
	}
}

func expectNoHint(t *testing.T, tr *Transport, within time.Duration) {
	t.Helper()
	select {
	case h := <-tr.Hints():
		t.Fatalf("unexpected crash hint %+v", h)
	case <-time.After(within):
	}
}

// A peer process that dies: its listener and its connections close. The
// connection ends (EOF), the redial is refused: a hint naming the peer.
func TestHintPeerCrashed(t *testing.T) {
	leakCheck(t)
	a, _ := newTestTransport(t, "node-a", testSecret)
	b, _ := newTestTransport(t, "node-b", testSecret)
	addr := b.Addr()
	_ = a.Connect(addr)
	waitFor(t, "connected", func() bool { return connected(a, "node-b") && connected(b, "node-a") })
	b.Close() // listener first, then the connection: as the kernel does
	expectHint(t, a, "node-b", "EOF", addr)
	// b closed its own connections: it reports nothing.
	if h, ok := <-b.Hints(); ok {
		t.Fatalf("the closing side reported %+v", h)
	}
}

// A reset (a process killed with unread input on its socket) with nothing
// listening is a hint too.
func TestHintPeerReset(t *testing.T) {
	leakCheck(t)
	a, _ := newTestTransport(t, "node-a", testSecret)
	dead := refusedAddr(t)
	nc := rawPeer(t, a, "node-b", dead)
	_ = nc.SetLinger(0) // close sends RST
	nc.Close()
	expectHint(t, a, "node-b", "reset", dead)
}

// A peer whose listener still accepts (a restarted process on the same
// port, or one that closed just this connection) is no crash: no hint,
// and the connection comes back.
func TestHintNotWhileListening(t *testing.T) {
	leakCheck(t)
	a, alog := newTestTransport(t, "node-a", testSecret)
	b, blog := newTestTransport(t, "node-b", testSecret)
	_ = a.Connect(b.Addr())
	waitFor(t, "connected", func() bool { return connected(a, "node-b") && connected(b, "node-a") })
	for i, reset := range []bool{false, true} {
		// b's end of the connection goes (FIN, then RST), its listener stays.
		b.mu.RLock()
		c := b.peers["node-a"].conn
		b.mu.RUnlock()
		if reset {
			_ = rawConn(c.nc).(*net.TCPConn).SetLinger(0)
		}
		c.close()
		waitFor(t, fmt.Sprintf("the probe (%d)", i), func() bool { return strings.Count(alog.String(), "its listener answers") == i+1 })
		waitFor(t, fmt.Sprintf("reconnected (%d)", i), func() bool { return connected(a, "node-b") && connected(b, "node-a") })
		expectNoHint(t, a, 300*time.Millisecond)
		expectNoHint(t, b, 0)
	}
	// The probe that found b listening is no warning on b.
	if strings.Contains(blog.String(), "level=WARN") {
		t.Fatalf("node-b warned:\n%s", blog.String())
	}
}

// A frozen peer (SIGSTOP) keeps its sockets open and says nothing: no
// hint, however long it lasts (here 2 heartbeats of 250 ms and more),
// while this side keeps sending to it.
func TestHintNotWhenSilent(t *testing.T) {
	leakCheck(t)
	a, _ := newTestTransport(t, "node-a", testSecret)
	rawPeer(t, a, "node-b", refusedAddr(t))
	stop := time.Now().Add(700 * time.Millisecond)
	for i := 0; i < 100 && time.Now().Before(stop); i++ {
		a.Send("node-b", core.Message{Type: core.MsgHeartbeat, Epoch: 1})
		expectNoHint(t, a, 10*time.Millisecond)
	}
	if !connected(a, "node-b") {
		t.Fatal("the silent peer was disconnected")
	}
}

// A connection replaced by a better one is closed by this side: no hint,
// even though the peer's advertised address refuses.
func TestHintNotForReplacedConnection(t *testing.T) {
	leakCheck(t)
	const window = 200 * time.Millisecond
	a, alog := newTestTransport(t, "node-a", testSecret, func(c *Config) { c.LivenessWindow = window })
	dead := refusedAddr(t)
	orig := rawPeer(t, a, "node-b", dead)
	time.Sleep(window + 50*time.Millisecond) // orig silent for the window
	again := rawPeer(t, a, "node-b", dead)
	expectClosed(t, orig)
	if !strings.Contains(alog.String(), "so it is replaced") {
		t.Fatalf("no replacement:\n%s", alog.String())
	}
	expectNoHint(t, a, 300*time.Millisecond)
	// The peer's close of the connection it keeps still is one.
	again.Close()
	expectHint(t, a, "node-b")
}

// Closing the Transport reports nothing and closes Hints.
func TestHintNotOnClose(t *testing.T) {
	leakCheck(t)
	a, _ := newTestTransport(t, "node-a", testSecret)
	rawPeer(t, a, "node-b", refusedAddr(t))
	a.Close()
	if h, ok := <-a.Hints(); ok {
		t.Fatalf("hint on close: %+v", h)
	}
}

func TestClosedByPeer(t *testing.T) {
	timeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{io.EOF, true},
		{fmt.Errorf("mbp: reading 9-byte message payload: %w", io.ErrUnexpectedEOF), true},
		{&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, true},
		{&net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.EPIPE)}, true},
		{nil, false},
		{net.ErrClosed, false},
		{&net.OpError{Op: "read", Net: "tcp", Err: net.ErrClosed}, false},
		{timeout, false},
		{&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ETIMEDOUT)}, false}, // keepalive gave up
		{errors.New("refused by peer"), false},
		{ErrType, false},
	} {
		if got := closedByPeer(c.err); got != c.want {
			t.Errorf("closedByPeer(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestHintAddr(t *testing.T) {
	remote := &net.TCPAddr{IP: net.ParseIP("10.0.0.7"), Port: 51234}
	for _, c := range []struct{ adv, want string }{
		{"10.0.0.7:8474", "10.0.0.7:8474"},
		{"db-2.example:8474", "db-2.example:8474"},
		{":8474", "10.0.0.7:8474"},
		{"0.0.0.0:9000", "10.0.0.7:9000"},
		{"[::]:9000", "10.0.0.7:9000"},
		{"", ""},
		{"nonsense", ""},
	} {
		if got := hintAddr(c.adv, remote); got != c.want {
			t.Errorf("hintAddr(%q) = %q, want %q", c.adv, got, c.want)
		}
	}
}

// closingListener accepts connections and resets each at once, saying
// nothing: what a probe meets in the listener of a process being killed
// (its accept queue is reset with it).
func closingListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for i := 0; i < 100; i++ {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			_ = nc.(*net.TCPConn).SetLinger(0)
			nc.Close()
		}
	}()
	return ln.Addr().String()
}

// A redial accepted by a listener that is going away, and reset before a
// word, counts as refused: the peer's kernel closed our connection before
// its listener. The reset may reach the dialer after its connect returned
// ("accepted and at once reset") or before the dial saw the connect
// complete ("reset (its listener was closing)"): both are the same hint.
func TestHintListenerClosing(t *testing.T) {
	leakCheck(t)
	a, _ := newTestTransport(t, "node-a", testSecret)
	dying := closingListener(t)
	nc := rawPeer(t, a, "node-b", dying)
	nc.Close()
	expectHint(t, a, "node-b", "EOF", dying, "reset", "its listener was closing")
}
