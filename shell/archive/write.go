package archive

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/muninndb/muninn/core"
)

// Encode is the segment file of node's entries, of the log of a store of
// cluster id cluster (0: none), which must be contiguous, non-empty, at
// most MaxSegmentEntries, each payload at most MaxPayload.
func Encode(node string, cluster uint64, es []core.Entry) ([]byte, error) {
	if err := checkNode(node); err != nil {
		return nil, err
	}
	if len(es) == 0 || len(es) > MaxSegmentEntries {
		return nil, fmt.Errorf("archive: a segment holds 1 to %d entries, not %d", MaxSegmentEntries, len(es))
	}
	size := len(magic) + 4 + len(node) + 32
	for i, e := range es {
		if i > 0 && (e.Pos.Seq != es[i-1].Pos.Seq+1 || e.Pos.Epoch < es[i-1].Pos.Epoch) {
			return nil, fmt.Errorf("archive: entry %s does not follow %s", e.Pos, es[i-1].Pos)
		}
		if len(e.Payload) > MaxPayload {
			return nil, fmt.Errorf("archive: entry %s: payload of %d bytes is above the %d-byte limit", e.Pos, len(e.Payload), MaxPayload)
		}
		size += 26 + len(e.Payload)
	}
	if es[0].Pos.Seq == 0 {
		return nil, errors.New("archive: entries start at seq 1")
	}
	b := make([]byte, 0, size)
	b = append(b, magic...)
	b = binary.BigEndian.AppendUint16(b, Version)
	b = binary.BigEndian.AppendUint16(b, uint16(len(node)))
	b = append(b, node...)
	b = binary.BigEndian.AppendUint64(b, cluster)
	b = binary.BigEndian.AppendUint64(b, uint64(es[0].Pos.Seq))
	b = binary.BigEndian.AppendUint64(b, uint64(es[len(es)-1].Pos.Seq))
	b = binary.BigEndian.AppendUint32(b, uint32(len(es)))
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
	for _, e := range es {
		start := len(b)
		b = binary.BigEndian.AppendUint64(b, uint64(e.Pos.Seq))
		b = binary.BigEndian.AppendUint64(b, uint64(e.Pos.Epoch))
		b = append(b, byte(e.Type), byte(e.Durability))
		b = binary.BigEndian.AppendUint32(b, uint32(len(e.Payload)))
		b = append(b, e.Payload...)
		b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], crcTable))
	}
	return b, nil
}

// Write writes node's entries (of a store of cluster id cluster) as one
// segment file in dir: to a temporary
// name, fsynced, renamed into place, the directory fsynced. A segment
// already there under the same name is refused (an archive is never
// rewritten).
func Write(dir, node string, cluster uint64, es []core.Entry) (Segment, error) {
	b, err := Encode(node, cluster, es)
	if err != nil {
		return Segment{}, err
	}
	s := Segment{First: es[0].Pos.Seq, Last: es[len(es)-1].Pos.Seq, Node: node, Cluster: cluster}
	s.Path = filepath.Join(dir, s.Name())
	if _, err := os.Lstat(s.Path); err == nil {
		return s, fmt.Errorf("archive segment %s exists already: an archive is never rewritten (two nodes with the id %q writing to one directory?)", s.Path, node)
	}
	tmp := filepath.Join(dir, TempPrefix(node)+strconv.FormatUint(uint64(s.First), 10)+"-"+strconv.Itoa(os.Getpid()))
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return s, err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.Path)
	}
	if err != nil {
		os.Remove(tmp)
		return s, err
	}
	return s, syncDir(dir)
}

// TempPrefix starts the names of node's temporary segment files (hidden:
// readers skip names starting with a dot). A crash may leave one; the
// node's archiver removes its own at start (RemoveTemp).
func TempPrefix(node string) string { return "." + node + ".mseg-tmp-" }

// RemoveTemp removes node's temporary segment files from dir.
func RemoveTemp(dir, node string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), TempPrefix(node)) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkNode(node string) error {
	if node == "" || len(node) > MaxNodeIDLen || strings.ContainsAny(node, "/\\\x00") || node[0] == '.' {
		return fmt.Errorf("archive: node id %q cannot name a segment file", node)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
