package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/apitypes"
)

// FuzzCheckJSON holds checkJSON's one-pass scanner to the token-by-token
// walk it replaced: the same bodies refused, with the same messages.
//
//	go test ./shell/api -run '^$' -fuzz '^FuzzCheckJSON$' -fuzztime 1m
func FuzzCheckJSON(f *testing.F) {
	for _, s := range []string{
		`{"content":"x","tags":["a","b"],"confidence":0.5}`,
		`{"content":"café 😀 \ud83d\ude00 \\ud800 \"\\\u00e9"}`,
		`{"a":{"b":1},"c":{"b":2},"d":[{"b":1},{"b":2}]}`,
		`{"a":{"b":1,"b":2}}`, `{"d":[{"b":1,"B":2}]}`, `{"d":[{"b":1},{"e":"\udc00"}]}`,
		"{\"content\":\"caf\xe9\"}", "{\"content\":\"x\",\"\xff\":1}", "{\"a\":{\"\xff\":1}}",
		`{"content":"x","Content":"y"}`, `{"\u0041":1,"a":2}`, `{"ſ":1,"S":2}`, `{"K":1,"k":2}`,
		`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
		`{"a":01,"b\u12":1}`, `{"a":-0.5e+3,"b":[true,false,null]}`, `"\ud800"`, `{"a":"\ud800\udc00"}`,
		`{"engrams":[{"content":"a"},{"content":"b","Content":"c"}]}`, `{} {"a":"\udc00"}`, `{"a":1,}`, `[1,]`,
		`{"a" 1}`, `{"a":"x\u00"}`, "{\"a\":\"\x01\"}", `{"a":tru}`, `{"a":1e}`, `{"a":-}`, `{"a":.5}`,
	} {
		f.Add([]byte(s))
	}
	var many strings.Builder
	many.WriteString("{")
	for i := range 40 {
		fmt.Fprintf(&many, `"k%d":%d,`, i, i)
	}
	many.WriteString(`"K7":1}`)
	f.Add([]byte(many.String()))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, want := checkJSON(b), checkJSONTokens(b)
		if (got == nil) != (want == nil) || got != nil && got.Error() != want.Error() {
			t.Fatalf("checkJSON(%q) = %v, the token walk says %v", b, got, want)
		}
	})
}

// TestCheckJSONAllocs: a plain body costs the scan no allocation.
func TestCheckJSONAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts mean nothing under -race (CI runs without it)")
	}
	body := []byte(`{"vault":"notes","id":"01M930CKCH3FZBE51DP5DKWWCD","concept":"paris","content":"Paris is the capital of France","tags":["geo","eu"],"confidence":0.9}`)
	checkJSON(body)
	if n := testing.AllocsPerRun(100, func() { checkJSON(body) }); n > 0 {
		t.Fatalf("%v allocations per check", n)
	}
}

// checkJSONTokens is the token-by-token checkJSON this package used
// before the one-pass scanner; FuzzCheckJSON holds the scanner to it.
// It walks the first JSON value in b token by token, before it is
// decoded, for what encoding/json accepts silently: invalid UTF-8 and lone
// UTF-16 surrogate escapes in strings (it substitutes U+FFFD) and a key
// given twice in an object (it keeps the last; keys match fields
// case-insensitively, so "content" and "Content" are the same). Each is
// refused naming the field. Syntax errors are left to the decoder.
func checkJSONTokens(b []byte) error {
	type level struct {
		obj    bool
		keys   map[string]bool
		key    string // the current key (objects)
		idx    int    // the current index (arrays)
		wanted bool   // objects: the next string is a key
	}
	var stack []*level
	path := func() string {
		var sb strings.Builder
		for _, l := range stack {
			if l.obj {
				if sb.Len() > 0 {
					sb.WriteByte('.')
				}
				sb.WriteString(l.key)
			} else {
				fmt.Fprintf(&sb, "[%d]", l.idx)
			}
		}
		return sb.String()
	}
	field := func() string {
		if p := path(); p != "" {
			return "field " + p
		}
		return "the body"
	}
	valueDone := func() {
		if n := len(stack); n > 0 {
			if top := stack[n-1]; top.obj {
				top.wanted = true
			} else {
				top.idx++
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var prev int64
	started := false
	for {
		if started && len(stack) == 0 {
			return nil // one value: anything after is the decoder's to refuse
		}
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		started = true
		raw := b[prev:dec.InputOffset()]
		prev = dec.InputOffset()
		var top *level
		if n := len(stack); n > 0 {
			top = stack[n-1]
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if len(stack) >= maxJSONDepth {
					return badRequest("%s: JSON nested deeper than %d levels", field(), maxJSONDepth)
				}
				stack = append(stack, &level{obj: t == '{', keys: map[string]bool{}, wanted: t == '{'})
			default:
				stack = stack[:len(stack)-1]
				valueDone()
			}
			continue
		case string:
			isKey := top != nil && top.obj && top.wanted
			if msg := badJSONString(raw); msg != "" {
				if isKey {
					return badRequest("a field name after %s: %s", orStart(path()), msg)
				}
				return badRequest("%s: %s", field(), msg)
			}
			if isKey {
				fold := strings.ToLower(strings.ToUpper(t))
				top.key, top.wanted = t, false
				if top.keys[fold] {
					return badRequest("%s: given twice (a key may appear once in an object, and keys match fields whatever their case)", field())
				}
				top.keys[fold] = true
				continue
			}
		}
		valueDone()
	}
}

// TestWriteWriteResult: the hand-written answer of a write is what
// encoding/json writes.
func TestWriteWriteResult(t *testing.T) {
	for _, c := range []struct{ id, vault string }{{"01M930CKCH3FZBE51DP5DKWWCD", "notes"}, {"a<b", "v\"x"}} {
		for _, d := range []core.Durability{core.Local, core.Quorum} {
			pos := core.Pos{Epoch: 3, Seq: 18446744073709551615}
			rec := httptest.NewRecorder()
			writeWriteResult(rec, 201, c.id, c.vault, pos, d)
			want, _ := json.Marshal(apitypes.WriteResult{ID: c.id, Vault: c.vault, Epoch: 3, Seq: uint64(pos.Seq), Durability: d.String()})
			if got := rec.Body.String(); got != string(want)+"\n" || rec.Code != 201 || rec.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("got %d %q, want %q", rec.Code, got, want)
			}
		}
	}
}
