package backup

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/core/engram"
	"github.com/muninndb/muninn/shell/store"
)

func engramID(n uint64) string {
	var r [10]byte
	r[9], r[8], r[7] = byte(n), byte(n>>8), byte(n>>16)
	return engram.NewID(1_700_000_000_000+n, r)
}

// fillStore writes count engrams (content of size bytes each) into a new
// store under dir, in a 3-member cluster's membership, and returns it.
func fillStore(t testing.TB, dir string, count, size int) *store.Store {
	t.Helper()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	members := core.Members{{ID: "a"}, {ID: "b"}, {ID: "c"}}
	content := strings.Repeat("x", size)
	seq := core.Seq(1)
	es := []core.Entry{{Pos: core.Pos{Epoch: 1, Seq: 1}, Type: core.EntryMembership, Payload: core.EncodeMembers(members)}}
	for i := range count {
		seq++
		cmd, err := engram.EncodeCommand(engram.Command{Op: engram.OpWrite, Vault: "v", ID: engramID(uint64(i)), At: uint64(i), Concept: "c", Content: content + engramID(uint64(i)), Confidence: 0.5})
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, core.Entry{Pos: core.Pos{Epoch: 1, Seq: seq}, Type: core.EntryData, Payload: cmd})
		if len(es) >= 256 || i == count-1 {
			hs := core.HardState{Epoch: 1, Commit: core.Pos{Epoch: 1, Seq: seq}}
			if err := st.Save(store.SaveBatch{HardState: &hs, Entries: es, Members: members}, false); err != nil {
				t.Fatal(err)
			}
			es = nil
		}
	}
	return st
}

// takeFile backs st up into a tar.zst in memory.
func takeFile(t testing.TB, st *store.Store) (Manifest, []byte) {
	t.Helper()
	ck := filepath.Join(t.TempDir(), "ck")
	m, err := Take(st, ck, "a")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Encode(&buf, m, ck, nil); err != nil {
		t.Fatal(err)
	}
	return m, buf.Bytes()
}

func TestRoundTripFileAndDir(t *testing.T) {
	st := fillStore(t, filepath.Join(t.TempDir(), "src"), 300, 100)
	defer st.Close()
	m, b := takeFile(t, st)
	if m.Position != (Pos{1, 301}) || len(m.Members) != 3 || m.TotalBytes == 0 {
		t.Fatalf("manifest: %+v", m)
	}
	file := filepath.Join(t.TempDir(), "b.tar.zst")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var last int64
	got, err := Verify(file, ReadOptions{Progress: func(done, total int64) { last = done }})
	if err != nil {
		t.Fatal(err)
	}
	if got.Position != m.Position || last != m.TotalBytes {
		t.Fatalf("verify: %v, progress %d of %d", got.Position, last, m.TotalBytes)
	}

	// The directory form.
	ck := filepath.Join(t.TempDir(), "ck")
	m2, err := Take(st, ck, "a")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "bdir")
	if err := EncodeDir(dir, m2, ck); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(dir, ReadOptions{}); err != nil {
		t.Fatal(err)
	}

	// Restore: a new identity, one voter, every engram.
	for _, src := range []string{file, dir} {
		target := filepath.Join(t.TempDir(), "new")
		_, op, err := Restore(src, target, ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if op.Identity == st.Identity() || len(op.Members) != 1 || op.Members[0].ID != "a" {
			t.Fatalf("restored %s: %+v (source identity %x)", src, op, st.Identity())
		}
		rs, err := store.Open(filepath.Join(target, StoreDir), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if ms := rs.Members(); len(ms) != 1 || ms[0].Store != rs.Identity() {
			t.Fatalf("restored membership %+v, want one voter bound to the new store %x", ms, rs.Identity())
		}
		for i := range 300 {
			if _, ok, err := rs.Get("v", engramID(uint64(i))); !ok || err != nil {
				t.Fatalf("engram %d missing after restore (%v)", i, err)
			}
		}
		rs.Close()
		if ents, _ := os.ReadDir(filepath.Dir(target)); len(ents) != 1 {
			t.Fatalf("restore left %d entries beside the target", len(ents))
		}
	}
}

// rewrite re-encodes a backup stream, letting edit change the manifest
// and each entry's content.
func rewrite(t *testing.T, b []byte, editManifest func(*Manifest), editEntry func(h *tar.Header, body []byte) []byte) []byte {
	t.Helper()
	zr, err := zstd.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	var out bytes.Buffer
	zw, _ := zstd.NewWriter(&out)
	tw := tar.NewWriter(zw)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		body := new(bytes.Buffer)
		body.ReadFrom(tr)
		data := body.Bytes()
		if h.Name == ManifestName && editManifest != nil {
			var m Manifest
			json.Unmarshal(data, &m)
			editManifest(&m)
			data, _ = json.Marshal(m)
		} else if editEntry != nil {
			data = editEntry(h, data)
		}
		h.Size = int64(len(data))
		tw.WriteHeader(h)
		tw.Write(data)
	}
	tw.Close()
	zw.Close()
	return out.Bytes()
}

