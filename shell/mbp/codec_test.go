package mbp

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
	"pgregory.net/rapid"
)

func genPos(t *rapid.T, label string) core.Pos {
	return core.Pos{
		Epoch: core.Epoch(rapid.Uint64().Draw(t, label+".epoch")),
		Seq:   core.Seq(rapid.Uint64().Draw(t, label+".seq")),
	}
}

func genID(t *rapid.T, label string) core.NodeID {
	return core.NodeID(rapid.StringN(0, core.MaxNodeIDLen, core.MaxNodeIDLen).Draw(t, label))
}

func genMessage(t *rapid.T) core.Message {
	m := core.Message{
		Type:    core.MsgType(rapid.IntRange(int(core.MsgHeartbeat), int(core.MsgTimeoutNow)).Draw(t, "type")),
		From:    genID(t, "from"),
		To:      genID(t, "to"),
		Epoch:   core.Epoch(rapid.Uint64().Draw(t, "epoch")),
		Kind:    core.Kind(rapid.IntRange(0, int(core.KindObserver)).Draw(t, "kind")),
		Role:    core.Role(rapid.IntRange(0, int(core.RoleObserver)).Draw(t, "role")),
		SentAt:  core.Time(rapid.Int64().Draw(t, "sent_at")),
		Cortex:  genID(t, "cortex"),
		Last:    genPos(t, "last"),
		Commit:  genPos(t, "commit"),
		Prev:    genPos(t, "prev"),
		Match:   genPos(t, "match"),
		Reject:  rapid.Bool().Draw(t, "reject"),
		Hint:    genPos(t, "hint"),
		Down:    rapid.Bool().Draw(t, "down"),
		Handoff: rapid.Bool().Draw(t, "handoff"),
		Granted: rapid.Bool().Draw(t, "granted"),
		Store:   rapid.Uint64().Draw(t, "store"),
		Leased:  rapid.Bool().Draw(t, "leased"),
		// Priority and LeaseWait are trailing fields: absent when both are 0.
		Priority:  uint16(rapid.IntRange(0, core.MaxPriority).Draw(t, "priority")),
		LeaseWait: time.Duration(rapid.Int64Range(0, int64(time.Minute/time.Microsecond)).Draw(t, "lease wait us")) * time.Microsecond,
	}
	for range rapid.IntRange(0, 5).Draw(t, "unheard") {
		m.Unheard = append(m.Unheard, genID(t, "unheard id"))
	}
	n := rapid.IntRange(0, 50).Draw(t, "entries")
	for i := 0; i < n; i++ {
		e := core.Entry{
			Pos:        genPos(t, "entry"),
			Type:       core.EntryType(rapid.IntRange(0, int(core.EntryMembership)).Draw(t, "etype")),
			Durability: core.Durability(rapid.IntRange(0, int(core.Quorum)).Draw(t, "durability")),
			Payload:    rapid.SliceOfN(rapid.Byte(), 0, 300).Draw(t, "payload"),
		}
		if len(e.Payload) == 0 {
			e.Payload = nil // the decoder returns nil for empty payloads
		}
		m.Entries = append(m.Entries, e)
	}
	return m
}

func TestMessageRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := genMessage(t)
		b := EncodeMessage(m)
		got, err := DecodeMessage(b)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip:\n got %#v\nwant %#v", got, m)
		}
		// Every strict prefix is refused, never accepted as another message.
		for _, i := range []int{0, len(b) / 2, len(b) - 1} {
			if _, err := DecodeMessage(b[:i]); err == nil {
				t.Fatalf("prefix of %d/%d bytes decoded", i, len(b))
			}
		}
	})
}

func TestDecodeMessageRefusals(t *testing.T) {
	ok := EncodeMessage(core.Message{Type: core.MsgAppend, From: "a", To: "b",
		Entries: []core.Entry{{Pos: core.Pos{Epoch: 1, Seq: 1}, Payload: []byte("x")}}})
	if _, err := DecodeMessage(ok); err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), ok...)) }
	long := strings.Repeat("n", core.MaxNodeIDLen+1)
	many := AppendMessage(nil, core.Message{Type: core.MsgAppend})
	many = append(many[:len(many)-1], 0x91, 0x4e) // 10001 entries
	many = append(many, make([]byte, 10001*minEntryLen)...)
	cases := []struct {
		name, want string
		b          []byte
	}{
		{"empty", "truncated", nil},
		{"type 0", "unknown message type 0", mutate(func(b []byte) []byte { b[0] = 0; return b })},
		{"type 99", "unknown message type 99", mutate(func(b []byte) []byte { b[0] = 99; return b })},
		{"trailing", "1 trailing bytes", append(append([]byte(nil), ok...), 0, 0, 0)},
		{"priority", "priority 1001, limit 1000", append(append([]byte(nil), ok...), 0xe9, 0x07, 0)},
		{"half trailer", "bad lease wait", append(append([]byte(nil), ok...), 1)},
		{"long id", "limit 128", EncodeMessage(core.Message{Type: core.MsgVote, From: core.NodeID(long)})},
		{"too many entries", "10001 entries, limit 10000", many},
		{"bad kind", "unknown kind 7", EncodeMessage(core.Message{Type: core.MsgVote, Kind: 7})},
		{"bad role", "unknown role 9", EncodeMessage(core.Message{Type: core.MsgVote, Role: 9})},
		{"bad entry type", "unknown entry type 5", EncodeMessage(core.Message{Type: core.MsgAppend, Entries: []core.Entry{{Type: 5}}})},
		{"bad durability", "unknown durability 3", EncodeMessage(core.Message{Type: core.MsgAppend, Entries: []core.Entry{{Durability: 3}}})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeMessage(c.b)
			if !errors.Is(err, ErrMessage) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

// A count claiming more entries than the bytes left is refused before any
// allocation proportional to the count.
func TestDecodeMessageCountBomb(t *testing.T) {
	b := AppendMessage(nil, core.Message{Type: core.MsgAppend})
	b = append(b[:len(b)-1], 0x90, 0x4e) // 10000 entries, no bytes
	allocs := testing.AllocsPerRun(10, func() { _, _ = DecodeMessage(b) })
	if _, err := DecodeMessage(b); err == nil || !strings.Contains(err.Error(), "cannot fit") {
		t.Fatalf("err = %v", err)
	}
	if allocs > 10 { // only the error text
		t.Fatalf("%v allocations", allocs)
	}
}
