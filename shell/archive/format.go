// Package archive is MuninnDB's log archive (docs/backup.md, "Continuous
// archiving"): the committed log entries of a data node, written in
// segment files as PostgreSQL archives its WAL, and read back by
// `muninn restore --archive` to replay a backup forward to a point in time.
//
// A segment file is named FIRST-LAST.CLUSTER.NODE.mseg (FIRST and LAST the
// 19-digit seqs of its first and last entry, CLUSTER the 16 hex digits of
// the cluster id of the store that wrote it, 0000000000000000 for none,
// NODE the node that wrote it), so that the names sort by first seq, two
// nodes can share one directory, and two histories (a restored cluster
// has a new cluster id) are told apart by name. It holds, big-endian:
//
//	header:  magic "MUNSEG\r\n" (8), version (2), node id length (2), node id,
//	         cluster id (8), first seq (8), last seq (8), entry count (4),
//	         CRC-32C of the header (4)
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
	// Cluster is the cluster id of the store whose log it holds (0: none).
	Cluster uint64
	// Path is the file's path (its directory joined with its name).
	Path string
}

// Name is the segment's file name.
func (s Segment) Name() string { return SegmentName(s.First, s.Last, s.Cluster, s.Node) }

// SegmentName is the file name of node's segment of first..last, written
// for cluster id cluster.
func SegmentName(first, last core.Seq, cluster uint64, node string) string {
	return fmt.Sprintf("%0*d-%0*d.%016x.%s%s", seqDigits, uint64(first), seqDigits, uint64(last), cluster, node, Ext)
}

// FormatCluster is how a segment names a cluster id: 16 hex digits.
func FormatCluster(id uint64) string { return fmt.Sprintf("%016x", id) }

// ParseName reads a segment file name; ok is false for any other name
// (temporary files, other files in the directory).
func ParseName(name string) (s Segment, ok bool) {
	const nodeAt = 2*seqDigits + 2 + 16 + 1
	if !strings.HasSuffix(name, Ext) || len(name) < nodeAt+1+len(Ext) {
		return Segment{}, false
	}
	body := strings.TrimSuffix(name, Ext)
	if body[seqDigits] != '-' || body[2*seqDigits+1] != '.' || body[nodeAt-1] != '.' {
		return Segment{}, false
	}
	first, err1 := strconv.ParseUint(body[:seqDigits], 10, 64)
	last, err2 := strconv.ParseUint(body[seqDigits+1:2*seqDigits+1], 10, 64)
	cluster, err3 := strconv.ParseUint(body[2*seqDigits+2:nodeAt-1], 16, 64)
	node := body[nodeAt:]
	if err1 != nil || err2 != nil || err3 != nil || node == "" || len(node) > MaxNodeIDLen || first == 0 || last < first {
		return Segment{}, false
	}
	return Segment{First: core.Seq(first), Last: core.Seq(last), Node: node, Cluster: cluster}, true
}
