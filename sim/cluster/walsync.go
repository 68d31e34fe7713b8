package cluster

import (
	"encoding/binary"
	"os"
)

// Pebble's WAL chunk layout (pebble/v2/record), as shell/store/wal.go
// reads it: 32 KiB blocks of chunks that never straddle a block. A chunk
// is checksum(4) length(2) type(1) log number(4), then for the
// sync-offset types (9-12) the offset the log was synced to when it was
// written(8), then its payload. Types 5/9 are full records, 6/10 a
// record's first chunk, 7/11 middle, 8/12 last.
const (
	walBlock         = 32 << 10
	walRecycleHeader = 11
	walSyncHeader    = 19
)

// walProvenTo returns how far damage to the log at path is provably
// damage, not a torn tail: below the highest offset a chunk records as
// synced (sync-offset chunks), or below the start of the last record
// (the older recyclable chunks carry no sync offset, and the store takes
// a later intact record as the proof). The store must refuse damage
// below it and rightly accepts damage above it, in the last, unsynced
// record. The corrupt-wal nemesis aims below it: aiming at the middle of
// a small new log, which could be its last record, made the nemesis
// report a correct store as accepting damage. 0 when nothing is proven.
func walProvenTo(path string) (int64, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var proven int64
	for o := int64(0); o+walRecycleHeader <= int64(len(buf)); {
		blockEnd := (o/walBlock + 1) * walBlock
		typ := buf[o+6]
		header := int64(walRecycleHeader)
		switch {
		case typ >= 9 && typ <= 12:
			header = walSyncHeader
		case typ >= 5 && typ <= 8:
		default:
			// Padding, zeroes or foreign: no chunk the writer finished
			// starts here; go on with the next block.
			o = blockEnd
			continue
		}
		end := o + header + int64(binary.LittleEndian.Uint16(buf[o+4:]))
		if end > blockEnd || end > int64(len(buf)) {
			o = blockEnd
			continue
		}
		if header == walSyncHeader {
			proven = max(proven, int64(binary.LittleEndian.Uint64(buf[o+11:])))
		} else if typ == 5 || typ == 6 {
			proven = max(proven, o) // a record starts here
		}
		o = end
	}
	return min(proven, int64(len(buf))), nil
}
