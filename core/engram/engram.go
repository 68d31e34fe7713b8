// Package engram is MuninnDB's engram state machine: the deterministic apply
// of replicated write commands to vaults of engrams, its rollback, and the
// read queries. It is pure (standard library only, no clock, no randomness)
// and written against the small KV interface, so the node (Pebble, in
// shell/store) and the simulator (MemKV) run exactly the same code.
package engram

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Engram is one memory in a vault.
type Engram struct {
	ID          string   `json:"id"`
	Vault       string   `json:"vault"`
	Concept     string   `json:"concept"`
	Content     string   `json:"content"`
	Tags        []string `json:"tags"`
	Confidence  float64  `json:"confidence"`
	CreatedAt   uint64   `json:"created_at"` // unix ms, from the write command
	UpdatedAt   uint64   `json:"updated_at"` // unix ms, from the last command
	AccessCount uint64   `json:"access_count"`
	// Activation is the engram's current activation: its stored activation
	// scaled by the decays of its vault since it was last set (see scale).
	Activation float64 `json:"activation"`
	Deleted    bool    `json:"deleted,omitempty"`
}

// Key layout of the data keyspace. Every data key starts with DataPrefix so
// the data can share one Pebble DB with the log, meta, undo and quarantine
// keyspaces (which use other first bytes, see shell/store).
//
//	'd' vault 0x00 id  -> engram record (encodeRecord)
//	'd' vault 0x01     -> vault state (the decay scale)
//
// Vault names never contain 0x00 or 0x01, so one vault's engrams are the
// range ['d' vault 0x00, 'd' vault 0x01), in id (creation time) order, and
// the vault state sorts right after them.
const (
	DataPrefix = 'd'
	sepEngram  = 0x00
	sepVault   = 0x01
)

// globalKey holds the decay scale of OpDecayAll: the state of the empty
// vault name, which no vault can have.
var globalKey = []byte{DataPrefix, sepVault}

// DataStart and DataEnd bound the whole data keyspace: [DataStart, DataEnd).
var (
	DataStart = []byte{DataPrefix}
	DataEnd   = []byte{DataPrefix + 1}
)

// EngramKey is the key of engram id in vault.
func EngramKey(vault, id string) []byte {
	k := make([]byte, 0, 2+len(vault)+len(id))
	k = append(k, DataPrefix)
	k = append(k, vault...)
	k = append(k, sepEngram)
	return append(k, id...)
}

// vaultKey is the key of a vault's state.
func vaultKey(vault string) []byte {
	k := make([]byte, 0, 2+len(vault))
	k = append(k, DataPrefix)
	k = append(k, vault...)
	return append(k, sepVault)
}

// vaultRange is the range of a vault's engram keys.
func vaultRange(vault string) (start, end []byte) {
	start = append(append([]byte{DataPrefix}, vault...), sepEngram)
	end = append(append([]byte{DataPrefix}, vault...), sepVault)
	return start, end
}

// scale is a vault's cumulative decay factor, m × 2^e with m in [0.5, 1).
//
// Decay multiplies the activation of every engram in a vault. Rewriting every
// engram would make a Decay entry touch the whole vault, and its undo record
// (needed until the entry commits: docs/protocol.md, rule 9) as big as the vault. Instead
// a Decay multiplies the vault's scale, one key, and each engram stores its
// activation together with the scale at which it was set; its current
// activation is stored × (scale now / scale then). A Decay's undo record is
// one key, and rollback restores the exact previous bytes (dividing the
// factor back out would not be exact in floating point).
//
// Keeping the exponent apart (math.Frexp/Ldexp are exact) means the scale
// never underflows however many decays run; only the ratio, computed at read
// time, may round to zero for engrams set thousands of halvings ago. Only
// IEEE-exact operations (multiply, divide, Frexp, Ldexp) are used, so every
// platform computes the same bits.
type scale struct {
	m float64
	e int64
}

var unitScale = scale{m: 0.5, e: 1}

// times is the product of two scales.
func (s scale) times(o scale) scale {
	if s == unitScale {
		return o
	}
	if o == unitScale {
		return s
	}
	fr, exp := math.Frexp(s.m * o.m)
	if fr == 0 {
		return scale{m: 0, e: 0}
	}
	return scale{m: fr, e: s.e + o.e + int64(exp)}
}

func (s scale) mul(f float64) scale {
	fr, exp := math.Frexp(s.m * f)
	if fr == 0 {
		return scale{m: 0, e: 0}
	}
	return scale{m: fr, e: s.e + int64(exp)}
}

// ratio returns s / at.
func (s scale) ratio(at scale) float64 {
	if s.m == 0 || at.m == 0 {
		if s == at {
			return 1
		}
		return 0
	}
	d := s.e - at.e
	d = max(min(d, 4096), -4096)
	return math.Ldexp(s.m/at.m, int(d))
}

func encodeScale(s scale) []byte {
	b := make([]byte, 0, 18)
	b = append(b, 1)
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(s.m))
	return binary.AppendVarint(b, s.e)
}

