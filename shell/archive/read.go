package archive

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/muninndb/muninn/core"
)

// Decode reads the segment file b (named path, for errors and to check the
// name against the header). Every error names the file and the position.
func Decode(path string, b []byte) (Segment, []core.Entry, error) {
	fail := func(format string, a ...any) (Segment, []core.Entry, error) {
		return Segment{}, nil, fmt.Errorf("archive segment %s: %s", path, fmt.Sprintf(format, a...))
	}
	if len(b) > MaxSegmentBytes {
		return fail("%d bytes, more than the %d a segment may hold: not a muninn segment, or damaged", len(b), MaxSegmentBytes)
	}
	if len(b) < len(magic)+4 || string(b[:len(magic)]) != magic {
		if len(b) < len(magic) && string(b) == magic[:len(b)] {
			return fail("truncated in its header (%d bytes)", len(b))
		}
		return fail("no segment magic: not a muninn archive segment")
	}
	off := len(magic)
	if v := binary.BigEndian.Uint16(b[off:]); v != Version {
		if v > Version {
			return fail("newer format version %d (this binary reads %d): use a newer muninn", v, Version)
		}
		return fail("format version %d is not %d: damaged", v, Version)
	}
	nl := int(binary.BigEndian.Uint16(b[off+2:]))
	off += 4
	if nl == 0 || nl > MaxNodeIDLen {
		return fail("node id length %d outside 1..%d: damaged", nl, MaxNodeIDLen)
	}
	if len(b) < off+nl+32 {
		return fail("truncated in its header (%d bytes)", len(b))
	}
	s := Segment{Node: string(b[off : off+nl]), Path: path}
	off += nl
	s.Cluster = binary.BigEndian.Uint64(b[off:])
	off += 8
	s.First = core.Seq(binary.BigEndian.Uint64(b[off:]))
	s.Last = core.Seq(binary.BigEndian.Uint64(b[off+8:]))
	count := binary.BigEndian.Uint32(b[off+16:])
	if got, want := crc32.Checksum(b[:off+20], crcTable), binary.BigEndian.Uint32(b[off+20:]); got != want {
		return fail("header checksum mismatch (crc32c %08x, stored %08x): the file is damaged", got, want)
	}
	off += 24
	if s.First == 0 || s.Last < s.First || count == 0 || count > MaxSegmentEntries || uint64(count) != uint64(s.Last-s.First)+1 {
		return fail("header says seqs %d..%d in %d entries (at most %d): damaged", s.First, s.Last, count, MaxSegmentEntries)
	}
	if n, ok := ParseName(filepath.Base(path)); ok && (n.First != s.First || n.Last != s.Last || n.Node != s.Node || n.Cluster != s.Cluster) {
		return fail("its name says seqs %d..%d of node %s, cluster %s, its header %d..%d of node %s, cluster %s: renamed or damaged", n.First, n.Last, n.Node, FormatCluster(n.Cluster), s.First, s.Last, s.Node, FormatCluster(s.Cluster))
	}
	es := make([]core.Entry, 0, count)
	for i := uint32(0); i < count; i++ {
		want := s.First + core.Seq(i)
		start := off
		if len(b) < off+22 {
			return fail("truncated at entry %d (seq %d of %d..%d), byte %d", i, want, s.First, s.Last, off)
		}
		e := core.Entry{
			Pos:        core.Pos{Seq: core.Seq(binary.BigEndian.Uint64(b[off:])), Epoch: core.Epoch(binary.BigEndian.Uint64(b[off+8:]))},
			Type:       core.EntryType(b[off+16]),
			Durability: core.Durability(b[off+17]),
		}
		pl := int(binary.BigEndian.Uint32(b[off+18:]))
		off += 22
		if pl > MaxPayload {
			return fail("entry seq %d: payload of %d bytes is above the %d-byte limit: damaged", want, pl, MaxPayload)
		}
		if len(b) < off+pl+4 {
			return fail("truncated at entry %d (seq %d of %d..%d), byte %d", i, want, s.First, s.Last, start)
		}
		if pl > 0 {
			e.Payload = append([]byte(nil), b[off:off+pl]...)
		}
		off += pl
		if got, stored := crc32.Checksum(b[start:off], crcTable), binary.BigEndian.Uint32(b[off:]); got != stored {
			return fail("checksum mismatch at entry seq %d (byte %d; crc32c %08x, stored %08x): the file is damaged", want, start, got, stored)
		}
		off += 4
		if e.Pos.Seq != want {
			return fail("entry %d holds seq %d, want %d: damaged", i, e.Pos.Seq, want)
		}
		if e.Type > core.EntryMembership {
			return fail("entry seq %d: unknown type %d", want, e.Type)
		}
		if i > 0 && e.Pos.Epoch < es[i-1].Pos.Epoch {
			return fail("entry %s follows %s, of a higher epoch: damaged", e.Pos, es[i-1].Pos)
		}
		es = append(es, e)
	}
	if off != len(b) {
		return fail("%d bytes after the last entry (seq %d): damaged", len(b)-off, s.Last)
	}
	return s, es, nil
}

