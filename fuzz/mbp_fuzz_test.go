package fuzz

import (
	"bytes"
	"io"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/mbp"
)

// FuzzFrame: the frame reader never panics, never allocates past its limit,
// and what it accepts re-encodes to the bytes it consumed.
func FuzzFrame(f *testing.F) {
	var ok bytes.Buffer
	_ = mbp.WriteFrame(&ok, mbp.FrameMessage, mbp.FlagZstd, []byte("payload"))
	f.Add(ok.Bytes())
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Add([]byte{mbp.Version, 0x10, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		const limit = 64 << 10
		r := bytes.NewReader(b)
		fr, err := mbp.ReadFrame(r, limit)
		if err != nil {
			return
		}
		if len(fr.Payload) > limit {
			t.Fatalf("payload of %d bytes over the limit", len(fr.Payload))
		}
		var out bytes.Buffer
		if err := mbp.WriteFrame(&out, fr.Type, fr.Flags, fr.Payload); err != nil {
			t.Fatal(err)
		}
		if consumed := len(b) - r.Len(); !bytes.Equal(out.Bytes(), b[:consumed]) {
			t.Fatalf("re-encoding differs")
		}
	})
}

// FuzzDecodeMessage: the decoder never panics, and whatever it accepts
// survives an encode/decode round trip unchanged.
func FuzzDecodeMessage(f *testing.F) {
	f.Add(mbp.EncodeMessage(core.Message{Type: core.MsgHeartbeat, From: "a", To: "b", Epoch: 3, SentAt: -5}))
	f.Add(mbp.EncodeMessage(core.Message{Type: core.MsgAppend, From: "a", Entries: []core.Entry{
		{Pos: core.Pos{Epoch: 1, Seq: 2}, Payload: []byte("x")}, {Type: core.EntryMembership}}}))
	f.Add([]byte{3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := mbp.DecodeMessage(b)
		if err != nil {
			return
		}
		if len(m.Entries) > mbp.MaxEntries || len(m.From) > core.MaxNodeIDLen || !m.Type.Valid() {
			t.Fatalf("limits not enforced: %v", m)
		}
		m2, err := mbp.DecodeMessage(mbp.EncodeMessage(m))
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip differs:\n%#v\n%#v", m, m2)
		}
	})
}

// fixedRand makes nonces deterministic so the fuzzer can explore.
type fixedRand struct{}

func (fixedRand) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i)
	}
	return len(p), nil
}

// peer replays fuzz input as everything the other side sends.
type peer struct {
	io.Reader
}

func (peer) Write(p []byte) (int, error) { return len(p), nil }

func hsConfig(id core.NodeID) mbp.HandshakeConfig {
	return mbp.HandshakeConfig{
		Local:  mbp.Hello{ID: id, Kind: core.KindAuto, APIAddr: "10.0.0.1:8475", MBPAddr: "10.0.0.1:8474", Purpose: mbp.PurposeControl},
		Secret: []byte("fuzz-secret"), Rand: fixedRand{},
	}
}

// transcript records what a real dialer and listener send each other.
func transcript(f *testing.F) (dialer, listener []byte) {
	dr, lw := io.Pipe()
	lr, dw := io.Pipe()
	var dOut, lOut bytes.Buffer
	done := make(chan struct{})
	go func() {
		_, _ = mbp.AcceptHandshake(struct {
			io.Reader
			io.Writer
		}{lr, io.MultiWriter(lw, &lOut)}, hsConfig("listener"))
		close(done)
	}()
	_, err := mbp.DialHandshake(struct {
		io.Reader
		io.Writer
	}{dr, io.MultiWriter(dw, &dOut)}, hsConfig("dialer"))
	<-done
	if err != nil {
		f.Fatal(err)
	}
	return dOut.Bytes(), lOut.Bytes()
}

// FuzzHandshake feeds arbitrary bytes as the peer's handshake frames to
// both sides. Nothing panics, nothing is read past the handshake limit, and
// no input authenticates without the secret: the fixed nonces make a
// recorded transcript valid, so only inputs equal to it may succeed.
func FuzzHandshake(f *testing.F) {
	d, l := transcript(f)
	f.Add(d, l)
	f.Add([]byte{}, []byte{})
	f.Add(d[:len(d)-1], l[:10])
	// With fixed nonces the recorded proofs are valid answers; an input
	// authenticates legitimately only if it carries one of them. Framing
	// around it (e.g. the accept frame's bytes) is not authenticated and may
	// differ.
	dProof, lProof := proofOf(f, d), proofOf(f, l)
	f.Fuzz(func(t *testing.T, fromDialer, fromListener []byte) {
		if h, err := mbp.AcceptHandshake(peer{bytes.NewReader(fromDialer)}, hsConfig("listener")); err == nil {
			if !bytes.Contains(fromDialer, dProof) || h.ID != "dialer" {
				t.Fatalf("listener accepted a forged dialer %+v", h)
			}
		}
		if h, err := mbp.DialHandshake(peer{bytes.NewReader(fromListener)}, hsConfig("dialer")); err == nil {
			if !bytes.Contains(fromListener, lProof) || h.ID != "listener" {
				t.Fatalf("dialer accepted a forged listener %+v", h)
			}
		}
	})
}

