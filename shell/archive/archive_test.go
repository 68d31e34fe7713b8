package archive

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/muninndb/muninn/core"
)

func entries(first, last core.Seq, epoch core.Epoch, tag string) []core.Entry {
	var es []core.Entry
	for q := first; q <= last; q++ {
		e := core.Entry{Pos: core.Pos{Epoch: epoch, Seq: q}, Type: core.EntryData, Durability: core.Durability(q % 3), Payload: []byte(fmt.Sprintf("%s-%d", tag, q))}
		if q%7 == 0 {
			e.Type, e.Payload = core.EntryEpochStart, nil
		}
		es = append(es, e)
	}
	return es
}

func mustWrite(t *testing.T, dir, node string, es []core.Entry) Segment {
	t.Helper()
	s, err := Write(dir, node, 0, es)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func collect(t *testing.T, segs []Segment, from, to core.Seq) ([]core.Entry, WalkResult, error) {
	t.Helper()
	var got []core.Entry
	res, err := Walk(segs, from, to, func(e core.Entry, _ string) error {
		got = append(got, e)
		return nil
	})
	return got, res, err
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	es := entries(5, 40, 3, "a")
	s := mustWrite(t, dir, "muninn-01", es)
	if want := "0000000000000000005-0000000000000000040.0000000000000000.muninn-01.mseg"; filepath.Base(s.Path) != want {
		t.Fatalf("name %s, want %s", filepath.Base(s.Path), want)
	}
	hdr, got, err := ReadFile(s.Path)
	if err != nil {
		t.Fatal(err)
	}
	if hdr.First != 5 || hdr.Last != 40 || hdr.Node != "muninn-01" {
		t.Fatalf("header %+v", hdr)
	}
	if len(got) != len(es) {
		t.Fatalf("%d entries, want %d", len(got), len(es))
	}
	for i := range es {
		if !sameEntry(es[i], got[i]) {
			t.Fatalf("entry %d: %+v, want %+v", i, got[i], es[i])
		}
	}
	if _, err := Write(dir, "muninn-01", 0, es); err == nil || !strings.Contains(err.Error(), "never rewritten") {
		t.Fatalf("rewrite: %v", err)
	}
	last, ok, err := NodeLast(dir, "muninn-01")
	if err != nil || !ok || last.Last != 40 {
		t.Fatalf("NodeLast = %+v, %v, %v", last, ok, err)
	}
	if last, ok, _ := NodeLast(dir, "muninn-02"); ok {
		t.Fatalf("NodeLast of another node = %+v", last)
	}
	// No temporary file is left.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("dir holds %d files", len(ents))
	}
}

func TestDamage(t *testing.T) {
	dir := t.TempDir()
	s := mustWrite(t, dir, "n1", entries(1, 20, 1, "x"))
	good, err := os.ReadFile(s.Path)
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(s.Path)
	cases := []struct {
		name string
		mod  func([]byte) []byte
		want string
	}{
		{"truncated entries", func(b []byte) []byte { return b[:len(b)-7] }, "truncated at entry 19 (seq 20"},
		{"truncated header", func(b []byte) []byte { return b[:12] }, "truncated in its header"},
		{"flipped payload byte", func(b []byte) []byte { b[len(b)-6] ^= 0x40; return b }, "checksum mismatch at entry seq 20"},
		{"flipped header byte", func(b []byte) []byte { b[len(magic)+6] ^= 1; return b }, "header checksum mismatch"},
		{"newer version", func(b []byte) []byte { b[len(magic)+1] = 2; return b }, "newer format version 2"},
		{"not a segment", func(b []byte) []byte { return []byte("hello, world, not a segment at all") }, "no segment magic"},
		{"trailing bytes", func(b []byte) []byte { return append(b, 0, 0) }, "2 bytes after the last entry"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), name)
			if err := os.WriteFile(p, c.mod(append([]byte(nil), good...)), 0o644); err != nil {
				t.Fatal(err)
			}
			_, _, err := ReadFile(p)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("err = %v, want one naming %s and saying %q", err, p, c.want)
			}
		})
	}
}