// ReadFile reads and decodes the segment file at path, refusing a file
// larger than MaxSegmentBytes before reading it.
func ReadFile(path string) (Segment, []core.Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return Segment{}, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Segment{}, nil, err
	}
	if !fi.Mode().IsRegular() {
		return Segment{}, nil, fmt.Errorf("archive segment %s is not a regular file", path)
	}
	if fi.Size() > MaxSegmentBytes {
		return Segment{}, nil, fmt.Errorf("archive segment %s: %d bytes, more than the %d a segment may hold: not a muninn segment, or damaged", path, fi.Size(), MaxSegmentBytes)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxSegmentBytes+1))
	if err != nil {
		return Segment{}, nil, fmt.Errorf("archive segment %s: %w", path, err)
	}
	return Decode(path, b)
}

// List returns the segments in dirs (by their names), sorted by first seq,
// then last seq, then path. Other files are ignored. A missing directory
// is an error.
func List(dirs ...string) ([]Segment, error) {
	var out []Segment
	for _, d := range dirs {
		ents, err := os.ReadDir(d)
		if err != nil {
			return nil, fmt.Errorf("archive directory %s: %w", d, err)
		}
		for _, e := range ents {
			if s, ok := ParseName(e.Name()); ok && e.Type().IsRegular() {
				s.Path = filepath.Join(d, e.Name())
				out = append(out, s)
			}
		}
	}
	slices.SortFunc(out, func(a, b Segment) int {
		return cmp.Or(cmp.Compare(a.First, b.First), cmp.Compare(a.Last, b.Last), cmp.Compare(a.Path, b.Path))
	})
	return out, nil
}

// NodeLast is node's segment in dir with the highest last seq, of any
// cluster id (ok false: none): where node's archiver resumes, once it has
// checked the segment is of its own history.
func NodeLast(dir, node string) (last Segment, ok bool, err error) {
	segs, err := List(dir)
	if err != nil {
		return Segment{}, false, err
	}
	for _, s := range segs {
		if s.Node == node && (!ok || s.Last > last.Last) {
			last, ok = s, true
		}
	}
	return last, ok, nil
}

// MixedError is two segments of different cluster ids: two histories
// (a restored cluster has a new cluster id) in the archive directories
// given.
type MixedError struct{ A, B Segment }

func (e *MixedError) Error() string {
	return fmt.Sprintf("the archive holds two histories: %s is of cluster %s, %s of cluster %s (a restored cluster archiving into its source's directory?): give only the directories of one cluster, or move the other cluster's segments away", e.A.Path, FormatCluster(e.A.Cluster), e.B.Path, FormatCluster(e.B.Cluster))
}

// OneCluster checks segs are all of one cluster id (a *MixedError if not)
// and returns it (0 when segs is empty).
func OneCluster(segs []Segment) (uint64, error) {
	for _, s := range segs[min(1, len(segs)):] {
		if s.Cluster != segs[0].Cluster {
			return 0, &MixedError{A: segs[0], B: s}
		}
	}
	if len(segs) == 0 {
		return 0, nil
	}
	return segs[0].Cluster, nil
}

// ErrStop, returned by a Walk callback, ends the walk without error.
var ErrStop = errors.New("archive: stop")

// GapError is a hole in the archive: no segment holds seqs From..To.
// Before and After are the files around it.
type GapError struct {
	From, To      core.Seq
	Before, After string
}

func (e *GapError) Error() string {
	before := e.Before
	if before == "" {
		before = "(none)"
	}
	return fmt.Sprintf("the archive has a gap: no segment holds seqs %d..%d (the segment before it is %s, the one after %s): add the archive directory of another node that holds them (every data node archives the whole log), or restore to a point before seq %d", e.From, e.To, before, e.After, e.From)
}

// EndError says the archive ends before the seq asked for.
type EndError struct {
	Last core.Seq // the archive's last seq (contiguous from the start)
	Want core.Seq
	File string // the segment holding Last
}

