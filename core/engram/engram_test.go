package engram

import (
	"bytes"
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"

	"github.com/muninndb/muninn/core"
)

func id(n int) string {
	var r [10]byte
	r[9] = byte(n)
	r[8] = byte(n >> 8)
	return NewID(1_700_000_000_000+uint64(n), r)
}

func TestNewID(t *testing.T) {
	a := NewID(1, [10]byte{})
	if a != "00000000010000000000000000" {
		t.Fatalf("NewID(1, 0) = %s", a)
	}
	max := NewID(1<<48-1, [10]byte{255, 255, 255, 255, 255, 255, 255, 255, 255, 255})
	if max != "7ZZZZZZZZZZZZZZZZZZZZZZZZZ" {
		t.Fatalf("max id = %s", max)
	}
	var ids []string
	for i := 0; i < 50; i++ {
		ids = append(ids, NewID(uint64(1000+i*7), [10]byte{byte(255 - i)}))
	}
	if !sort.StringsAreSorted(ids) {
		t.Fatal("ids of increasing ms do not sort")
	}
	for _, s := range append(ids, a, max) {
		if err := ValidateID(s); err != nil {
			t.Fatal(err)
		}
	}
	if got := IDTime(ids[3]); got != 1021 {
		t.Fatalf("IDTime = %d, want 1021", got)
	}
}

func TestValidateID(t *testing.T) {
	for _, tc := range []struct{ id, want string }{
		{"", "must be 26 characters, got 0"},
		{"0000000001000000000000000", "got 25"},
		{"0000000001000000000000000I", "character 'I' at 25"},
		{"0000000001000000000000000a", "character 'a'"},
		{"80000000010000000000000000", "first character must be 0-7"},
	} {
		err := ValidateID(tc.id)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ValidateID(%q) = %v, want %q", tc.id, err, tc.want)
		}
	}
}

