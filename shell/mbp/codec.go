package mbp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/muninndb/muninn/core"
)

// MaxEntries bounds the entries of one decoded message. The core batches
// 100 entries by default; this is the hard ceiling a peer may send.
const MaxEntries = 10000

// maxLeaseWaitUs bounds a vote's lease wait: a lease is half a heartbeat,
// and cluster.heartbeat_ms is at most a minute.
const maxLeaseWaitUs = uint64(time.Hour / time.Microsecond)

// minEntryLen is the smallest encoding of one entry: two one-byte varints
// for its position, type, durability and a one-byte payload length.
const minEntryLen = 5

// Message flag bits (one byte carries every bool of core.Message).
const (
	msgReject  = 1 << 0
	msgDown    = 1 << 1
	msgHandoff = 1 << 2
	msgGranted = 1 << 3
	msgLeased  = 1 << 4
	msgKnown   = msgReject | msgDown | msgHandoff | msgGranted | msgLeased
)

// EncodeMessage encodes m. Layout (docs/wire.md): type, from, to, epoch,
// kind, role, sent_at, cortex, last, commit, prev, match, hint, store,
// flags, unheard, entries, then priority and lease_wait (µs) when either is
// set. Strings are a uvarint length and bytes; integers are varints;
// positions are two uvarints (epoch, seq).
func EncodeMessage(m core.Message) []byte {
	n := 64 + len(m.From) + len(m.To) + len(m.Cortex)
	for _, e := range m.Entries {
		n += 24 + len(e.Payload)
	}
	return AppendMessage(make([]byte, 0, n), m)
}

