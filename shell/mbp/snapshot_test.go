package mbp

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
	"golang.org/x/time/rate"
)

// writeCheckpoint fills dir with a few files like a Pebble checkpoint's.
func writeCheckpoint(t testing.TB, dir string, sizes map[string]int) {
	for name, n := range sizes {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, n)
		_, _ = rand.Read(b)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func sameTree(t *testing.T, want, got string) {
	t.Helper()
	_ = filepath.WalkDir(want, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		a, _ := os.ReadFile(p)
		b, err := os.ReadFile(filepath.Join(got, rel))
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("%s differs: %v", rel, err)
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(got, stateFile)); !os.IsNotExist(err) {
		t.Fatal("state marker left in the finished snapshot")
	}
}

var ckpt = map[string]int{"000001.sst": 300 << 10, "MANIFEST-000001": 1234, "OPTIONS": 0, "sub/000002.sst": 64 << 10}

func TestSnapshotOverTransport(t *testing.T) {
	leakCheck(t)
	src, staging := t.TempDir(), t.TempDir()
	writeCheckpoint(t, src, ckpt)
	got := make(chan string, 1)
	a, _ := newTestTransport(t, "node-a", testSecret, func(c *Config) { c.SnapshotChunk = 32 << 10 })
	b, _ := newTestTransport(t, "node-b", testSecret, func(c *Config) {
		c.SnapshotStaging = func(from core.NodeID, id string) (string, error) { return filepath.Join(staging, id), nil }
		c.OnSnapshot = func(from core.NodeID, id, dir string) { got <- dir }
	})
	_ = b.Connect(a.Addr())
	waitFor(t, "connected", func() bool { return connected(a, "node-b") })
	if err := a.SendSnapshot(context.Background(), "node-b", src); err != nil {
		t.Fatal(err)
	}
	sameTree(t, src, <-got)
	ps := a.Snapshots()
	if len(ps) != 1 || !ps[0].Complete || ps[0].Total != int64(300<<10+1234+64<<10) || ps[0].Done != ps[0].Total {
		t.Fatalf("progress %+v", ps)
	}
}

// breakAfter fails writes once n bytes have gone through.
type breakAfter struct {
	net.Conn
	left atomic.Int64
}

func (c *breakAfter) Write(p []byte) (int, error) {
	if c.left.Add(-int64(len(p))) < 0 {
		_ = c.Conn.(*net.TCPConn).CloseWrite() // the receiver keeps what arrived
		return 0, errors.New("link cut")
	}
	return c.Conn.Write(p)
}

// A broken stream resumes from the last confirmed chunk, not from zero.
func TestSnapshotResume(t *testing.T) {
	leakCheck(t)
	src, staging := t.TempDir(), t.TempDir()
	writeCheckpoint(t, src, ckpt)
	m, err := buildManifest(src, 16<<10)
	if err != nil {
		t.Fatal(err)
	}
	lim := rate.NewLimiter(rate.Inf, 16<<10)
	recvPr := &progress{}
	attempt := func(cut int64) (error, error) {
		d, a := tcpPair(t)
		bd := &breakAfter{Conn: d}
		bd.left.Store(cut)
		rerr := make(chan error, 1)
		go func() {
			_, _, err := receiveSnapshot(a, MaxFrame, func(string) (string, *progress, error) { return staging, recvPr, nil })
			a.Close()
			rerr <- err
		}()
		sendPr := &progress{}
		serr := streamSnapshot(context.Background(), bd, src, m, lim, sendPr)
		return serr, <-rerr
	}
	if serr, _ := attempt(200 << 10); serr == nil {
		t.Fatal("cut stream succeeded")
	}
	recvPr.mu.Lock()
	confirmed := recvPr.p.Done
	recvPr.mu.Unlock()
	// The second attempt starts where the receiver confirmed.
	d, a := tcpPair(t)
	go func() {
		_, _, _ = receiveSnapshot(a, MaxFrame, func(string) (string, *progress, error) { return staging, recvPr, nil })
		a.Close()
	}()
	pr := &progress{}
	if err := streamSnapshot(context.Background(), d, src, m, lim, pr); err != nil {
		t.Fatal(err)
	}
	pr.mu.Lock()
	resumedAt := pr.startDone
	pr.mu.Unlock()
	if resumedAt == 0 || resumedAt != confirmed || resumedAt%(16<<10) != 0 {
		t.Fatalf("resumed at %d, receiver had confirmed %d", resumedAt, confirmed)
	}
	sameTree(t, src, staging)
}

// A file whose bytes do not match its SHA-256 is refused and removed.
func TestSnapshotChecksum(t *testing.T) {
	src, staging := t.TempDir(), t.TempDir()
	writeCheckpoint(t, src, map[string]int{"a.sst": 5000})
	m, _ := buildManifest(src, 4096)
	m.Files[0].Sum[0] ^= 1
	d, a := tcpPair(t)
	rerr := make(chan error, 1)
	go func() {
		_, _, err := receiveSnapshot(a, MaxFrame, func(string) (string, *progress, error) { return staging, &progress{}, nil })
		rerr <- err
	}()
	err := streamSnapshot(context.Background(), d, src, m, rate.NewLimiter(rate.Inf, 4096), &progress{})
	var refused *refusedError
	if !errors.As(err, &refused) || !errors.Is(<-rerr, ErrSnapshot) {
		t.Fatalf("sender: %v", err)
	}
	if _, err := os.Stat(filepath.Join(staging, "a.sst")); !os.IsNotExist(err) {
		t.Fatal("bad file kept")
	}
}

// The token bucket holds the stream to the configured rate.
func TestSnapshotRate(t *testing.T) {
	src, staging := t.TempDir(), t.TempDir()
	writeCheckpoint(t, src, map[string]int{"a.sst": 512 << 10})
	m, _ := buildManifest(src, 64<<10)
	d, a := tcpPair(t)
	go func() {
		_, _, _ = receiveSnapshot(a, MaxFrame, func(string) (string, *progress, error) { return staging, &progress{}, nil })
	}()
	lim := rate.NewLimiter(rate.Limit(2<<20), 64<<10) // 2 MiB/s: 512 KiB takes ~220 ms
	start := time.Now()
	if err := streamSnapshot(context.Background(), d, src, m, lim, &progress{}); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Fatalf("512 KiB at 2 MiB/s took %v", el)
	}
}

