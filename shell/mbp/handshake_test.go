package mbp

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
)

// tcpPair returns both ends of one loopback TCP connection.
func tcpPair(t testing.TB) (dial, accept net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := <-ch
	if a == nil {
		t.Fatal("accept failed")
	}
	deadline := time.Now().Add(5 * time.Second)
	_ = d.SetDeadline(deadline)
	_ = a.SetDeadline(deadline)
	t.Cleanup(func() { d.Close(); a.Close() })
	return d, a
}

func hsConfig(id core.NodeID, secret string) HandshakeConfig {
	return HandshakeConfig{
		Local:  Hello{ID: id, Kind: core.KindAuto, APIAddr: string(id) + ":8475", MBPAddr: string(id) + ":8474", Purpose: PurposeControl},
		Secret: []byte(secret),
	}
}

type hsResult struct {
	peer Hello
	err  error
}

// runHandshake runs both sides and returns (dialer's view, listener's view).
func runHandshake(t *testing.T, d, a io.ReadWriter, dc, ac HandshakeConfig) (hsResult, hsResult) {
	ch := make(chan hsResult, 1)
	go func() {
		p, err := AcceptHandshake(a, ac)
		ch <- hsResult{p, err}
	}()
	p, err := DialHandshake(d, dc)
	return hsResult{p, err}, <-ch
}

func TestHandshakeOK(t *testing.T) {
	d, a := tcpPair(t)
	dc := hsConfig("node-a", "s3cret")
	dc.Local.Kind = core.KindSentinel
	rd, ra := runHandshake(t, d, a, dc, hsConfig("node-b", "s3cret"))
	if rd.err != nil || ra.err != nil {
		t.Fatalf("dialer: %v, listener: %v", rd.err, ra.err)
	}
	if rd.peer.ID != "node-b" || rd.peer.APIAddr != "node-b:8475" || rd.peer.MBPAddr != "node-b:8474" {
		t.Fatalf("dialer saw %+v", rd.peer)
	}
	if ra.peer.ID != "node-a" || ra.peer.Kind != core.KindSentinel || ra.peer.Purpose != PurposeControl {
		t.Fatalf("listener saw %+v", ra.peer)
	}
}

// A wrong secret is refused on both ends, and neither error names a secret.
func TestHandshakeWrongSecret(t *testing.T) {
	for _, side := range []string{"dialer wrong", "listener wrong"} {
		t.Run(side, func(t *testing.T) {
			d, a := tcpPair(t)
			ds, as := "correct-horse", "battery-staple"
			if side == "listener wrong" {
				ds, as = as, ds
			}
			rd, ra := runHandshake(t, d, a, hsConfig("node-a", ds), hsConfig("node-b", as))
			for who, err := range map[string]error{"dialer": rd.err, "listener": ra.err} {
				if !errors.Is(err, ErrAuth) {
					t.Fatalf("%s: err = %v, want ErrAuth", who, err)
				}
				if strings.Contains(err.Error(), ds) || strings.Contains(err.Error(), as) {
					t.Fatalf("%s: error leaks a secret: %v", who, err)
				}
			}
		})
	}
}

// recorder keeps everything written through it.
type recorder struct {
	io.ReadWriter
	out bytes.Buffer
}

func (r *recorder) Write(p []byte) (int, error) {
	r.out.Write(p)
	return r.ReadWriter.Write(p)
}