func TestTooLarge(t *testing.T) {
	p := filepath.Join(t.TempDir(), SegmentName(1, 2, 0, "n"))
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxSegmentBytes + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, _, err := ReadFile(p); err == nil || !strings.Contains(err.Error(), "more than the") {
		t.Fatalf("err = %v", err)
	}
	// A header claiming more entries than a segment may hold.
	b, _ := Encode("n", 0, entries(1, 2, 1, "x"))
	hdr := append([]byte(nil), b[:len(magic)+4+1+32]...)
	copy(hdr[len(magic)+4+1+16:], []byte{0, 0, 0, 0, 0, 0x10, 0, 0}) // last = 1<<20
	hdr = hdr[:len(hdr)-8]
	hdr = append(hdr, 0, 0x10, 0, 0) // count
	hdr = append(hdr, 0, 0, 0, 0)
	crc := crc32Of(hdr[:len(hdr)-4])
	copy(hdr[len(hdr)-4:], crc)
	if _, _, err := Decode("x.mseg", hdr); err == nil || !strings.Contains(err.Error(), "at most 65536") {
		t.Fatalf("err = %v", err)
	}
}

func TestWalkOverlapAndGap(t *testing.T) {
	d1, d2 := t.TempDir(), t.TempDir()
	mustWrite(t, d1, "n1", entries(1, 10, 1, "x"))
	mustWrite(t, d1, "n1", entries(11, 30, 1, "x"))
	mustWrite(t, d2, "n2", entries(5, 25, 1, "x"))
	mustWrite(t, d2, "n2", entries(26, 50, 1, "x"))
	segs, err := List(d1, d2)
	if err != nil {
		t.Fatal(err)
	}
	got, res, err := collect(t, segs, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 48 || got[0].Pos.Seq != 3 || got[47].Pos.Seq != 50 || res.Last != 50 {
		t.Fatalf("got %d entries ending %d", len(got), res.Last)
	}
	for i, e := range got {
		if e.Pos.Seq != core.Seq(3+i) {
			t.Fatalf("entry %d is seq %d", i, e.Pos.Seq)
		}
	}
	if got, _, err := collect(t, segs, 1, 20); err != nil || len(got) != 20 {
		t.Fatalf("to 20: %d entries, %v", len(got), err)
	}
	// Past the end.
	_, _, err = collect(t, segs, 1, 60)
	var end *EndError
	if !errors.As(err, &end) || end.Last != 50 || !strings.Contains(err.Error(), "ends at seq 50") {
		t.Fatalf("err = %v", err)
	}
	// A gap: without n2's first segment, 31..? is still covered by n2's
	// second; remove n1's second segment instead: 11..25 covered by n2's
	// first; remove that too -> 11..25 missing.
	os.Remove(filepath.Join(d1, SegmentName(11, 30, 0, "n1")))
	os.Remove(filepath.Join(d2, SegmentName(5, 25, 0, "n2")))
	segs, _ = List(d1, d2)
	got, _, err = collect(t, segs, 1, 40)
	var gap *GapError
	if !errors.As(err, &gap) || gap.From != 11 || gap.To != 25 || !strings.Contains(err.Error(), "11..25") ||
		!strings.Contains(err.Error(), SegmentName(1, 10, 0, "n1")) || !strings.Contains(err.Error(), SegmentName(26, 50, 0, "n2")) {
		t.Fatalf("err = %v", err)
	}
	if len(got) != 10 {
		t.Fatalf("before the gap: %d entries", len(got))
	}
	if _, _, err := collect(t, segs, 1, 0); !errors.As(err, &gap) {
		t.Fatalf("open-ended walk over a gap: %v", err)
	}
	// A gap at the start.
	if _, _, err := collect(t, segs[1:], 1, 0); !errors.As(err, &gap) || gap.From != 1 || gap.Before != "" {
		t.Fatalf("err = %v", err)
	}
}

func TestWalkDisagreement(t *testing.T) {
	d1, d2 := t.TempDir(), t.TempDir()
	mustWrite(t, d1, "n1", entries(1, 20, 1, "x"))
	bad := entries(10, 30, 1, "x")
	bad[5].Payload = []byte("other history") // seq 15
	mustWrite(t, d2, "n2", bad)
	segs, _ := List(d1, d2)
	_, _, err := collect(t, segs, 1, 0)
	if err == nil || !strings.Contains(err.Error(), "seq 15") || !strings.Contains(err.Error(), SegmentName(1, 20, 0, "n1")) || !strings.Contains(err.Error(), SegmentName(10, 30, 0, "n2")) {
		t.Fatalf("err = %v", err)
	}
}

func TestWalkStop(t *testing.T) {
	d := t.TempDir()
	mustWrite(t, d, "n1", entries(1, 20, 1, "x"))
	segs, _ := List(d)
	n := 0
	res, err := Walk(segs, 1, 0, func(e core.Entry, _ string) error {
		if e.Pos.Seq == 8 {
			return ErrStop
		}
		n++
		return nil
	})
	if err != nil || n != 7 || res.Last != 7 {
		t.Fatalf("n=%d last=%d err=%v", n, res.Last, err)
	}
}

func TestEncodeRefuses(t *testing.T) {
	es := entries(1, 3, 2, "x")
	es[2].Pos.Seq = 9
	if _, err := Encode("n", 0, es); err == nil {
		t.Fatal("non-contiguous entries accepted")
	}
	if _, err := Encode("../x", 0, entries(1, 2, 1, "x")); err == nil {
		t.Fatal("a node id with a slash accepted")
	}
	if _, ok := ParseName(".n.mseg-tmp-1-2"); ok {
		t.Fatal("a temporary name parsed as a segment")
	}
	if s, ok := ParseName(SegmentName(3, 9, 0xab12, "muninn.01")); !ok || s.Node != "muninn.01" || s.First != 3 || s.Last != 9 || s.Cluster != 0xab12 {
		t.Fatalf("ParseName: %+v %v", s, ok)
	}
}

func crc32Of(b []byte) []byte {
	c := crc32Checksum(b)
	return []byte{byte(c >> 24), byte(c >> 16), byte(c >> 8), byte(c)}
}

// TestClusterID: a segment carries the cluster id of the store that wrote
// it, in its header and its name; a renamed one is refused, and a walk
// over segments of two cluster ids (two histories) is refused before it
// reads anything.
func TestClusterID(t *testing.T) {
	d := t.TempDir()
	s := mustWriteC(t, d, "n1", 0x1234, entries(1, 10, 1, "x"))
	if !strings.Contains(filepath.Base(s.Path), ".0000000000001234.n1.mseg") {
		t.Fatalf("name %s", s.Path)
	}
	hdr, _, err := ReadFile(s.Path)
	if err != nil || hdr.Cluster != 0x1234 {
		t.Fatalf("header %+v, %v", hdr, err)
	}
	renamed := filepath.Join(d, SegmentName(1, 10, 0x9999, "n1"))
	if err := os.Rename(s.Path, renamed); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadFile(renamed); err == nil || !strings.Contains(err.Error(), "cluster 0000000000009999") {
		t.Fatalf("renamed: %v", err)
	}
	os.Rename(renamed, s.Path)
	mustWriteC(t, d, "n1", 0x5678, entries(11, 20, 2, "y"))
	segs, _ := List(d)
	n := 0
	_, err = Walk(segs, 1, 0, func(core.Entry, string) error { n++; return nil })
	var mixed *MixedError
	if !errors.As(err, &mixed) || n != 0 || !strings.Contains(err.Error(), "two histories") || !strings.Contains(err.Error(), "0000000000005678") {
		t.Fatalf("mixed walk: %d entries, %v", n, err)
	}
	if last, ok, _ := NodeLast(d, "n1"); !ok || last.Cluster != 0x5678 || last.Last != 20 {
		t.Fatalf("NodeLast %+v", last)
	}
}

func mustWriteC(t *testing.T, dir, node string, cluster uint64, es []core.Entry) Segment {
	t.Helper()
	s, err := Write(dir, node, cluster, es)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
