package engram

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/muninndb/muninn/core"
)

// RejectError is a deterministic refusal of a command at apply time: the
// command is malformed, or the state does not allow it (the id exists, the
// engram is missing or forgotten). Every replica refuses it the same way, so
// the entry stays in the log as a no-op and the KV is untouched. Any other
// error from Apply is an I/O error of the KV and is fatal to the batch.
type RejectError struct {
	Pos core.Pos
	Op  Op
	Msg string
}

func (e *RejectError) Error() string {
	if e.Op == 0 {
		return fmt.Sprintf("entry %s: %s", e.Pos, e.Msg)
	}
	return fmt.Sprintf("entry %s: %s: %s", e.Pos, e.Op, e.Msg)
}

// IsReject reports whether err is a *RejectError.
func IsReject(err error) bool {
	var r *RejectError
	return errors.As(err, &r)
}

// Undo holds what rolls one applied entry back: the previous value of every
// key it touched, in the order they were first touched. Every command touches
// at most one key (a Decay touches only the vault's scale), so an undo record
// is one key and one old value: small and bounded whatever the vault's size.
type Undo struct {
	Keys []UndoKey
}

// UndoKey is one key's value before an entry was applied.
type UndoKey struct {
	Key     []byte
	Existed bool
	Val     []byte // when Existed
}

// Empty reports whether u restores nothing (a rejected or non-data entry).
func (u Undo) Empty() bool { return len(u.Keys) == 0 }

// record saves key's current value, once per key.
func (u *Undo) record(kv KV, key []byte) error {
	for _, k := range u.Keys {
		if bytes.Equal(k.Key, key) {
			return nil
		}
	}
	v, ok, err := kv.Get(key)
	if err != nil {
		return err
	}
	u.Keys = append(u.Keys, UndoKey{Key: bytes.Clone(key), Existed: ok, Val: bytes.Clone(v)})
	return nil
}