func decodeScale(b []byte) (scale, error) {
	if len(b) < 10 || b[0] != 1 {
		return scale{}, errors.New("engram: corrupt vault state")
	}
	m := math.Float64frombits(binary.BigEndian.Uint64(b[1:9]))
	e, n := binary.Varint(b[9:])
	if n <= 0 || 9+n != len(b) {
		return scale{}, errors.New("engram: corrupt vault state")
	}
	return scale{m: m, e: e}, nil
}

// record is an engram as stored: the activation is relative to at.
type record struct {
	Engram
	at scale
}

const recordVersion = 1

func encodeRecord(r *record) []byte {
	n := 64 + len(r.Concept) + len(r.Content)
	for _, t := range r.Tags {
		n += 1 + len(t)
	}
	b := make([]byte, 0, n)
	b = append(b, recordVersion)
	var flags byte
	if r.Deleted {
		flags |= 1
	}
	b = append(b, flags)
	b = appendString(b, r.Concept)
	b = appendString(b, r.Content)
	b = binary.AppendUvarint(b, uint64(len(r.Tags)))
	for _, t := range r.Tags {
		b = appendString(b, t)
	}
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(r.Confidence))
	b = binary.AppendUvarint(b, r.CreatedAt)
	b = binary.AppendUvarint(b, r.UpdatedAt)
	b = binary.AppendUvarint(b, r.AccessCount)
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(r.Activation))
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(r.at.m))
	return binary.AppendVarint(b, r.at.e)
}

// decodeRecord decodes a stored engram of vault with id.
func decodeRecord(vault, id string, b []byte) (*record, error) {
	d := decoder{b: b, what: "engram record", vault: vault, id: id}
	if v := d.byte("version"); d.err == nil && v != recordVersion {
		return nil, fmt.Errorf("%s: unknown version %d", d.name(), v)
	}
	r := &record{Engram: Engram{ID: id, Vault: vault}}
	flags := d.byte("flags")
	r.Deleted = flags&1 != 0
	r.Concept = d.string("concept", MaxConcept)
	r.Content = d.string("content", MaxContent)
	n := d.uvarint("tags", MaxTags)
	if n > 0 {
		r.Tags = make([]string, 0, n)
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		r.Tags = append(r.Tags, d.string("tag", MaxTagLen))
	}
	r.Confidence = d.float("confidence")
	r.CreatedAt = d.uvarint("created_at", math.MaxUint64)
	r.UpdatedAt = d.uvarint("updated_at", math.MaxUint64)
	r.AccessCount = d.uvarint("access_count", math.MaxUint64)
	r.Activation = d.float("activation")
	r.at.m = d.float("scale")
	r.at.e = d.varint("scale exponent")
	if err := d.finish(); err != nil {
		return nil, err
	}
	return r, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads a binary encoding and remembers the first error, naming the
// field it was reading.
type decoder struct {
	b    []byte
	what string
	// vault and id, when set, name the record: "what vault/id" (the name
	// is only built for an error).
	vault, id string
	err       error
}

// name is what the decoder reads, for messages.
func (d *decoder) name() string {
	if d.vault == "" && d.id == "" {
		return d.what
	}
	return d.what + " " + d.vault + "/" + d.id
}

func (d *decoder) fail(field, format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%s: %s: %s", d.name(), field, fmt.Sprintf(format, args...))
	}
}

// failAt is fail for field[i] (i ≥ 0) or field, then suffix: the name is
// only formatted when there is an error.
func (d *decoder) failAt(field string, i int, suffix, format string, args ...any) {
	if d.err != nil {
		return
	}
	if i >= 0 {
		field = fmt.Sprintf("%s[%d]", field, i)
	}
	d.fail(field+suffix, format, args...)
}

func (d *decoder) byte(field string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.fail(field, "truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint(field string, limit uint64) uint64 {
	return d.uvarintAt(field, -1, "", limit)
}

// uvarintAt is uvarint of the field failAt names.
func (d *decoder) uvarintAt(field string, i int, suffix string, limit uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.failAt(field, i, suffix, "truncated or malformed varint")
		return 0
	}
	if v > limit {
		d.failAt(field, i, suffix, "%d exceeds the limit of %d", v, limit)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(field string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(field, "truncated or malformed varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string(field string, limit int) string {
	return d.stringAt(field, -1, limit)
}

// stringAt is string of field[i] (i ≥ 0) or field.
func (d *decoder) stringAt(field string, i int, limit int) string {
	n := d.uvarintAt(field, i, " length", math.MaxUint32)
	if d.err != nil {
		return ""
	}
	if n > uint64(limit) {
		d.failAt(field, i, "", "%d bytes exceeds the limit of %d bytes", n, limit)
		return ""
	}
	if uint64(len(d.b)) < n {
		d.failAt(field, i, "", "truncated: %d bytes announced, %d left", n, len(d.b))
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) float(field string) float64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.fail(field, "truncated")
		return 0
	}
	v := math.Float64frombits(binary.BigEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

func (d *decoder) finish() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%s: %d trailing bytes", d.name(), len(d.b))
	}
	return d.err
}