// A recorded handshake is useless: the other side's fresh nonce makes every
// recorded proof wrong, whichever side is replayed.
func TestHandshakeReplay(t *testing.T) {
	d, a := tcpPair(t)
	rd, ra := &recorder{ReadWriter: d}, &recorder{ReadWriter: a}
	if x, y := runHandshake(t, rd, ra, hsConfig("node-a", testSecret), hsConfig("node-b", testSecret)); x.err != nil || y.err != nil {
		t.Fatalf("recording: %v / %v", x.err, y.err)
	}

	t.Run("dialer replayed to a listener", func(t *testing.T) {
		d, a := tcpPair(t)
		go func() { _, _ = d.Write(rd.out.Bytes()); _, _ = io.Copy(io.Discard, d) }()
		if _, err := AcceptHandshake(a, hsConfig("node-b", testSecret)); !errors.Is(err, ErrAuth) {
			t.Fatalf("err = %v, want ErrAuth", err)
		}
	})
	t.Run("listener replayed to a dialer", func(t *testing.T) {
		d, a := tcpPair(t)
		go func() { _, _ = a.Write(ra.out.Bytes()); _, _ = io.Copy(io.Discard, a) }()
		if _, err := DialHandshake(d, hsConfig("node-a", testSecret)); !errors.Is(err, ErrAuth) {
			t.Fatalf("err = %v, want ErrAuth", err)
		}
	})
}

// Any frame other than the next handshake frame is refused.
func TestHandshakeFrameBeforeAuth(t *testing.T) {
	msg := EncodeMessage(core.Message{Type: core.MsgHeartbeat, From: "evil"})
	t.Run("message instead of hello", func(t *testing.T) {
		d, a := tcpPair(t)
		go func() { _ = WriteFrame(d, FrameMessage, 0, msg); _, _ = io.Copy(io.Discard, d) }()
		_, err := AcceptHandshake(a, hsConfig("node-b", testSecret))
		if !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), "message frame") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("message instead of proof", func(t *testing.T) {
		d, a := tcpPair(t)
		go func() {
			_ = WriteFrame(d, FrameHello, 0, appendHello(nil, hsConfig("node-a", testSecret).Local, make([]byte, NonceLen)))
			_ = WriteFrame(d, FrameMessage, 0, msg)
			_, _ = io.Copy(io.Discard, d)
		}()
		_, err := AcceptHandshake(a, hsConfig("node-b", testSecret))
		if !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), "before authentication") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("accept instead of challenge", func(t *testing.T) {
		d, a := tcpPair(t)
		go func() { _, _ = ReadFrame(a, 0); _ = WriteFrame(a, FrameAccept, 0, nil); _, _ = io.Copy(io.Discard, a) }()
		if _, err := DialHandshake(d, hsConfig("node-a", testSecret)); !errors.Is(err, ErrHandshake) {
			t.Fatalf("err = %v", err)
		}
	})
}

// The caller's deadline bounds a handshake with a silent peer.
func TestHandshakeDeadline(t *testing.T) {
	d, a := tcpPair(t)
	_ = a.SetDeadline(time.Now().Add(100 * time.Millisecond))
	start := time.Now()
	_, err := AcceptHandshake(a, hsConfig("node-b", testSecret))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("took %v", el)
	}
	_ = d
}

func TestHandshakeSelf(t *testing.T) {
	d, a := tcpPair(t)
	rd, ra := runHandshake(t, d, a, hsConfig("node-a", testSecret), hsConfig("node-a", testSecret))
	if rd.err == nil || ra.err == nil {
		t.Fatalf("self connection accepted: %v / %v", rd.err, ra.err)
	}
}

// A hello whose node id could not be a cluster.node_id (it may name a
// directory) is refused before authentication, on both sides.
func TestHandshakeUnsafeNodeID(t *testing.T) {
	for _, id := range []core.NodeID{"../x", "a b", ".."} {
		d, a := tcpPair(t)
		rd, ra := runHandshake(t, d, a, hsConfig(id, testSecret), hsConfig("node-b", testSecret))
		if !errors.Is(ra.err, ErrHandshake) || !strings.Contains(ra.err.Error(), "node id") || rd.err == nil {
			t.Errorf("dialer %q: listener %v, dialer %v", id, ra.err, rd.err)
		}
		d, a = tcpPair(t)
		rd, ra = runHandshake(t, d, a, hsConfig("node-a", testSecret), hsConfig(id, testSecret))
		if !errors.Is(rd.err, ErrHandshake) || !strings.Contains(rd.err.Error(), "node id") || ra.err == nil {
			t.Errorf("listener %q: dialer %v, listener %v", id, rd.err, ra.err)
		}
	}
}