func TestValidateVault(t *testing.T) {
	for _, ok := range []string{"default", "a", "0", "my-vault_2", strings.Repeat("a", 64)} {
		if err := ValidateVault(ok); err != nil {
			t.Errorf("ValidateVault(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-a", "_a", "A", "a b", "a/b", "a\x00", strings.Repeat("a", 65), "é"} {
		if err := ValidateVault(bad); err == nil {
			t.Errorf("ValidateVault(%q) = nil", bad)
		}
	}
}

func TestCommandRoundTrip(t *testing.T) {
	for _, c := range []Command{
		{Op: OpWrite, Vault: "v", ID: id(1), At: 5, Concept: "c", Content: "hello", Tags: []string{"a", "b"}, Confidence: 0.5},
		{Op: OpWrite, Vault: "v", ID: id(1), At: 5},
		{Op: OpUpdate, Vault: "v", ID: id(1), At: 6, Set: FieldContent | FieldConfidence, Content: "x", Confidence: 1},
		{Op: OpUpdate, Vault: "v", ID: id(1), At: 6, Set: FieldTags},
		{Op: OpForget, Vault: "v", ID: id(1), At: 7},
		{Op: OpAccess, Vault: "v", ID: id(1), At: 7},
		{Op: OpDecay, Vault: "v", At: 8, Factor: 0.9},
	} {
		b, err := EncodeCommand(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeCommand(b)
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(c) {
			t.Fatalf("round trip: got %+v, want %+v", got, c)
		}
	}
}

func TestCommandErrors(t *testing.T) {
	ok := Command{Op: OpWrite, Vault: "v", ID: id(1), Confidence: 0.5}
	for _, tc := range []struct {
		name string
		edit func(*Command)
		want string
	}{
		{"vault", func(c *Command) { c.Vault = "Bad" }, "vault \"Bad\""},
		{"id", func(c *Command) { c.ID = "nope" }, "id \"nope\""},
		{"content", func(c *Command) { c.Content = strings.Repeat("x", MaxContent+1) }, "content: 65537 bytes exceeds the limit of 65536"},
		{"concept", func(c *Command) { c.Concept = strings.Repeat("x", MaxConcept+1) }, "concept: 513 bytes"},
		{"tags", func(c *Command) { c.Tags = make([]string, 33) }, "tags: 33 tags exceeds the limit of 32"},
		{"tag", func(c *Command) { c.Tags = []string{"a", strings.Repeat("t", 65)} }, "tags[1]: 65 bytes"},
		{"empty tag", func(c *Command) { c.Tags = []string{""} }, "tags[0]: empty tag"},
		{"confidence", func(c *Command) { c.Confidence = 1.5 }, "confidence: 1.5 is outside [0, 1]"},
		{"nan", func(c *Command) { c.Confidence = math.NaN() }, "confidence: NaN"},
		{"utf8", func(c *Command) { c.Content = "\xff" }, "content: not valid UTF-8"},
		{"op", func(c *Command) { c.Op = 9 }, "op: unknown operation 9"},
		{"decay id", func(c *Command) { c.Op = OpDecay; c.Factor = 0.5 }, "decay applies to a whole vault"},
		{"factor", func(c *Command) { c.Op = OpDecay; c.ID = ""; c.Factor = 0 }, "factor: 0 is outside (0, 1]"},
		{"fields", func(c *Command) { c.Op = OpUpdate }, "update sets no known field"},
	} {
		c := ok
		tc.edit(&c)
		_, err := EncodeCommand(c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestDecodeCommandErrors(t *testing.T) {
	good, _ := EncodeCommand(Command{Op: OpWrite, Vault: "v", ID: id(1), Content: "hello", Tags: []string{"t"}})
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "version: truncated"},
		{"version", []byte{9}, "unknown version 9"},
		{"op", []byte{1, 0}, "unknown operation 0"},
		{"truncated", good[:len(good)-3], "truncated"},
		{"trailing", append(bytes.Clone(good), 0), "1 trailing bytes"},
		{"huge", make([]byte, MaxCommand+1), "exceeds the limit"},
		{"long vault", append([]byte{1, 1, 100}, make([]byte, 100)...), "vault: 100 bytes exceeds the limit of 64"},
	} {
		_, err := DecodeCommand(tc.b)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}

// machine applies commands at increasing positions and remembers the undo.
type machine struct {
	t    *testing.T
	kv   *MemKV
	seq  core.Seq
	undo []Undo
}

func (m *machine) apply(c Command) error {
	m.t.Helper()
	b, err := EncodeCommand(c)
	if err != nil {
		m.t.Fatal(err)
	}
	m.seq++
	u, err := Apply(m.kv, core.Pos{Epoch: 1, Seq: m.seq}, b)
	if err != nil && !IsReject(err) {
		m.t.Fatal(err)
	}
	m.undo = append(m.undo, u)
	return err
}

func TestApply(t *testing.T) {
	m := &machine{t: t, kv: NewMemKV()}
	w := Command{Op: OpWrite, Vault: "v", ID: id(1), At: 100, Concept: "raven", Content: "thought and memory", Tags: []string{"norse"}, Confidence: 0.8}
	if err := m.apply(w); err != nil {
		t.Fatal(err)
	}
	if err := m.apply(w); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("duplicate write: %v", err)
	}
	e, ok, err := Get(m.kv, "v", id(1))
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	want := Engram{ID: id(1), Vault: "v", Concept: "raven", Content: "thought and memory", Tags: []string{"norse"}, Confidence: 0.8, CreatedAt: 100, UpdatedAt: 100, Activation: 1}
	if fmt.Sprint(e) != fmt.Sprint(want) {
		t.Fatalf("got %+v\nwant %+v", e, want)
	}
	if err := m.apply(Command{Op: OpUpdate, Vault: "v", ID: id(1), At: 200, Set: FieldContent, Content: "memory"}); err != nil {
		t.Fatal(err)
	}
	if err := m.apply(Command{Op: OpDecay, Vault: "v", At: 300, Factor: 0.5}); err != nil {
		t.Fatal(err)
	}
	if err := m.apply(Command{Op: OpAccess, Vault: "v", ID: id(1), At: 300}); err != nil {
		t.Fatal(err)
	}
	if err := m.apply(Command{Op: OpDecay, Vault: "v", At: 400, Factor: 0.5}); err != nil {
		t.Fatal(err)
	}
	e, _, _ = Get(m.kv, "v", id(1))
	if e.Content != "memory" || e.UpdatedAt != 200 || e.Concept != "raven" || e.AccessCount != 1 || e.Activation != 0.75 {
		t.Fatalf("after update, decay, access, decay: %+v", e)
	}
	// A decay in another vault does not touch v.
	if err := m.apply(Command{Op: OpDecay, Vault: "w", At: 400, Factor: 0.1}); err != nil {
		t.Fatal(err)
	}
	if e2, _, _ := Get(m.kv, "v", id(1)); e2.Activation != 0.75 {
		t.Fatalf("decay leaked across vaults: %v", e2.Activation)
	}
	if err := m.apply(Command{Op: OpUpdate, Vault: "v", ID: id(2), At: 1, Set: FieldConcept}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("update of missing: %v", err)
	}
	if err := m.apply(Command{Op: OpForget, Vault: "v", ID: id(1), At: 500}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := Get(m.kv, "v", id(1)); ok {
		t.Fatal("forgotten engram still visible")
	}
	if err := m.apply(Command{Op: OpForget, Vault: "v", ID: id(1), At: 600}); err != nil {
		t.Fatalf("second forget: %v", err)
	}
	if err := m.apply(Command{Op: OpUpdate, Vault: "v", ID: id(1), At: 600, Set: FieldConcept}); err == nil {
		t.Fatal("update of a forgotten engram accepted")
	}
	// A forgotten id may be written again: a fresh engram, not a no-op.
	if err := m.apply(Command{Op: OpWrite, Vault: "v", ID: id(1), At: 700, Content: "reborn"}); err != nil {
		t.Fatalf("re-create after forget: %v", err)
	}
	if e, ok, _ := Get(m.kv, "v", id(1)); !ok || e.Content != "reborn" || e.CreatedAt != 700 || e.AccessCount != 0 {
		t.Fatalf("re-created engram: %v %+v", ok, e)
	}
	// Malformed payloads are rejected deterministically.
	if _, err := Apply(m.kv, core.Pos{Epoch: 1, Seq: 99}, []byte{1, 2, 3}); !IsReject(err) || !strings.Contains(err.Error(), "entry 1.99") {
		t.Fatalf("malformed payload: %v", err)
	}
	// Roll everything back: the store is empty again.
	for i := len(m.undo) - 1; i >= 0; i-- {
		if err := Rollback(m.kv, m.undo[i]); err != nil {
			t.Fatal(err)
		}
	}
	if m.kv.Len() != 0 {
		t.Fatalf("%d keys left after rollback", m.kv.Len())
	}
}

func TestDecayManyTimes(t *testing.T) {
	kv := NewMemKV()
	m := &machine{t: t, kv: kv}
	m.apply(Command{Op: OpWrite, Vault: "v", ID: id(1), At: 1})
	for i := 0; i < 3000; i++ {
		m.apply(Command{Op: OpDecay, Vault: "v", At: 2, Factor: 0.5})
	}
	m.apply(Command{Op: OpWrite, Vault: "v", ID: id(2), At: 3})
	e1, _, _ := Get(kv, "v", id(1))
	e2, _, _ := Get(kv, "v", id(2))
	if e1.Activation != 0 || e2.Activation != 1 {
		t.Fatalf("after 3000 halvings: old %v (want 0), new %v (want 1)", e1.Activation, e2.Activation)
	}
	m.apply(Command{Op: OpDecay, Vault: "v", At: 2, Factor: 0.25})
	if e2, _, _ := Get(kv, "v", id(2)); e2.Activation != 0.25 {
		t.Fatalf("new engram after decay: %v", e2.Activation)
	}
}

func TestListAndActivate(t *testing.T) {
	m := &machine{t: t, kv: NewMemKV()}
	texts := []string{"odin ravens huginn", "odin spear", "loki fire", "ravens fly at dawn", "thor hammer"}
	for i, s := range texts {
		tags := []string{"norse"}
		if i%2 == 0 {
			tags = append(tags, "even")
		}
		m.apply(Command{Op: OpWrite, Vault: "v", ID: id(i), At: uint64(i), Concept: fmt.Sprintf("c%d", i), Content: s, Tags: tags})
	}
	m.apply(Command{Op: OpWrite, Vault: "v2", ID: id(9), Content: "odin elsewhere"})
	m.apply(Command{Op: OpForget, Vault: "v", ID: id(4)})

	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		p, err := List(m.kv, "v", ListOptions{Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Engrams {
			got = append(got, e.Content)
		}
		if p.Next == "" {
			if pages != 1 {
				t.Fatalf("pages = %d, want 2", pages+1)
			}
			break
		}
		cursor = p.Next
	}
	if strings.Join(got, "|") != strings.Join(texts[:4], "|") {
		t.Fatalf("list = %q", got)
	}
	p, err := List(m.kv, "v", ListOptions{Tags: []string{"even", "norse"}})
	if err != nil || len(p.Engrams) != 2 || p.Engrams[0].ID != id(0) || p.Engrams[1].ID != id(2) || p.Next != "" {
		t.Fatalf("tag filter: %+v %v", p, err)
	}
	for _, tc := range []struct {
		o    ListOptions
		want string
	}{
		{ListOptions{Limit: 1001}, "limit: 1001 is outside 1..1000"},
		{ListOptions{Cursor: "x"}, "cursor: id \"x\""},
		{ListOptions{Tags: []string{""}}, "tags[0]: empty"},
	} {
		if _, err := List(m.kv, "v", tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("List(%+v) = %v, want %q", tc.o, err, tc.want)
		}
	}

	// Activation weights the ranking: access "odin spear" three times.
	m.apply(Command{Op: OpAccess, Vault: "v", ID: id(1)})
	m.apply(Command{Op: OpAccess, Vault: "v", ID: id(1)})
	m.apply(Command{Op: OpAccess, Vault: "v", ID: id(1)})
	hits, err := Activate(m.kv, "v", "Odin, ravens!", 10)
	if err != nil {
		t.Fatal(err)
	}
	var ranked []string
	for _, h := range hits {
		ranked = append(ranked, fmt.Sprintf("%s=%g", h.Content, h.Score))
	}
	want := "odin spear=5|odin ravens huginn=4|ravens fly at dawn=2"
	if strings.Join(ranked, "|") != want {
		t.Fatalf("activate = %q, want %q", strings.Join(ranked, "|"), want)
	}
	if _, err := Activate(m.kv, "v", "  !! ", 10); err == nil {
		t.Fatal("empty query accepted")
	}
	if _, err := Activate(m.kv, "Bad", "x", 10); err == nil {
		t.Fatal("bad vault accepted")
	}
}

func TestUndoEncoding(t *testing.T) {
	u := Undo{Keys: []UndoKey{{Key: []byte("a"), Existed: true, Val: []byte("x")}, {Key: []byte("b")}, {Key: []byte("c"), Existed: true, Val: []byte{}}}}
	got, err := DecodeUndo(EncodeUndo(u))
	if err != nil || fmt.Sprint(got) != fmt.Sprint(u) {
		t.Fatalf("got %v %v", got, err)
	}
	if _, err := DecodeUndo([]byte{1, 5, 'a'}); err == nil {
		t.Fatal("truncated undo accepted")
	}
}

func TestMemKV(t *testing.T) {
	kv := NewMemKV()
	for _, k := range []string{"b", "a", "d", "c"} {
		kv.Set([]byte(k), []byte(k+k))
	}
	kv.Delete([]byte("c"))
	var got []string
	kv.Scan([]byte("a"), []byte("d"), func(k, v []byte) bool { got = append(got, string(k)+"="+string(v)); return true })
	if strings.Join(got, ",") != "a=aa,b=bb" {
		t.Fatalf("scan = %v", got)
	}
	c := kv.Clone()
	kv.Set([]byte("a"), []byte("z"))
	if v, _, _ := c.Get([]byte("a")); string(v) != "aa" || c.Equal(kv) {
		t.Fatal("clone shares state")
	}
	got = nil
	kv.Scan(nil, nil, func(k, v []byte) bool { got = append(got, string(k)); return len(got) < 2 })
	if strings.Join(got, ",") != "a,b" {
		t.Fatalf("stopped scan = %v", got)
	}
}

// One decay-all entry decays every vault, composes with per-vault decays,
// spares engrams written after it, and rolls back.
func TestDecayAll(t *testing.T) {
	m := &machine{t: t, kv: NewMemKV()}
	for _, v := range []string{"a", "b"} {
		if err := m.apply(Command{Op: OpWrite, Vault: v, ID: id(1), At: 1, Content: v}); err != nil {
			t.Fatal(err)
		}
	}
	before := m.kv.Clone()
	if err := m.apply(Command{Op: OpDecayAll, At: 2, Factor: 0.5}); err != nil {
		t.Fatal(err)
	}
	if err := m.apply(Command{Op: OpDecay, Vault: "a", At: 3, Factor: 0.5}); err != nil {
		t.Fatal(err)
	}
	if err := m.apply(Command{Op: OpWrite, Vault: "b", ID: id(2), At: 4, Content: "later"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		vault string
		n     int
		want  float64
	}{{"a", 1, 0.25}, {"b", 1, 0.5}, {"b", 2, 1}} {
		e, ok, _ := Get(m.kv, c.vault, id(c.n))
		if !ok || e.Activation != c.want {
			t.Errorf("%s/%d: activation %v, want %v", c.vault, c.n, e.Activation, c.want)
		}
	}
	for _, bad := range []Command{{Op: OpDecayAll, Vault: "a", Factor: 0.5}, {Op: OpDecayAll, Factor: 0}, {Op: OpDecayAll, ID: id(1), Factor: 0.5}} {
		if _, err := EncodeCommand(bad); err == nil {
			t.Errorf("decay-all %+v accepted", bad)
		}
	}
	for i := len(m.undo) - 1; i >= 2; i-- {
		if err := Rollback(m.kv, m.undo[i]); err != nil {
			t.Fatal(err)
		}
	}
	if !m.kv.Equal(before) {
		t.Fatal("rolling back the decays and the later write did not restore the state")
	}
}
