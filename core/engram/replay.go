package engram

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/muninndb/muninn/core"
)

// Replays from the quarantine are conditional writes (docs/api.md,
// "Replaying a quarantined write"). A quarantined entry was applied on a
// deposed Cortex on top of some state: its base, the values its command
// read and changed, as its undo record kept them. Replaying it is applying
// the same command again, but only if every one of those keys still holds
// its base value; otherwise someone wrote the engram meanwhile, and the
// replay is refused (a no-op entry everywhere) so newer data is never
// overwritten. The replay names the quarantined entry it consumes: every
// node that applies it drops that entry from its quarantine in the same
// batch, so an entry is replayed at most once.

// Precondition is the base a replay requires: per key, whether it existed
// and the SHA-256 of its value.
type Precondition struct {
	Keys []BaseKey
}

// BaseKey is one key of a Precondition.
type BaseKey struct {
	Key     []byte
	Existed bool
	Sum     [sha256.Size]byte
}

// MaxBaseKeys bounds a decoded Precondition.
const MaxBaseKeys = 16

// PreconditionOf is the base an applied entry's undo record describes.
func PreconditionOf(u Undo) *Precondition {
	p := &Precondition{}
	for _, k := range u.Keys {
		b := BaseKey{Key: bytes.Clone(k.Key), Existed: k.Existed}
		if k.Existed {
			b.Sum = sha256.Sum256(k.Val)
		}
		p.Keys = append(p.Keys, b)
	}
	return p
}

// holds checks the precondition against kv, naming the first key that
// changed.
func (p *Precondition) holds(kv KV) (bool, string, error) {
	for _, k := range p.Keys {
		v, ok, err := kv.Get(k.Key)
		if err != nil {
			return false, "", err
		}
		if ok != k.Existed || ok && sha256.Sum256(v) != k.Sum {
			return false, describeKey(k.Key), nil
		}
	}
	return true, "", nil
}

func describeKey(k []byte) string {
	if len(k) > 0 && k[0] == DataPrefix {
		if i := bytes.IndexByte(k, sepEngram); i > 0 {
			return fmt.Sprintf("engram %s/%s", k[1:i], k[i+1:])
		}
		return fmt.Sprintf("the state of vault %s", k[1:])
	}
	return fmt.Sprintf("key %x", k)
}

// Encoding of a replay's trailer, after the command (command version 2):
// key count, per key: key, existed byte, 32-byte sum if it existed; then
// the consumed entry's position (uvarint epoch, uvarint seq).
func appendReplay(b []byte, p *Precondition, consumes core.Pos) []byte {
	b = binary.AppendUvarint(b, uint64(len(p.Keys)))
	for _, k := range p.Keys {
		b = appendString(b, string(k.Key))
		if !k.Existed {
			b = append(b, 0)
			continue
		}
		b = append(b, 1)
		b = append(b, k.Sum[:]...)
	}
	b = binary.AppendUvarint(b, uint64(consumes.Epoch))
	return binary.AppendUvarint(b, uint64(consumes.Seq))
}

func (d *decoder) replay() (*Precondition, core.Pos) {
	p := &Precondition{}
	n := d.uvarint("base keys", MaxBaseKeys)
	for i := uint64(0); i < n && d.err == nil; i++ {
		k := BaseKey{Key: []byte(d.string("base key", 1024))}
		switch d.byte("base existed") {
		case 0:
		case 1:
			k.Existed = true
			if d.err == nil && len(d.b) < sha256.Size {
				d.fail("base sum", "truncated")
			} else if d.err == nil {
				copy(k.Sum[:], d.b)
				d.b = d.b[sha256.Size:]
			}
		default:
			d.fail("base existed", "not 0 or 1")
		}
		p.Keys = append(p.Keys, k)
	}
	e := d.uvarint("consumes epoch", 1<<62)
	s := d.uvarint("consumes seq", 1<<62)
	if d.err == nil && s == 0 {
		d.fail("consumes", "a replay names the quarantined entry it consumes")
	}
	return p, core.Pos{Epoch: core.Epoch(e), Seq: core.Seq(s)}
}

// ReplayConsumes tells the store which quarantined entry a data entry's
// command consumes, without decoding ordinary commands.
func ReplayConsumes(payload []byte) (core.Pos, bool) {
	if len(payload) == 0 || payload[0] != replayVersion {
		return core.Pos{}, false
	}
	c, err := DecodeCommand(payload)
	if err != nil || c.If == nil {
		return core.Pos{}, false
	}
	return c.Consumes, true
}

// EncodePrecondition encodes p for keeping beside a quarantined entry.
func EncodePrecondition(p *Precondition) []byte {
	return appendReplay(nil, p, core.Pos{Seq: 1})
}

// DecodePrecondition decodes EncodePrecondition's output.
func DecodePrecondition(b []byte) (*Precondition, error) {
	d := decoder{b: b, what: "replay base"}
	p, _ := d.replay()
	if err := d.finish(); err != nil {
		return nil, err
	}
	return p, nil
}
