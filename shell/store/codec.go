package store

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/muninndb/muninn/core"
)

func encodePos(p core.Pos) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(p.Epoch))
	return binary.BigEndian.AppendUint64(b, uint64(p.Seq))
}

func decodePos(b []byte) (core.Pos, error) {
	if len(b) != 16 {
		return core.Pos{}, fmt.Errorf("position: %d bytes, want 16", len(b))
	}
	return core.Pos{Epoch: core.Epoch(binary.BigEndian.Uint64(b)), Seq: core.Seq(binary.BigEndian.Uint64(b[8:]))}, nil
}

// encodeHardState: epoch(8) commit(16) vote, then, when the vote records
// the candidate's store (rule 16), 0x00 and the store(8). A node id never
// holds a 0x00, so a hard state written before the store was recorded
// reads the same.
func encodeHardState(hs core.HardState) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(hs.Epoch))
	b = append(b, encodePos(hs.Commit)...)
	b = append(b, hs.Vote...)
	if hs.VoteStore != 0 {
		b = append(b, 0)
		b = binary.BigEndian.AppendUint64(b, hs.VoteStore)
	}
	return b
}

func decodeHardState(b []byte) (core.HardState, error) {
	if len(b) < 24 || len(b)-24 > core.MaxNodeIDLen+9 {
		return core.HardState{}, fmt.Errorf("meta hardstate: %d bytes is malformed", len(b))
	}
	c, _ := decodePos(b[8:24])
	hs := core.HardState{Epoch: core.Epoch(binary.BigEndian.Uint64(b)), Commit: c}
	vote := b[24:]
	if i := bytes.IndexByte(vote, 0); i >= 0 {
		if len(vote)-i != 9 {
			return core.HardState{}, fmt.Errorf("meta hardstate: the vote's store is %d bytes, not 8", len(vote)-i-1)
		}
		hs.VoteStore = binary.BigEndian.Uint64(vote[i+1:])
		vote = vote[:i]
	}
	if len(vote) > core.MaxNodeIDLen {
		return core.HardState{}, fmt.Errorf("meta hardstate: a %d-byte vote is malformed", len(vote))
	}
	hs.Vote = core.NodeID(vote)
	return hs, nil
}

// encodeEntry: epoch(8) type(1) durability(1) payload. The seq is the key.
func encodeEntry(e core.Entry) []byte {
	b := make([]byte, 0, 10+len(e.Payload))
	b = binary.BigEndian.AppendUint64(b, uint64(e.Pos.Epoch))
	b = append(b, byte(e.Type), byte(e.Durability))
	return append(b, e.Payload...)
}

func decodeEntry(key, val []byte) (core.Entry, error) {
	if len(key) != 9 || key[0] != spaceLog {
		return core.Entry{}, fmt.Errorf("log: malformed key %x", key)
	}
	seq := core.Seq(binary.BigEndian.Uint64(key[1:]))
	if len(val) < 10 {
		return core.Entry{}, fmt.Errorf("log entry %d: %d bytes is truncated", seq, len(val))
	}
	e := core.Entry{
		Pos:        core.Pos{Epoch: core.Epoch(binary.BigEndian.Uint64(val)), Seq: seq},
		Type:       core.EntryType(val[8]),
		Durability: core.Durability(val[9]),
	}
	if e.Type > core.EntryMembership {
		return core.Entry{}, fmt.Errorf("log entry %s: unknown type %d", e.Pos, val[8])
	}
	if len(val) > 10 {
		e.Payload = append([]byte(nil), val[10:]...)
	}
	return e, nil
}

func encodeEpoch(e core.Epoch) []byte { return binary.BigEndian.AppendUint64(nil, uint64(e)) }
