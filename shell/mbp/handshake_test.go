package mbp

import (
	"bytes"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
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
			_ = WriteFrame(d, FrameHello, 0, appendHello(nil, hsConfig("node-a", testSecret).withRange().Local, make([]byte, NonceLen)))
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

// adopter records the AdoptCluster calls of one side; refuse makes it
// refuse (a store that holds data).
type adopter struct {
	mu     sync.Mutex
	calls  []uint64
	refuse bool
}

func (a *adopter) adopt(peer Hello) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, peer.ClusterID)
	if a.refuse {
		return errors.New("store /x: the store is not empty")
	}
	return nil
}

func (a *adopter) called() []uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]uint64(nil), a.calls...)
}

// The cluster id rule (docs/protocol.md, rule 19), checked on both ends
// once the peer proved the secret.
func TestHandshakeClusterIDs(t *testing.T) {
	const x, y = 0x0123456789abcdef, 0xfedcba9876543210
	for _, tc := range []struct {
		name           string
		dialer, lis    uint64
		dRefuse, lRefs bool // that side's store holds data (adoption refused)
		ok             bool
		adoptD, adoptL []uint64 // the AdoptCluster calls wanted
	}{
		{name: "equal", dialer: x, lis: x, ok: true},
		{name: "both 0", ok: true},
		{name: "dialer 0 empty adopts", lis: x, ok: true, adoptD: []uint64{x}},
		{name: "listener 0 empty adopts", dialer: x, ok: true, adoptL: []uint64{x}},
		{name: "dialer 0 not empty refuses", lis: x, dRefuse: true, adoptD: []uint64{x}},
		{name: "listener 0 not empty refuses", dialer: x, lRefs: true, adoptL: []uint64{x}},
		{name: "different", dialer: x, lis: y},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, a := tcpPair(t)
			dc, ac := hsConfig("node-a", testSecret), hsConfig("node-b", testSecret)
			da, la := &adopter{refuse: tc.dRefuse}, &adopter{refuse: tc.lRefs}
			dc.Local.ClusterID, dc.AdoptCluster = tc.dialer, da.adopt
			ac.Local.ClusterID, ac.AdoptCluster = tc.lis, la.adopt
			rd, ra := runHandshake(t, d, a, dc, ac)
			if got := da.called(); !slices.Equal(got, tc.adoptD) {
				t.Errorf("dialer adopted %x, want %x", got, tc.adoptD)
			}
			if got := la.called(); !slices.Equal(got, tc.adoptL) {
				t.Errorf("listener adopted %x, want %x", got, tc.adoptL)
			}
			if tc.ok {
				if rd.err != nil || ra.err != nil {
					t.Fatalf("dialer: %v, listener: %v", rd.err, ra.err)
				}
				if rd.peer.ClusterID != tc.lis || ra.peer.ClusterID != tc.dialer {
					t.Fatalf("dialer saw cluster %x, listener saw %x", rd.peer.ClusterID, ra.peer.ClusterID)
				}
				return
			}
			// Refused on both ends, each naming both ids and the fix.
			ids := []string{fmtClusterID(tc.dialer), fmtClusterID(tc.lis)}
			for who, err := range map[string]error{"dialer": rd.err, "listener": ra.err} {
				var ce *ClusterError
				if !errors.Is(err, ErrCluster) || !errors.As(err, &ce) {
					t.Fatalf("%s: err = %v, want ErrCluster", who, err)
				}
				for _, want := range append(ids, "fresh data directory", "node-a", "node-b") {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("%s: %q does not name %q", who, err, want)
					}
				}
			}
		})
	}
}

