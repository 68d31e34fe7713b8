// Package archive is MuninnDB's log archive (docs/backup.md, "Continuous
// archiving"): the committed log entries of a data node, written in
// segment files as PostgreSQL archives its WAL, and read back by
// `muninn restore --archive` to replay a backup forward to a point in time.
//
// A segment file is named FIRST-LAST.NODE.mseg (FIRST and LAST the 19-digit
// seqs of its first and last entry, NODE the node that wrote it), so that
// the names sort by first seq and two nodes can share one directory. It
// holds, big-endian:
//
//	header:  magic "MUNSEG\r\n" (8), version (2), node id length (2), node id,
//	         first seq (8), last seq (8), entry count (4), CRC-32C of the header (4)
//	entries: seq (8), epoch (8), type (1), durability (1), payload length (4),
//	         payload, CRC-32C of the entry's bytes before it (4)
//
// and nothing after the last entry. Entries are contiguous: first..last,
// count = last - first + 1, epochs never decrease.
package archive

import (
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"

	"github.com/muninndb/muninn/core"
)

// Version is the segment format version this binary writes and reads.
const Version = 1

// Ext is a segment file's extension.
const Ext = ".mseg"

// magic opens every segment file.
const magic = "MUNSEG\r\n"

// Limits: a writer stays below them, a reader refuses anything above.
const (
	// MaxSegmentEntries bounds the entries of one segment.
	MaxSegmentEntries = 65536
	// TargetSegmentBytes is where a writer cuts a segment: it adds no
	// entry once the segment holds this much.
	TargetSegmentBytes = 16 << 20
	// MaxPayload bounds one entry's payload (one write's command).
	MaxPayload = core.MaxPayload
	// MaxSegmentBytes is the largest segment file a reader accepts:
	// TargetSegmentBytes plus one largest entry, with room.
	MaxSegmentBytes = TargetSegmentBytes + 2*MaxPayload + 1<<20
	// MaxNodeIDLen bounds the node id in a header.
	MaxNodeIDLen = 255
)

// seqDigits is the width of the seqs in a segment file's name.
const seqDigits = 19

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Segment names one segment file.
type Segment struct {
	First, Last core.Seq
	Node        string
	// Path is the file's path (its directory joined with its name).
	Path string
}

// Name is the segment's file name.
func (s Segment) Name() string { return SegmentName(s.First, s.Last, s.Node) }

// SegmentName is the file name of node's segment of first..last.
func SegmentName(first, last core.Seq, node string) string {
	return fmt.Sprintf("%0*d-%0*d.%s%s", seqDigits, uint64(first), seqDigits, uint64(last), node, Ext)
}

// ParseName reads a segment file name; ok is false for any other name
// (temporary files, other files in the directory).
func ParseName(name string) (s Segment, ok bool) {
	if !strings.HasSuffix(name, Ext) || len(name) < 2*seqDigits+3+len(Ext) {
		return Segment{}, false
	}
	body := strings.TrimSuffix(name, Ext)
	if body[seqDigits] != '-' || body[2*seqDigits+1] != '.' {
		return Segment{}, false
	}
	first, err1 := strconv.ParseUint(body[:seqDigits], 10, 64)
	last, err2 := strconv.ParseUint(body[seqDigits+1:2*seqDigits+1], 10, 64)
	node := body[2*seqDigits+2:]
	if err1 != nil || err2 != nil || node == "" || len(node) > MaxNodeIDLen || first == 0 || last < first {
		return Segment{}, false
	}
	return Segment{First: core.Seq(first), Last: core.Seq(last), Node: node}, true
}