func TestBadInput(t *testing.T) {
	st := fillStore(t, filepath.Join(t.TempDir(), "src"), 50, 100)
	defer st.Close()
	m, good := takeFile(t, st)
	first := m.Files[0].Path
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"truncated", good[:len(good)/2], "truncated stream"},
		{"truncated at the end", good[:len(good)-3], "stream"},
		{"corrupt byte", func() []byte {
			b := bytes.Clone(good)
			b[len(b)/2] ^= 0xff
			return b
		}(), "stream"},
		{"checksum mismatch", rewrite(t, good, nil, func(h *tar.Header, body []byte) []byte {
			if h.Name == first && len(body) > 0 {
				body[0] ^= 1
			}
			return body
		}), "checksum mismatch for " + first},
		{"newer version", rewrite(t, good, func(m *Manifest) { m.Format = 7 }, nil), "newer format version 7 (this binary reads 1)"},
		{"path traversal", rewrite(t, good, func(m *Manifest) { m.Files[0].Path = "../evil" }, nil), "path traversal refused"},
		{"absolute path", rewrite(t, good, func(m *Manifest) { m.Files[0].Path = "/etc/passwd" }, nil), "absolute paths are refused"},
		{"oversize file", rewrite(t, good, func(m *Manifest) {
			m.TotalBytes += MaxFileBytes + 1 - m.Files[0].Size
			m.Files[0].Size = MaxFileBytes + 1
		}, nil), "outside 0.."},
		{"missing file", rewrite(t, good, func(m *Manifest) {
			m.Files = append(m.Files, File{Path: "zz-extra", Size: 1, SHA256: strings.Repeat("0", 64)})
			m.TotalBytes++
		}, nil), "missing file zz-extra"},
		{"not a backup", []byte("hello"), "stream"},
		{"symlink entry", rewrite(t, good, nil, func(h *tar.Header, body []byte) []byte {
			if h.Name == first {
				h.Typeflag, h.Linkname = tar.TypeSymlink, "/etc/passwd"
				return nil
			}
			return body
		}), "not a regular file"},
		{"trailing data", func() []byte {
			zr, _ := zstd.NewReader(bytes.NewReader(good))
			defer zr.Close()
			var plain bytes.Buffer
			plain.ReadFrom(zr)
			plain.Write(make([]byte, 2<<20))
			var out bytes.Buffer
			zw, _ := zstd.NewWriter(&out)
			zw.Write(plain.Bytes())
			zw.Close()
			return out.Bytes()
		}(), "after the archive's end"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.tar.zst")
			if err := os.WriteFile(path, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Verify(path, ReadOptions{})
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("verify: %v, want an error naming %s and saying %q", err, path, c.want)
			}
			target := filepath.Join(t.TempDir(), "new")
			if _, _, err := Restore(path, target, ReadOptions{}); err == nil {
				t.Fatal("restore of a bad backup succeeded")
			}
			if ents, _ := os.ReadDir(filepath.Dir(target)); len(ents) != 0 {
				t.Fatalf("a failed restore left %v", ents[0].Name())
			}
		})
	}
}

