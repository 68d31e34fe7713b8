package mbp

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func withRange(hc HandshakeConfig, lo, hi uint16, version string) HandshakeConfig {
	hc.Local.ProtoMin, hc.Local.ProtoMax, hc.Local.Version = lo, hi, version
	return hc
}

// The extension round-trips with and without a cluster id; a field a later
// build adds is skipped; a malformed extension is refused by name.
func TestHelloExtension(t *testing.T) {
	nonce := bytes.Repeat([]byte{7}, NonceLen)
	for _, cid := range []uint64{0, 0x1122334455667788} {
		h := withRange(hsConfig("node-a", testSecret), 2, 3, "muninn v1.2.3 (0123456789ab)").Local
		h.ClusterID = cid
		enc := appendHello(nil, h, nonce)
		got, n, err := parseHello(enc)
		if err != nil || got != h || !bytes.Equal(n, nonce) {
			t.Fatalf("cluster id %x: %+v, nonce %x, %v; want %+v", cid, got, n, err, h)
		}
		if lo, hi := got.Range(); lo != 2 || hi != 3 || !got.Negotiated() {
			t.Fatalf("range %d..%d", lo, hi)
		}
	}
	// A hello without the extension is protocol 1.
	old := oldHello(hsConfig("node-a", testSecret).Local, nonce)
	got, _, err := parseHello(old)
	if lo, hi := got.Range(); err != nil || lo != 1 || hi != 1 || got.Negotiated() {
		t.Fatalf("old hello: %+v (%d..%d), %v", got, lo, hi, err)
	}

	h := withRange(hsConfig("node-a", testSecret), 2, 2, "v").Local
	base := appendHello(nil, h, nonce)
	ext := len(base) - 3 - 6 - 3 // magic + length, range TLV, version TLV
	// build makes an extension area of the given TLV bytes after base's
	// nonce and cluster id.
	build := func(tlv ...byte) []byte {
		b := bytes.Clone(base[:ext])
		b = append(b, extMagic, byte(len(tlv)>>8), byte(len(tlv)))
		return append(b, tlv...)
	}
	rangeTLV := []byte{tlvRange, 4, 0, 2, 0, 5}
	future := build(append(bytes.Clone(rangeTLV), 9, 3, 'x', 'y', 'z')...)
	got, _, err = parseHello(future)
	if lo, hi := got.Range(); err != nil || lo != 2 || hi != 5 {
		t.Fatalf("hello with an unknown field: %+v, %v", got, err)
	}
	long := append([]byte{tlvVersion, MaxBinaryVersionLen + 1}, bytes.Repeat([]byte{'v'}, MaxBinaryVersionLen+1)...)
	for name, tc := range map[string]struct {
		b    []byte
		want string
	}{
		"bad magic":      {append(bytes.Clone(base[:ext]), 0x00, 0, 6, tlvRange, 4, 0, 2, 0, 2), "does not start"},
		"length short":   {append(build(rangeTLV...), 1), "says 6"},
		"no range":       {build(tlvVersion, 1, 'v'), "without a protocol range"},
		"range 0":        {build(tlvRange, 4, 0, 0, 0, 2), "protocol range 0..2"},
		"range reversed": {build(tlvRange, 4, 0, 3, 0, 2), "protocol range 3..2"},
		"range short":    {build(tlvRange, 3, 0, 2, 0), "3 bytes"},
		"twice":          {build(append(bytes.Clone(rangeTLV), rangeTLV...)...), "twice"},
		"truncated":      {build(tlvRange, 9, 0, 2, 0, 2), "truncated"},
		"version long":   {build(append(bytes.Clone(rangeTLV), long...)...), "over 128"},
	} {
		if _, _, err := parseHello(tc.b); !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
}

// Overlapping ranges talk, each side learning the other's version and
// range (also through a two-proof challenge); disjoint ones are refused on
// both ends, each error naming both binary versions and ranges and what to
// do.
func TestHandshakeNegotiation(t *testing.T) {
	d, a := tcpPair(t)
	dc := withRange(hsConfig("node-a", testSecret), 2, 2, "muninn old (aaaaaaaaaaaa)")
	ac := withRange(hsConfig("node-b", testSecret), 2, 3, "muninn new (bbbbbbbbbbbb)")
	ac.Previous = []byte(testSecret + "-previous")
	rd, ra := runHandshake(t, d, a, dc, ac)
	if rd.err != nil || ra.err != nil {
		t.Fatalf("dialer: %v, listener: %v", rd.err, ra.err)
	}
	if rd.peer.Version != "muninn new (bbbbbbbbbbbb)" || rd.peer.ProtoMin != 2 || rd.peer.ProtoMax != 3 {
		t.Fatalf("dialer saw %+v", rd.peer)
	}
	if ra.peer.Version != "muninn old (aaaaaaaaaaaa)" || ra.peer.ProtoMin != 2 || ra.peer.ProtoMax != 2 {
		t.Fatalf("listener saw %+v", ra.peer)
	}

	for _, swap := range []bool{false, true} {
		d, a := tcpPair(t)
		old := withRange(hsConfig("node-old", testSecret), 2, 2, "muninn 0.2 (aaaaaaaaaaaa)")
		young := withRange(hsConfig("node-new", testSecret), 3, 4, "muninn 0.4 (cccccccccccc)")
		dc, ac := old, young
		if swap {
			dc, ac = young, old
		}
		rd, ra := runHandshake(t, d, a, dc, ac)
		for side, err := range map[string]error{"dialer": rd.err, "listener": ra.err} {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("swap %v: %s: %v, want ErrProtocol", swap, side, err)
			}
		}
		// The side that refused has the full error; the other the
		// peer's reason. Both name both versions and ranges.
		for _, err := range []error{rd.err, ra.err} {
			for _, want := range []string{"node-old (muninn 0.2 (aaaaaaaaaaaa), protocol 2)", "node-new (muninn 0.4 (cccccccccccc), protocol 3..4)", "upgrade node-old"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("swap %v: %q lacks %q", swap, err, want)
				}
			}
		}
		for _, err := range []error{rd.err, ra.err} {
			if !strings.Contains(err.Error(), "or roll node-new back") {
				t.Errorf("swap %v: %q does not say to roll node-new back", swap, err)
			}
		}
		var ve *VersionError
		if !errors.As(rd.err, &ve) && !errors.As(ra.err, &ve) {
			t.Fatalf("swap %v: neither side has a VersionError: %v / %v", swap, rd.err, ra.err)
		}
		if fix := ve.Fix(); !strings.Contains(fix, "speaks protocol 3..4 before joining it to this cluster, or roll node-new back to a release that speaks protocol 2") {
			t.Fatalf("fix: %s", fix)
		}
	}
}