// Rollback restores the values saved in u, undoing the entry it was made for.
// Entries must be rolled back newest first.
func Rollback(kv KV, u Undo) error {
	for i := len(u.Keys) - 1; i >= 0; i-- {
		k := u.Keys[i]
		var err error
		if k.Existed {
			err = kv.Set(k.Key, k.Val)
		} else {
			err = kv.Delete(k.Key)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// EncodeUndo encodes u for storage: count, then per key: key, existed, value.
func EncodeUndo(u Undo) []byte {
	b := binary.AppendUvarint(nil, uint64(len(u.Keys)))
	for _, k := range u.Keys {
		b = binary.AppendUvarint(b, uint64(len(k.Key)))
		b = append(b, k.Key...)
		if !k.Existed {
			b = append(b, 0)
			continue
		}
		b = append(b, 1)
		b = binary.AppendUvarint(b, uint64(len(k.Val)))
		b = append(b, k.Val...)
	}
	return b
}

// DecodeUndo decodes EncodeUndo's output.
func DecodeUndo(b []byte) (Undo, error) {
	d := decoder{b: b, what: "undo record"}
	n := d.uvarint("keys", 1<<16)
	var u Undo
	for i := uint64(0); i < n && d.err == nil; i++ {
		var k UndoKey
		k.Key = []byte(d.string("key", 1<<16))
		k.Existed = d.byte("existed") == 1
		if k.Existed {
			k.Val = []byte(d.string("value", 2*MaxCommand))
		}
		u.Keys = append(u.Keys, k)
	}
	if err := d.finish(); err != nil {
		return Undo{}, err
	}
	return u, nil
}

// Apply applies the command cmd of the data entry at pos to kv and returns
// the Undo that rolls it back (docs/protocol.md, rule 9: entries are applied on receipt
// and may be rolled back while above the commit point). The result depends
// only on kv's contents and cmd. A *RejectError means the command was refused
// deterministically and kv is unchanged; other errors come from kv.
func Apply(kv KV, pos core.Pos, cmd []byte) (Undo, error) {
	c, err := DecodeCommand(cmd)
	if err != nil {
		return Undo{}, &RejectError{Pos: pos, Msg: err.Error()}
	}
	return ApplyCommand(kv, pos, c)
}

// ApplyCommand is Apply for a decoded, validated command.
func ApplyCommand(kv KV, pos core.Pos, c Command) (Undo, error) {
	reject := func(format string, args ...any) (Undo, error) {
		return Undo{}, &RejectError{Pos: pos, Op: c.Op, Msg: fmt.Sprintf(format, args...)}
	}
	if c.If != nil {
		ok, changed, err := c.If.holds(kv)
		if err != nil {
			return Undo{}, err
		}
		if !ok {
			return reject("replay of quarantined entry %s refused: %s changed since that entry was written, so applying it would overwrite newer data; the entry stays quarantined (export it, merge by hand, then drop it)", c.Consumes, changed)
		}
	}
	var u Undo
	if c.Op == OpDecay || c.Op == OpDecayAll {
		key := vaultKey(c.Vault)
		if c.Op == OpDecayAll {
			key = globalKey
		}
		s, err := loadRawScale(kv, key)
		if err != nil {
			return Undo{}, err
		}
		if err := u.record(kv, key); err != nil {
			return Undo{}, err
		}
		return u, kv.Set(key, encodeScale(s.mul(c.Factor)))
	}
	key := EngramKey(c.Vault, c.ID)
	old, was, err := loadRecordKey(kv, c.Vault, c.ID, key)
	if err != nil {
		return Undo{}, err
	}
	var r *record
	switch c.Op {
	case OpWrite:
		// A forgotten engram's id may be written again: the new engram
		// replaces the tombstone (docs/api.md: ids are reusable after
		// DELETE). A live one is never overwritten by a create.
		if old != nil && !old.Deleted {
			return reject("engram %s/%s already exists", c.Vault, c.ID)
		}
		s, err := loadScale(kv, c.Vault)
		if err != nil {
			return Undo{}, err
		}
		r = &record{Engram: Engram{
			ID: c.ID, Vault: c.Vault, Concept: c.Concept, Content: c.Content,
			Tags: c.Tags, Confidence: c.Confidence, CreatedAt: c.At, UpdatedAt: c.At,
			Activation: 1,
		}, at: s}
	case OpUpdate, OpAccess:
		if old == nil || old.Deleted {
			return reject("engram %s/%s not found", c.Vault, c.ID)
		}
		r = old
		if c.Op == OpAccess {
			s, err := loadScale(kv, c.Vault)
			if err != nil {
				return Undo{}, err
			}
			r.Activation = r.Activation*s.ratio(r.at) + 1
			r.at = s
			r.AccessCount++
			break
		}
		if c.Set&FieldConcept != 0 {
			r.Concept = c.Concept
		}
		if c.Set&FieldContent != 0 {
			r.Content = c.Content
		}
		if c.Set&FieldTags != 0 {
			r.Tags = c.Tags
		}
		if c.Set&FieldConfidence != 0 {
			r.Confidence = c.Confidence
		}
		r.UpdatedAt = c.At
	case OpForget:
		if old == nil {
			return reject("engram %s/%s not found", c.Vault, c.ID)
		}
		if old.Deleted {
			return Undo{}, nil // forgetting twice is a no-op
		}
		r = old
		r.Deleted = true
		r.UpdatedAt = c.At
	default:
		return reject("unknown operation")
	}
	// The key's value before this entry is what loadRecordKey read: no
	// other command touches it in between.
	u.Keys = append(u.Keys, UndoKey{Key: key, Existed: was != nil, Val: was})
	return u, kv.Set(key, encodeRecord(r))
}

// loadScale is a vault's decay scale: its own decays times every
// decay-all.
func loadScale(kv KV, vault string) (scale, error) {
	s, err := loadRawScale(kv, vaultKey(vault))
	if err != nil {
		return s, err
	}
	g, err := loadRawScale(kv, globalKey)
	return s.times(g), err
}

func loadRawScale(kv KV, key []byte) (scale, error) {
	v, ok, err := kv.Get(key)
	if err != nil || !ok {
		return unitScale, err
	}
	return decodeScale(v)
}

func loadRecord(kv KV, vault, id string) (*record, error) {
	v, ok, err := kv.Get(EngramKey(vault, id))
	if err != nil || !ok {
		return nil, err
	}
	return decodeRecord(vault, id, v)
}

// loadRecordKey is loadRecord of key (EngramKey(vault, id)) that also
// returns a copy of the stored value (nil when there is none), for the
// entry's Undo.
func loadRecordKey(kv KV, vault, id string, key []byte) (*record, []byte, error) {
	v, ok, err := kv.Get(key)
	if err != nil || !ok {
		return nil, nil, err
	}
	raw := bytes.Clone(v)
	r, err := decodeRecord(vault, id, raw)
	return r, raw, err
}