func TestOversizeManifest(t *testing.T) {
	var buf bytes.Buffer
	zw, _ := zstd.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: ManifestName, Size: MaxManifestBytes + 1})
	tw.Write(make([]byte, MaxManifestBytes+1))
	tw.Close()
	zw.Close()
	if _, err := Decode(&buf, "", ReadOptions{}); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("got %v", err)
	}
}

func TestSymlinkInDirRefused(t *testing.T) {
	st := fillStore(t, filepath.Join(t.TempDir(), "src"), 10, 10)
	defer st.Close()
	ck := filepath.Join(t.TempDir(), "ck")
	m, err := Take(st, ck, "a")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "bdir")
	if err := EncodeDir(dir, m, ck); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, filepath.FromSlash(m.Files[0].Path))
	os.Remove(p)
	if err := os.Symlink("/etc/passwd", p); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(dir, ReadOptions{}); err == nil || !strings.Contains(err.Error(), "symlinks") {
		t.Fatalf("got %v", err)
	}
}

func TestRestoreRefusesNonEmpty(t *testing.T) {
	target := t.TempDir()
	os.WriteFile(filepath.Join(target, "keep"), []byte("x"), 0o644)
	_, _, err := Restore("/nonexistent", target, ReadOptions{})
	if err == nil || !strings.Contains(err.Error(), "not empty") || !strings.Contains(err.Error(), target) {
		t.Fatalf("got %v", err)
	}
}

func TestOpenStoppedRefusesRunning(t *testing.T) {
	data := t.TempDir()
	st := fillStore(t, filepath.Join(data, StoreDir), 1, 1)
	defer st.Close()
	if _, err := OpenStopped(data); err == nil || !strings.Contains(err.Error(), "running") {
		t.Fatalf("got %v", err)
	}
	if _, err := OpenStopped(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no muninn store") {
		t.Fatalf("got %v", err)
	}
}

func TestSymlinkedDirInDirRefused(t *testing.T) {
	src := t.TempDir()
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "f"), []byte("x"), 0o644)
	if err := os.Symlink(outside, filepath.Join(src, "sub")); err != nil {
		t.Fatal(err)
	}
	m := Manifest{Format: Version, TotalBytes: 1, Files: []File{{Path: "sub/f", Size: 1, SHA256: "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"}}}
	b, _ := json.Marshal(m)
	os.WriteFile(filepath.Join(src, ManifestName), b, 0o644)
	if _, err := DecodeDir(src, "", ReadOptions{}); err == nil || !strings.Contains(err.Error(), "symlinks are refused") {
		t.Fatalf("got %v", err)
	}
}

// TestVerifyExtractsNextToBackup: verify unpacks next to the backup (a
// tmpfs /tmp may not hold a large store), and removes what it unpacked.
func TestVerifyExtractsNextToBackup(t *testing.T) {
	st := fillStore(t, filepath.Join(t.TempDir(), "src"), 50, 100)
	defer st.Close()
	_, b := takeFile(t, st)
	dir := t.TempDir()
	file := filepath.Join(dir, "b.tar.zst")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	during := -1
	if _, err := Verify(file, ReadOptions{OnManifest: func(Manifest) {
		m, _ := filepath.Glob(filepath.Join(dir, ".muninn-verify-*"))
		during = len(m)
	}}); err != nil {
		t.Fatal(err)
	}
	after, _ := filepath.Glob(filepath.Join(dir, ".muninn-verify-*"))
	if during != 1 || len(after) != 0 {
		t.Fatalf("verify's temp dirs next to the backup: %d during, %d after; want 1 and 0", during, len(after))
	}
}
