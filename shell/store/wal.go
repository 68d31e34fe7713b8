package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/record"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/wal"
)

// pebbleFormat is the Pebble format the store runs at (an existing store is
// upgraded on open). FormatWALSyncChunks is the first whose WAL chunks
// carry the offset the log was synced to when they were written: with it a
// damaged chunk followed by a chunk promising a sync past it is known to be
// corruption, not a torn tail. At older formats Pebble's recovery cannot
// tell them apart and silently drops everything after the first bad chunk
// of the newest WAL. A variable so that tests can create older stores.
var pebbleFormat = pebble.FormatWALSyncChunks

// checkWAL reads every write-ahead log in dir the way Pebble's recovery
// will, before Pebble opens it, and refuses a log whose damage is followed
// by records that were written, and synced, after it. Pebble would replay
// the log up to the damage and drop the rest without a word: the store
// would start without writes it acknowledged.
//
// A torn tail — the last record of the newest log cut short by a crash
// mid-write, or blocks after it never written — is normal and passes: what
// it held was never acknowledged. The two are told apart as Pebble tells
// them apart: a chunk written at FormatWALSyncChunks or later records how
// far the log was synced when it was written, so a valid chunk after the
// damage that promises a sync beyond it proves the damaged bytes had been
// synced (record.ErrInvalidChunk, ErrZeroedChunk). What Pebble's reader
// leaves undecided gets a second look (laterRecord): the rest of the
// damaged block, and logs written before the store was upgraded, which
// carry no sync offsets.
func checkWAL(fs vfs.FS, dir string) error {
	logs, err := wal.Scan(wal.Dir{FS: fs, Dirname: dir})
	if err != nil {
		return fmt.Errorf("store %s: listing the write-ahead logs: %w", dir, err)
	}
	for _, ll := range logs {
		if err := checkLog(fs, dir, ll); err != nil {
			return err
		}
	}
	return nil
}

func checkLog(fs vfs.FS, dir string, ll wal.LogicalLog) error {
	r := ll.OpenForRead()
	defer r.Close()
	for {
		rec, off, err := r.NextRecord()
		if err == nil {
			_, err = io.Copy(io.Discard, rec)
		}
		switch {
		case err == nil:
			continue
		case errors.Is(err, io.EOF):
			return nil
		case errors.Is(err, record.ErrInvalidChunk), errors.Is(err, record.ErrZeroedChunk), pebble.IsCorruptionError(err):
			return walDamaged(fs, dir, off.PhysicalFile, off.Physical, err, "records written and synced after it follow")
		case errors.Is(err, record.ErrUnexpectedEOF):
			// What Pebble replays as a torn tail: look again.
			at, err := laterRecord(fs, off.PhysicalFile, uint32(ll.Num), off.Physical)
			if err != nil {
				return fmt.Errorf("store %s: reading the write-ahead log %s: %w", dir, fs.PathBase(off.PhysicalFile), err)
			}
			if at >= 0 {
				return walDamaged(fs, dir, off.PhysicalFile, off.Physical, record.ErrInvalidChunk,
					fmt.Sprintf("an intact record written after it follows at offset %d", at))
			}
			return nil
		default:
			name := fs.PathBase(off.PhysicalFile)
			if name == "." {
				name = ll.String()
			}
			return fmt.Errorf("store %s: reading the write-ahead log %s: %w", dir, name, err)
		}
	}
}

func walDamaged(fs vfs.FS, dir, file string, offset int64, err error, why string) error {
	return fmt.Errorf("store %s: the write-ahead log %s is damaged at offset %d (%v), and %s: starting would silently drop writes this node acknowledged, so it refuses to start. "+
		"Restore this node: move its data directory aside and start it empty, so that it rejoins the cluster as a fresh member (a Lobe, or an Observer if it was one) and copies the data from the Cortex (docs/storage.md, \"Damage\")",
		dir, fs.PathBase(file), offset, err, why)
}

// Pebble's WAL chunk format (pebble/v2/record): 32 KiB blocks of chunks,
// each chunk a header — checksum(4) length(2) type(1), then for the
// recyclable types (5-8) the log number(4), for the sync-offset types
// (9-12) also the offset the log was synced to when it was written(8) —
// and its payload. A chunk never straddles a block. The checksum covers
// the header from the type on, and the payload.
const (
	walBlockSize     = 32 << 10
	walRecycleHeader = 11
	walSyncHeader    = 19
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// walChecksum is the masked CRC-32C that Pebble's record format uses.
func walChecksum(b []byte) uint32 {
	c := crc32.Checksum(b, castagnoli)
	return (c>>15 | c<<17) + 0xa282ead8
}

// laterRecord looks, in a log the reader stopped in with ErrUnexpectedEOF
// (what Pebble replays as a torn tail), for proof that the record at from
// was not the tail: an intact chunk of this same log after it that either
// promises a sync beyond from (the sync-offset format: Pebble's reader
// checks only the blocks after the damaged one, this also checks the rest
// of that block), or, in a log of the recyclable format written before
// the store was upgraded (no sync offsets), starts a new record. A crash
// mid-write tears the last record only: its own later chunks continue it
// (middle and last chunks), and nothing after it was synced. It returns
// the proof's offset, or -1.
//
// The scan tries every offset, since the damage may have hit a chunk's
// length; a chunk counts only with a known type, this log's number and a
// matching CRC-32C, which random bytes pass with odds of about 2^-32.
func laterRecord(fs vfs.FS, path string, logNum uint32, from int64) (int64, error) {
	buf, err := readFile(fs, path)
	if err != nil {
		return -1, err
	}
	for o := from + 1; o+walRecycleHeader <= int64(len(buf)); o++ {
		typ := buf[o+6]
		var header int64
		switch typ {
		case 5, 6: // recyclable full, first
			header = walRecycleHeader
		case 9, 10, 11, 12: // sync-offset full, first, middle, last
			header = walSyncHeader
		default:
			continue
		}
		blockEnd := (o/walBlockSize + 1) * walBlockSize
		end := o + header + int64(binary.LittleEndian.Uint16(buf[o+4:]))
		if end > blockEnd || end > int64(len(buf)) || binary.LittleEndian.Uint32(buf[o+7:]) != logNum {
			continue
		}
		if walChecksum(buf[o+6:end]) != binary.LittleEndian.Uint32(buf[o:]) {
			continue
		}
		if header == walSyncHeader && int64(binary.LittleEndian.Uint64(buf[o+11:])) <= from {
			continue
		}
		return o, nil
	}
	return -1, nil
}