// FuzzZstd: decompression of arbitrary input never panics nor returns more
// than the limit, and compression round-trips.
func FuzzZstd(f *testing.F) {
	const limit = 1 << 20
	c, err := mbp.NewCompressor(limit)
	if err != nil {
		f.Fatal(err)
	}
	z, _ := c.Compress(bytes.Repeat([]byte("muninn "), 1000))
	f.Add(z)
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := c.Decompress(b)
		if err == nil && len(out) > limit {
			t.Fatalf("%d bytes out, limit %d", len(out), limit)
		}
		if zb, ok := c.Compress(b); ok {
			back, err := c.Decompress(zb)
			if err != nil || !bytes.Equal(back, b) {
				t.Fatalf("round trip: %v", err)
			}
		}
	})
}

// proofOf returns the payload that carries a side's MAC in a recorded
// transcript: the dialer's proof frame, or the listener's challenge (its
// hello, nonce and MAC travel together).
func proofOf(f *testing.F, transcript []byte) []byte {
	r := bytes.NewReader(transcript)
	for {
		fr, err := mbp.ReadFrame(r, mbp.MaxFrame)
		if err != nil {
			f.Fatalf("no proof in the recorded transcript: %v", err)
		}
		if fr.Type == mbp.FrameProof || fr.Type == mbp.FrameChallenge {
			return fr.Payload
		}
	}
}

// safeElem is the oracle's own statement of a safe path element, written
// independently of shell/ident: ASCII letters, digits, '.', '_', '-', not
// starting with '.', at most 255 bytes.
var safeElem = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}$`)

// FuzzManifest: the snapshot manifest decoder (a snap-offer from any peer
// holding the secret) never panics, and whatever it accepts is safe to use
// as paths: the id is one safe element of at most 64 bytes (it names
// snapshot-in/<id>), every file name a relative path of safe elements that
// stays inside the staging directory, names are sorted and unique, and the
// manifest re-encodes to an identical one.
func FuzzManifest(f *testing.F) {
	good := &mbp.SnapshotManifest{ID: "0a1b2c3d4e5f60718293a4b5", Chunk: 1 << 20, Files: []mbp.SnapshotFile{
		{Name: "000002.log", Size: 10}, {Name: "MANIFEST-000001", Size: 3}, {Name: "MUNINN-STORE"},
		{Name: "marker.format-version.000001.020"}, {Name: "sub/000005.sst", Size: 1 << 20}}}
	f.Add(good.Encode())
	for _, bad := range []*mbp.SnapshotManifest{
		{ID: "../../canary", Chunk: 4096},
		{ID: "ok", Chunk: 4096, Files: []mbp.SnapshotFile{{Name: "../x"}}},
		{ID: "ok", Chunk: 4096, Files: []mbp.SnapshotFile{{Name: "a/../../x"}}},
		{ID: "ok", Chunk: 4096, Files: []mbp.SnapshotFile{{Name: `..\x`}}},
		{ID: "ok", Chunk: 4096, Files: []mbp.SnapshotFile{{Name: "b"}, {Name: "a"}}},
	} {
		f.Add(bad.Encode())
	}
	f.Add([]byte{})
	const limit = 1 << 20
	base := filepath.Join(string(filepath.Separator)+"data", "snapshot-in")
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := mbp.DecodeSnapshotManifest(b, limit)
		if err != nil {
			return
		}
		if len(m.ID) > 64 || !safeElem.MatchString(m.ID) {
			t.Fatalf("unsafe snapshot id %q accepted", m.ID)
		}
		dir := filepath.Join(base, m.ID)
		if rel, err := filepath.Rel(base, dir); err != nil || rel != m.ID {
			t.Fatalf("id %q leaves %s: %q", m.ID, base, rel)
		}
		if m.Chunk <= 0 || m.Chunk > limit {
			t.Fatalf("chunk %d", m.Chunk)
		}
		for i, sf := range m.Files {
			for _, el := range strings.Split(sf.Name, "/") {
				if !safeElem.MatchString(el) {
					t.Fatalf("file %d: unsafe element %q in %q", i, el, sf.Name)
				}
			}
			p := filepath.Join(dir, filepath.FromSlash(sf.Name))
			if rel, err := filepath.Rel(dir, p); err != nil || !filepath.IsLocal(rel) || rel != filepath.FromSlash(sf.Name) {
				t.Fatalf("file %q leaves %s: %q %v", sf.Name, dir, rel, err)
			}
			if sf.Size < 0 {
				t.Fatalf("file %q: size %d", sf.Name, sf.Size)
			}
			if i > 0 && m.Files[i-1].Name >= sf.Name {
				t.Fatalf("names out of order or repeated: %q then %q", m.Files[i-1].Name, sf.Name)
			}
		}
		m2, err := mbp.DecodeSnapshotManifest(m.Encode(), limit)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip: %v\n%#v\n%#v", err, m, m2)
		}
	})
}