// A build before negotiation (protocol 1) is refused by this build's
// range, dialing or dialed: dialed, it cannot read our hello and says so;
// this side adds what that means.
func TestHandshakePreNegotiationPeer(t *testing.T) {
	d, a := tcpPair(t)
	old := hsConfig("node-old", testSecret)
	old.preNegotiation = true
	rd, ra := runHandshake(t, d, a, old, withRange(hsConfig("node-new", testSecret), 2, 3, "muninn new"))
	if !errors.Is(rd.err, ErrProtocol) || !errors.Is(ra.err, ErrProtocol) {
		t.Fatalf("dialer: %v, listener: %v", rd.err, ra.err)
	}
	if !strings.Contains(ra.err.Error(), "node-old (a build before protocol negotiation, protocol 1)") ||
		!strings.Contains(ra.err.Error(), "node-new (muninn new, protocol 2..3)") {
		t.Fatalf("listener: %v", ra.err)
	}

	// Dialing a build before negotiation: it refuses our hello as it
	// always refused a hello it cannot parse.
	d, a = tcpPair(t)
	go func() {
		f, err := ReadFrame(a, 0)
		if err != nil || f.Type != FrameHello {
			return
		}
		_ = WriteFrame(a, FrameRefuse, 0, []byte("mbp: handshake failed: bad hello: nonce and cluster id of 58 bytes, want 32 or 40"))
		_, _ = io.Copy(io.Discard, a)
	}()
	_, err := DialHandshake(d, hsConfig("node-new", testSecret))
	if !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), FixBadHello) {
		t.Fatalf("err = %v, want the bad hello refusal explained", err)
	}
}

