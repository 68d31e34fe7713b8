package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/apitypes"
)

// readBody reads the whole request body, at most apitypes.MaxBody bytes.
// The bytes are kept so a request can be forwarded verbatim.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return readBodyMax(w, r, apitypes.MaxBody, "")
}

// readBodyMax reads the whole request body, at most limit bytes; hint is
// added to the 413's message.
func readBodyMax(w http.ResponseWriter, r *http.Request, limit int64, hint string) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return nil, &apiError{status: http.StatusRequestEntityTooLarge, code: apitypes.CodeTooLarge,
				msg: fmt.Sprintf("request body exceeds the limit of %d bytes (%d MiB)%s", limit, limit>>20, hint)}
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, badRequest("the request body did not arrive in time: a body must be sent within the body timeout (%v by default) of its headers; see docs/api.md, Connection limits", DefaultBodyTimeout)
		}
		return nil, badRequest("reading the request body: %v", err)
	}
	clearBodyDeadline(w)
	return b, nil
}

// decodeJSON decodes one JSON object from b into dst: unknown fields,
// trailing data, invalid UTF-8 and keys given twice are errors naming what
// was wrong.
func decodeJSON(b []byte, dst any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return badRequest("request body is empty: expected a JSON object")
	}
	if err := checkJSON(b); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err != io.EOF {
		return badRequest("trailing data after the JSON object (send exactly one object)")
	}
	return nil
}

// maxJSONDepth bounds the nesting of a body (ours are flat).
const maxJSONDepth = 32

// checkJSON walks the first JSON value in b token by token, before it is
// decoded, for what encoding/json accepts silently: invalid UTF-8 and lone
// UTF-16 surrogate escapes in strings (it substitutes U+FFFD) and a key
// given twice in an object (it keeps the last; keys match fields
// case-insensitively, so "content" and "Content" are the same). Each is
// refused naming the field. Syntax errors are left to the decoder.
func checkJSON(b []byte) error {
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

func orStart(p string) string {
	if p == "" {
		return "the start of the object"
	}
	return "field " + p
}

// badJSONString checks the raw bytes of a string token (with what precedes
// it: spaces, ':' or ','): valid UTF-8, and every \u escape of a UTF-16
// surrogate one half of a pair. It returns what is wrong, or "".
func badJSONString(raw []byte) string {
	if !utf8.Valid(raw) {
		return "invalid UTF-8 in a string (send UTF-8 text)"
	}
	hex4 := func(i int) (rune, bool) {
		if i+4 > len(raw) {
			return 0, false
		}
		v, err := strconv.ParseUint(string(raw[i:i+4]), 16, 16)
		return rune(v), err == nil
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		i++
		if i >= len(raw) || raw[i] != 'u' {
			continue
		}
		r, ok := hex4(i + 1)
		if !ok {
			continue
		}
		i += 4
		switch {
		case r >= 0xDC00 && r < 0xE000:
			return fmt.Sprintf("invalid UTF-16 escape \\u%04x (a low surrogate without a high one)", r)
		case r >= 0xD800 && r < 0xDC00:
			if i+2 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
				if lo, ok := hex4(i + 3); ok && lo >= 0xDC00 && lo < 0xE000 {
					i += 6
					continue
				}
			}
			return fmt.Sprintf("invalid UTF-16 escape \\u%04x (a high surrogate without a low one)", r)
		}
	}
	return ""
}

func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return badRequest("malformed JSON at byte %d: %v", syn.Offset, err)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return badRequest("expected a JSON object, got %s", typ.Value)
		}
		return badRequest("field %s: expected %s, got %s", field, jsonType(typ.Type.String()), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("malformed JSON: unexpected end of the body")
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return badRequest("unknown field %s (see docs/api.md for the accepted fields)", f)
	}
	return badRequest("malformed JSON: %v", err)
}

func jsonType(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"), strings.HasPrefix(goType, "*[]"):
		return "an array"
	case strings.Contains(goType, "string"):
		return "a string"
	case strings.Contains(goType, "float"), strings.Contains(goType, "int"):
		return "a number"
	case strings.Contains(goType, "bool"):
		return "a boolean"
	}
	return goType
}

// vaultParam returns the request's vault: the body's (bodyVault), the
// vault query parameter, or "default". Both given and different is an error.
func vaultParam(r *http.Request, bodyVault string) (string, error) {
	q := r.URL.Query().Get("vault")
	switch {
	case bodyVault != "" && q != "" && bodyVault != q:
		return "", badRequest("vault: the body says %q but the vault parameter says %q", bodyVault, q)
	case bodyVault != "":
		return bodyVault, nil
	case q != "":
		return q, nil
	}
	return apitypes.DefaultVault, nil
}

func durabilityParam(r *http.Request) (core.Durability, error) {
	d, err := core.ParseDurability(r.URL.Query().Get("durability"))
	if err != nil {
		return 0, badRequest("durability: %v", err)
	}
	return d, nil
}

// readParams reads consistency and max_lag_ms.
func readParams(r *http.Request) (core.Consistency, int64, error) {
	q := r.URL.Query()
	c, err := core.ParseConsistency(q.Get("consistency"))
	if err != nil {
		return 0, 0, badRequest("consistency: %v", err)
	}
	var lag int64
	if v := q.Get("max_lag_ms"); v != "" {
		lag, err = strconv.ParseInt(v, 10, 64)
		if err != nil || lag < 0 {
			return 0, 0, badRequest("max_lag_ms: %q is not a non-negative integer of milliseconds", v)
		}
		if c != core.Bounded {
			return 0, 0, badRequest("max_lag_ms: only applies with consistency=bounded")
		}
	} else if c == core.Bounded {
		return 0, 0, badRequest("max_lag_ms: required with consistency=bounded (e.g. max_lag_ms=100)")
	}
	return c, lag, nil
}