// A side without an AdoptCluster never takes a peer's cluster id.
func TestHandshakeClusterIDNoAdopter(t *testing.T) {
	d, a := tcpPair(t)
	ac := hsConfig("node-b", testSecret)
	ac.Local.ClusterID = 7
	rd, ra := runHandshake(t, d, a, hsConfig("node-a", testSecret), ac)
	if !errors.Is(rd.err, ErrCluster) || !errors.Is(ra.err, ErrCluster) {
		t.Fatalf("dialer: %v, listener: %v", rd.err, ra.err)
	}
}

// oldHello is a hello as a node without cluster ids encodes it.
func oldHello(h Hello, nonce []byte) []byte {
	b := []byte{byte(h.Purpose)}
	b = appendString(b, string(h.ID))
	b = append(b, byte(h.Kind))
	b = appendString(b, h.APIAddr)
	b = appendString(b, h.MBPAddr)
	return append(b, nonce...)
}

// A hello without the trailer (a node from before cluster ids, or one
// without an id) parses as cluster id 0; a node with id 0 sends exactly
// that hello; a malformed trailer is refused.
func TestHelloClusterIDEncoding(t *testing.T) {
	h := hsConfig("node-a", testSecret).Local
	nonce := bytes.Repeat([]byte{7}, NonceLen)
	old := oldHello(h, nonce)
	if !bytes.Equal(appendHello(nil, h, nonce), old) {
		t.Fatal("a hello with cluster id 0 is not the old hello")
	}
	got, n, err := parseHello(old)
	if err != nil || got.ClusterID != 0 || !bytes.Equal(n, nonce) || got.ID != "node-a" {
		t.Fatalf("old hello: %+v, nonce %x, %v", got, n, err)
	}
	h.ClusterID = 0x1122334455667788
	enc := appendHello(nil, h, nonce)
	if len(enc) != len(old)+8 {
		t.Fatalf("hello with an id is %d bytes, old %d", len(enc), len(old))
	}
	got, n, err = parseHello(enc)
	if err != nil || got != h || !bytes.Equal(n, nonce) {
		t.Fatalf("round trip: %+v, nonce %x, %v; want %+v", got, n, err, h)
	}
	for name, b := range map[string][]byte{
		"explicit 0":    append(bytes.Clone(old), make([]byte, 8)...),
		"short trailer": append(bytes.Clone(old), 1, 2, 3, 4),
		"long trailer":  append(bytes.Clone(enc), 1),
		"no full nonce": old[:len(old)-1],
	} {
		if _, _, err := parseHello(b); !errors.Is(err, ErrHandshake) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

// A node without cluster ids (its hello has no trailer) handshakes with a
// node whose id is 0, as before.
//
// Since negotiation, that old hello still parses (cluster id 0, no range:
// protocol 1) and is refused at once for its protocol version, with a
// refusal the old node can read.
func TestHandshakeOldPeer(t *testing.T) {
	d, a := tcpPair(t)
	refusal := make(chan Frame, 1)
	go func() {
		_ = WriteFrame(d, FrameHello, 0, oldHello(hsConfig("node-a", testSecret).Local, make([]byte, NonceLen)))
		f, _ := ReadFrame(d, 0)
		refusal <- f
		_, _ = io.Copy(io.Discard, d)
	}()
	_, err := AcceptHandshake(a, hsConfig("node-b", testSecret))
	var ve *VersionError
	if !errors.As(err, &ve) || !errors.Is(err, ErrProtocol) || ve.Peer.ID != "node-a" || ve.Peer.Negotiated() {
		t.Fatalf("err = %v, want a VersionError for node-a's old hello (it parsed)", err)
	}
	f := <-refusal
	if f.Type != FrameRefuse || !bytes.HasPrefix(f.Payload, []byte("protocol: node-b (")) ||
		!bytes.Contains(f.Payload, []byte("node-a (a build before protocol negotiation, protocol 1)")) {
		t.Fatalf("the old node got %s %q, want a protocol refusal naming both", f.Type, f.Payload)
	}
}

// mitm relays handshake frames between a dialer and a listener, letting
// edit change each on its way ("d2l": dialer to listener, "l2d" back).
func mitm(t *testing.T, edit func(dir string, f *Frame)) (dialerEnd, listenerEnd net.Conn) {
	d1, a1 := tcpPair(t)
	d2, a2 := tcpPair(t)
	relay := func(dir string, from, to net.Conn) {
		for {
			f, err := ReadFrame(from, MaxFrame)
			if err != nil {
				to.Close()
				return
			}
			edit(dir, &f)
			if WriteFrame(to, f.Type, f.Flags, f.Payload) != nil {
				return
			}
		}
	}
	go relay("d2l", a1, d2)
	go relay("l2d", d2, a1)
	return d1, a2
}

// The hellos, cluster ids included, are covered by both proofs: changing
// or removing an id in flight fails authentication, and nobody adopts it.
func TestHandshakeClusterIDTampered(t *testing.T) {
	const x = 0x0123456789abcdef
	for _, tc := range []struct {
		name string
		dir  string
		set  func(b []byte) []byte
		d, l uint64
	}{
		{"dialer's id changed", "d2l", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }, x, x},
		{"dialer's id removed", "d2l", func(b []byte) []byte { return b[:len(b)-8] }, x, 0},
		{"listener's id removed", "l2d", func(b []byte) []byte {
			// The challenge is hello | proof: cut the 8 bytes before the proof.
			p := len(b) - 32
			return append(b[:p-8:p-8], b[p:]...)
		}, 0, x},
		{"listener's id added", "l2d", func(b []byte) []byte {
			p := len(b) - 32
			out := append(bytes.Clone(b[:p]), 0, 0, 0, 0, 0, 0, 0, 9)
			return append(out, b[p:]...)
		}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantType := FrameHello
			if tc.dir == "l2d" {
				wantType = FrameChallenge
			}
			de, le := mitm(t, func(dir string, f *Frame) {
				if dir == tc.dir && f.Type == wantType {
					f.Payload = tc.set(f.Payload)
				}
			})
			// The layout of rule 19 (the cluster id ends the hello): both
			// sides send the hello of a build before negotiation. The
			// extension's layout is tampered with in TestHelloExtTampered.
			dc, ac := hsConfig("node-a", testSecret), hsConfig("node-b", testSecret)
			dc.preNegotiation, ac.preNegotiation = true, true
			da, la := &adopter{}, &adopter{}
			dc.Local.ClusterID, dc.AdoptCluster = tc.d, da.adopt
			ac.Local.ClusterID, ac.AdoptCluster = tc.l, la.adopt
			rd, ra := runHandshake(t, de, le, dc, ac)
			if !errors.Is(rd.err, ErrAuth) || ra.err == nil {
				t.Fatalf("dialer: %v, listener: %v; want both refused, the dialer for auth", rd.err, ra.err)
			}
			if c := append(da.called(), la.called()...); len(c) > 0 {
				t.Fatalf("adopted %x from a tampered hello", c)
			}
		})
	}
}

// Refusals for the cluster id are logged at most once a minute per peer,
// with a count of those not logged.
func TestClusterLogRateLimited(t *testing.T) {
	var l clusterLog
	t0 := time.Unix(1_800_000_000, 0)
	if ok, _ := l.allow("a", t0); !ok {
		t.Fatal("first refusal not logged")
	}
	for i := 1; i <= 5; i++ {
		if ok, _ := l.allow("a", t0.Add(time.Duration(i)*time.Second)); ok {
			t.Fatalf("refusal %d within the minute logged", i)
		}
	}
	if ok, _ := l.allow("b", t0.Add(time.Second)); !ok {
		t.Fatal("another peer's first refusal not logged")
	}
	ok, quiet := l.allow("a", t0.Add(clusterLogEvery))
	if !ok || quiet != 5 {
		t.Fatalf("after a minute: logged %v, %d not logged since, want true, 5", ok, quiet)
	}
}