// The extension is covered by both proofs: a range or version changed in
// flight fails authentication.
func TestHelloExtTampered(t *testing.T) {
	for _, dir := range []string{"d2l", "l2d"} {
		t.Run(dir, func(t *testing.T) {
			want := FrameHello
			if dir == "l2d" {
				want = FrameChallenge
			}
			de, le := mitm(t, func(d string, f *Frame) {
				if d != dir || f.Type != want {
					return
				}
				i := bytes.Index(f.Payload, []byte("muninn-v2"))
				f.Payload[i+len("muninn-v")] = '9'
			})
			dc := withRange(hsConfig("node-a", testSecret), 2, 2, "muninn-v2")
			ac := withRange(hsConfig("node-b", testSecret), 2, 2, "muninn-v2")
			rd, ra := runHandshake(t, de, le, dc, ac)
			if !errors.Is(rd.err, ErrAuth) || ra.err == nil {
				t.Fatalf("dialer: %v, listener: %v; want both refused, the dialer for auth", rd.err, ra.err)
			}
		})
	}
}

// Transports exchange versions in their hellos (PeerInfo), and a transport
// refuses another without a common version, both logging both versions.
func TestTransportVersions(t *testing.T) {
	leakCheck(t)
	a, _ := newTestTransport(t, "node-a", testSecret, func(c *Config) { c.BinaryVersion = "muninn a" })
	b, _ := newTestTransport(t, "node-b", testSecret, func(c *Config) { c.BinaryVersion, c.ProtoMin, c.ProtoMax = "muninn b", 2, 3 })
	if err := a.Connect(b.Addr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "connected", func() bool { return connected(a, "node-b") && connected(b, "node-a") })
	pa, pb := a.Peers()[0], b.Peers()[0]
	if pa.Version != "muninn b" || pa.ProtoMin != 2 || pa.ProtoMax != 3 || pb.Version != "muninn a" || pb.ProtoMin != ProtocolMin || pb.ProtoMax != ProtocolMax {
		t.Fatalf("peers: %+v / %+v", pa, pb)
	}

	c, lc := newTestTransport(t, "node-c", testSecret, func(c *Config) { c.BinaryVersion, c.ProtoMin, c.ProtoMax = "muninn c", 9, 9 })
	d, ld := newTestTransport(t, "node-d", testSecret, func(c *Config) { c.BinaryVersion, c.ProtoMin, c.ProtoMax = "muninn d", 1, 1 })
	_ = c.Connect(d.Addr())
	const msg = "no common protocol version"
	waitFor(t, "refusals logged", func() bool {
		return strings.Contains(lc.String(), msg) && strings.Contains(ld.String(), msg)
	})
	for _, l := range []string{lc.String(), ld.String()} {
		if !strings.Contains(l, "muninn c") || !strings.Contains(l, "muninn d") {
			t.Fatalf("log does not name both versions:\n%s", l)
		}
	}
	if len(c.Peers()) != 0 || len(d.Peers()) != 0 {
		t.Fatalf("peers after refusal: %v / %v", c.Peers(), d.Peers())
	}
}

// The refusal a peer gets keeps the fix within 256 bytes for long node ids
// and versions of a usual length.
func TestVersionWireReasonFits(t *testing.T) {
	e := &VersionError{
		Local: Hello{ID: "muninn-node-0001", Version: "muninn v10.20.30 (0123456789ab-dirty)", ProtoMin: 2, ProtoMax: 3},
		Peer:  Hello{ID: "muninn-node-0004"},
	}
	r := e.wireReason()
	if len(r) > maxReasonLen || !strings.HasSuffix(r, "or roll muninn-node-0001 back") {
		t.Fatalf("%d bytes: %s", len(r), r)
	}
}