// AppendMessage appends m's encoding to dst.
func AppendMessage(dst []byte, m core.Message) []byte {
	b := append(dst, byte(m.Type))
	b = appendString(b, string(m.From))
	b = appendString(b, string(m.To))
	b = binary.AppendUvarint(b, uint64(m.Epoch))
	b = append(b, byte(m.Kind), byte(m.Role))
	b = binary.AppendVarint(b, int64(m.SentAt))
	b = appendString(b, string(m.Cortex))
	for _, p := range [...]core.Pos{m.Last, m.Commit, m.Prev, m.Match, m.Hint} {
		b = appendPos(b, p)
	}
	b = binary.AppendUvarint(b, m.Store)
	var f byte
	if m.Reject {
		f |= msgReject
	}
	if m.Down {
		f |= msgDown
	}
	if m.Handoff {
		f |= msgHandoff
	}
	if m.Granted {
		f |= msgGranted
	}
	if m.Leased {
		f |= msgLeased
	}
	b = append(b, f)
	b = binary.AppendUvarint(b, uint64(len(m.Unheard)))
	for _, id := range m.Unheard {
		b = appendString(b, string(id))
	}
	b = binary.AppendUvarint(b, uint64(len(m.Entries)))
	for _, e := range m.Entries {
		b = appendPos(b, e.Pos)
		b = append(b, byte(e.Type), byte(e.Durability))
		b = binary.AppendUvarint(b, uint64(len(e.Payload)))
		b = append(b, e.Payload...)
	}
	// Trailing fields, added after the first release: a decoder of that
	// release rejects them, a newer one reads their absence as zero.
	if m.Priority != 0 || m.LeaseWait != 0 {
		b = binary.AppendUvarint(b, uint64(m.Priority))
		b = binary.AppendUvarint(b, uint64(max(m.LeaseWait, 0)/time.Microsecond))
	}
	return b
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendPos(b []byte, p core.Pos) []byte {
	return binary.AppendUvarint(binary.AppendUvarint(b, uint64(p.Epoch)), uint64(p.Seq))
}

// ErrMessage wraps every message decoding error.
var ErrMessage = errors.New("mbp: bad message")

// DecodeMessage decodes EncodeMessage's output. It is strict: unknown
// message, entry, kind, role and durability values, node ids over
// core.MaxNodeIDLen, more than MaxEntries entries, unknown flag bits and
// trailing bytes are errors. Entry payloads alias b (nil when empty).
func DecodeMessage(b []byte) (core.Message, error) {
	d := decoder{b: b}
	var m core.Message
	m.Type = core.MsgType(d.byte())
	if d.err == nil && !m.Type.Valid() {
		return core.Message{}, fmt.Errorf("%w: unknown message type %d", ErrMessage, uint8(m.Type))
	}
	m.From = core.NodeID(d.id("from"))
	m.To = core.NodeID(d.id("to"))
	m.Epoch = core.Epoch(d.uvarint("epoch"))
	m.Kind = core.Kind(d.byte())
	if d.err == nil && m.Kind > core.KindObserver {
		d.fail("unknown kind %d", uint8(m.Kind))
	}
	m.Role = core.Role(d.byte())
	if d.err == nil && m.Role > core.RoleObserver {
		d.fail("unknown role %d", uint8(m.Role))
	}
	m.SentAt = core.Time(d.varint("sent_at"))
	m.Cortex = core.NodeID(d.id("cortex"))
	m.Last = d.pos("last")
	m.Commit = d.pos("commit")
	m.Prev = d.pos("prev")
	m.Match = d.pos("match")
	m.Hint = d.pos("hint")
	m.Store = d.uvarint("store")
	f := d.byte()
	if d.err == nil && f&^msgKnown != 0 {
		d.fail("unknown message flags 0x%02x", f)
	}
	m.Reject, m.Down, m.Handoff, m.Granted, m.Leased = f&msgReject != 0, f&msgDown != 0, f&msgHandoff != 0, f&msgGranted != 0, f&msgLeased != 0
	if u := d.uvarint("unheard count"); d.err == nil && u > core.MaxMembers {
		d.fail("%d unheard voters, limit %d", u, core.MaxMembers)
	} else if u > 0 {
		m.Unheard = make([]core.NodeID, 0, min(u, uint64(len(d.b))))
		for range u {
			id := core.NodeID(d.id("unheard"))
			if d.err != nil {
				break
			}
			m.Unheard = append(m.Unheard, id)
		}
	}
	n := d.uvarint("entry count")
	if d.err == nil && n > MaxEntries {
		d.fail("%d entries, limit %d", n, MaxEntries)
	}
	if d.err == nil && n > uint64(len(d.b))/minEntryLen {
		d.fail("%d entries cannot fit in %d bytes", n, len(d.b))
	}
	if d.err == nil && n > 0 {
		m.Entries = make([]core.Entry, n)
		for i := range m.Entries {
			e := &m.Entries[i]
			e.Pos = d.pos("entry position")
			e.Type = core.EntryType(d.byte())
			e.Durability = core.Durability(d.byte())
			if d.err == nil && e.Type > core.EntryMembership {
				d.fail("entry %d: unknown entry type %d", i, uint8(e.Type))
			}
			if d.err == nil && e.Durability > core.Quorum {
				d.fail("entry %d: unknown durability %d", i, uint8(e.Durability))
			}
			e.Payload = d.bytes("entry payload")
			if d.err != nil {
				break
			}
		}
	}
	if d.err == nil && len(d.b) != 0 {
		if p := d.uvarint("priority"); d.err == nil && p > core.MaxPriority {
			d.fail("priority %d, limit %d", p, core.MaxPriority)
		} else {
			m.Priority = uint16(p)
		}
		if w := d.uvarint("lease wait"); d.err == nil && w > maxLeaseWaitUs {
			d.fail("lease wait %d µs, limit %d", w, maxLeaseWaitUs)
		} else {
			m.LeaseWait = time.Duration(w) * time.Microsecond
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return core.Message{}, d.err
	}
	return m, nil
}

// decoder reads fields; after the first error every read returns zero.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrMessage, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.fail("bad %s", what)
		return 0
	}
	d.b = d.b[k:]
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, k := binary.Varint(d.b)
	if k <= 0 {
		d.fail("bad %s", what)
		return 0
	}
	d.b = d.b[k:]
	return v
}

func (d *decoder) pos(what string) core.Pos {
	e := d.uvarint(what)
	s := d.uvarint(what)
	return core.Pos{Epoch: core.Epoch(e), Seq: core.Seq(s)}
}

func (d *decoder) bytes(what string) []byte {
	n := d.uvarint(what)
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("%s of %d bytes, %d left", what, n, len(d.b))
		return nil
	}
	if n == 0 {
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) id(what string) string {
	n := d.uvarint(what)
	if d.err != nil {
		return ""
	}
	if n > core.MaxNodeIDLen {
		d.fail("%s id of %d bytes, limit %d", what, n, core.MaxNodeIDLen)
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail("%s id of %d bytes, %d left", what, n, len(d.b))
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