// A snapshot id or file name that is not a safe relative name is refused
// before anything touches the disk: the id names the staging directory
// (a peer holding the secret offered "../../canary" and had a directory
// outside the data directory emptied and written).
func TestSnapshotUnsafeManifest(t *testing.T) {
	files := func(names ...string) []SnapshotFile {
		out := make([]SnapshotFile, len(names))
		for i, n := range names {
			out[i].Name = n
		}
		return out
	}
	good := &SnapshotManifest{ID: "0a1b2c3d4e5f", Chunk: 4096, Files: files("000001.sst", "MANIFEST-000001", "MUNINN-STORE", "marker.format-version.000001.013", "sub/000002.log")}
	if m, err := DecodeSnapshotManifest(good.Encode(), MaxFrame); err != nil || m.ID != good.ID || len(m.Files) != 5 {
		t.Fatalf("a good manifest: %v", err)
	}
	bad := map[string]*SnapshotManifest{
		"id ../../canary":   {ID: "../../canary", Chunk: 4096},
		"id ..":             {ID: "..", Chunk: 4096},
		"id .hidden":        {ID: ".hidden", Chunk: 4096},
		"id a/b":            {ID: "a/b", Chunk: 4096},
		"id with a NUL":     {ID: "a\x00b", Chunk: 4096},
		"id with a space":   {ID: "a b", Chunk: 4096},
		"name ../x":         {ID: "ok", Chunk: 4096, Files: files("../x")},
		"name a/../../x":    {ID: "ok", Chunk: 4096, Files: files("a/../../x")},
		"absolute name":     {ID: "ok", Chunk: 4096, Files: files("/etc/passwd")},
		"backslash":         {ID: "ok", Chunk: 4096, Files: files(`..\x`)},
		"the marker":        {ID: "ok", Chunk: 4096, Files: files(stateFile)},
		"a dot element":     {ID: "ok", Chunk: 4096, Files: files("a/./b")},
		"a hidden element":  {ID: "ok", Chunk: 4096, Files: files("a/.b")},
		"duplicate names":   {ID: "ok", Chunk: 4096, Files: files("a", "a")},
		"unsorted names":    {ID: "ok", Chunk: 4096, Files: files("b", "a")},
		"trailing slash":    {ID: "ok", Chunk: 4096, Files: files("a/")},
		"control character": {ID: "ok", Chunk: 4096, Files: files("a\nb")},
	}
	for name, m := range bad {
		if _, err := DecodeSnapshotManifest(m.Encode(), MaxFrame); !errors.Is(err, ErrSnapshot) {
			t.Errorf("%s: decoded (%v)", name, err)
		}
	}

	// Over a stream: refused with a reason, the staging function never called.
	root := t.TempDir()
	base := filepath.Join(root, "data", "snapshot-in")
	d, a := tcpPair(t)
	staged := make(chan string, 1)
	rerr := make(chan error, 1)
	go func() {
		_, _, err := receiveSnapshot(a, MaxFrame, func(id string) (string, *progress, error) {
			staged <- id
			return filepath.Join(base, id), &progress{}, nil
		})
		rerr <- err
	}()
	if err := WriteFrame(d, FrameSnapOffer, 0, bad["id ../../canary"].Encode()); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFrame(d, 1024)
	if err != nil || f.Type != FrameRefuse || !bytes.Contains(f.Payload, []byte("unsafe snapshot id")) {
		t.Fatalf("got %v %v %q", err, f.Type, f.Payload)
	}
	if err := <-rerr; !errors.Is(err, ErrSnapshot) {
		t.Fatalf("receiver: %v", err)
	}
	select {
	case id := <-staged:
		t.Fatalf("staging asked for %q", id)
	default:
	}
	if _, err := os.Stat(filepath.Join(root, "canary")); !os.IsNotExist(err) {
		t.Fatalf("the canary directory exists: %v", err)
	}
}

// A receiver's refusal reaches the sender as a refusal (not retried), even
// with a long reason: the sender used to read the answer to its offer with
// a 64-byte limit and retried every refusal longer than that forever.
func TestSnapshotRefusalReason(t *testing.T) {
	src := t.TempDir()
	writeCheckpoint(t, src, map[string]int{"a.sst": 100})
	m, _ := buildManifest(src, 4096)
	reason := "snapshots are accepted only from the Cortex this node follows (muninn-01, epoch 7), not from intruder"
	d, a := tcpPair(t)
	go func() {
		_, _, _ = receiveSnapshot(a, MaxFrame, func(string) (string, *progress, error) { return "", nil, errors.New(reason) })
	}()
	err := streamSnapshot(context.Background(), d, src, m, rate.NewLimiter(rate.Inf, 4096), &progress{})
	var refused *refusedError
	if !errors.As(err, &refused) || !strings.Contains(refused.reason, reason) {
		t.Fatalf("sender: %v", err)
	}
}