func (e *EndError) Error() string {
	return fmt.Sprintf("the archive ends at seq %d (%s), before the seq %d asked for: pick a seq at or below %d, or add the archive directory of a node that holds more", e.Last, orNone(e.File), e.Want, e.Last)
}

func orNone(s string) string {
	if s == "" {
		return "no segment"
	}
	return s
}

// WalkResult is how far a Walk went.
type WalkResult struct {
	// Last is the last seq passed to the callback (from-1 if none).
	Last core.Seq
	// Files is how many segment files were read.
	Files int
}

// Walk reads the segments segs (sorted as List returns them) and calls fn
// once for each seq from from on, in order, with the entry and the file it
// came from, up to to (0: as far as the archive is contiguous). Segments
// that overlap must agree on every seq they share (same epoch, type,
// durability and payload); a disagreement is an error naming both files
// and the seq. A hole before to is a *GapError, when the archive ends
// before to an *EndError; with to == 0, a hole followed by more segments
// is a *GapError too (fn has then seen everything before it). fn returning
// ErrStop ends the walk without error. Segments of more than one cluster
// id are refused (a *MixedError), before anything is read.
//
// Memory is bounded: only the entries of the segment being read and the
// last MaxSegmentEntries passed to fn (to compare overlaps) are held.
func Walk(segs []Segment, from, to core.Seq, fn func(e core.Entry, file string) error) (WalkResult, error) {
	if from == 0 {
		from = 1
	}
	res := WalkResult{Last: from - 1}
	if _, err := OneCluster(segs); err != nil {
		return res, err
	}
	cur := from
	// win holds the entries passed to fn from winStart on, and their files.
	var win []core.Entry
	var winFile []string
	winStart := from
	prevFile := ""
	for _, s := range segs {
		if s.Last < from {
			prevFile = s.Path // the segment before a gap at from
			continue
		}
		if to != 0 && cur > to {
			break
		}
		if s.First > cur {
			return res, &GapError{From: cur, To: s.First - 1, Before: prevFile, After: s.Path}
		}
		// Forget the entries no later segment can overlap (they start at or
		// after s.First).
		if drop := int(min(s.First, cur) - winStart); drop > 0 && s.First > winStart {
			drop = min(drop, len(win))
			win, winFile = win[drop:], winFile[drop:]
			winStart += core.Seq(drop)
		}
		hdr, es, err := ReadFile(s.Path)
		if err != nil {
			return res, err
		}
		if hdr.First != s.First || hdr.Last != s.Last || hdr.Cluster != s.Cluster {
			return res, fmt.Errorf("archive segment %s: its header says seqs %d..%d of cluster %s, its name %d..%d of cluster %s", s.Path, hdr.First, hdr.Last, FormatCluster(hdr.Cluster), s.First, s.Last, FormatCluster(s.Cluster))
		}
		res.Files++
		for _, e := range es {
			q := e.Pos.Seq
			if q < from || (to != 0 && q > to) {
				continue
			}
			if q < cur {
				if q >= winStart && int(q-winStart) < len(win) {
					if o := win[q-winStart]; !sameEntry(o, e) {
						return res, fmt.Errorf("the archive disagrees with itself at seq %d: %s holds %d:%d (%s), %s holds %d:%d (%s), not the same entry: the two files are from different histories (another cluster's archive in the same directory?); remove the wrong one", q, winFile[q-winStart], o.Pos.Epoch, o.Pos.Seq, o.Type, s.Path, e.Pos.Epoch, e.Pos.Seq, e.Type)
					}
				}
				continue
			}
			if err := fn(e, s.Path); err != nil {
				if errors.Is(err, ErrStop) {
					return res, nil
				}
				return res, err
			}
			win, winFile = append(win, e), append(winFile, s.Path)
			if len(win) > 2*MaxSegmentEntries {
				n := len(win) - MaxSegmentEntries
				win, winFile = slices.Clone(win[n:]), slices.Clone(winFile[n:])
				winStart += core.Seq(n)
			}
			res.Last, cur = q, q+1
		}
		prevFile = s.Path
	}
	if to != 0 && cur <= to {
		return res, &EndError{Last: cur - 1, Want: to, File: prevFile}
	}
	return res, nil
}

func sameEntry(a, b core.Entry) bool {
	return a.Pos == b.Pos && a.Type == b.Type && a.Durability == b.Durability && string(a.Payload) == string(b.Payload)
}
