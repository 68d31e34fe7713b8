package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
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
	// One buffer of the announced size (and a byte for the EOF read), not
	// io.ReadAll's growing from 512 bytes.
	size := int64(512)
	if n := r.ContentLength; n >= 0 && n < limit {
		size = n + 1
	}
	b, err := readAll(http.MaxBytesReader(w, r.Body, limit), make([]byte, 0, size))
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

// readAll is io.ReadAll into b.
func readAll(r io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// decodeJSON decodes one JSON object from b into dst: unknown fields,
// trailing data, invalid UTF-8 and keys given twice are errors naming what
// was wrong.
func decodeJSON(b []byte, dst any) error {
	if err := checkBody(b); err != nil {
		return err
	}
	return decodeStd(b, dst)
}

// decodeFast is decodeJSON trying fast first (fastjson.go): fast decodes
// a plain body into dst and reports whether it did; otherwise encoding/json
// decodes it into dst made zero again.
func decodeFast[T any](b []byte, dst *T, fast func([]byte, *T) bool) error {
	if err := checkBody(b); err != nil {
		return err
	}
	if fast(b, dst) {
		return nil
	}
	var zero T
	*dst = zero
	return decodeStd(b, dst)
}

// checkBody refuses an empty body and what checkJSON refuses.
func checkBody(b []byte) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return badRequest("request body is empty: expected a JSON object")
	}
	return checkJSON(b)
}

// decodeStd decodes b into dst with encoding/json.
func decodeStd(b []byte, dst any) error {
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

// checkJSON scans the first JSON value in b, before it is decoded, for
// what encoding/json accepts silently: invalid UTF-8 and lone UTF-16
// surrogate escapes in strings (it substitutes U+FFFD) and a key given
// twice in an object (it keeps the last; keys match fields
// case-insensitively, so "content" and "Content" are the same). Each is
// refused naming the field. Syntax errors are left to the decoder.
//
// It is one pass over the bytes that allocates nothing for a body of
// ASCII keys (an earlier version walked json.Decoder tokens, with a map
// per object, and cost more than the decoding itself).
func checkJSON(b []byte) error {
	c := jsonChecks.Get().(*jsonCheck)
	defer c.release()
	c.b, c.i = b, 0
	c.space()
	if c.i >= len(b) {
		return nil
	}
	if err := c.value(); err != errJSONSyntax {
		return err
	}
	return nil
}

// jsonChecks keeps scanners, with their buffers, between requests.
var jsonChecks = sync.Pool{New: func() any {
	return &jsonCheck{stack: make([]jsonLevel, 0, maxJSONDepth), keys: make([][2]int, 0, 32), fold: make([]byte, 0, 256)}
}}

func (c *jsonCheck) release() {
	for i := range c.stack {
		c.stack[i].many = nil
	}
	c.b, c.stack, c.keys, c.fold = nil, c.stack[:0], c.keys[:0], c.fold[:0]
	if cap(c.keys) > 1024 || cap(c.fold) > 16<<10 {
		return // grown by an unusual body: let it go
	}
	jsonChecks.Put(c)
}

// errJSONSyntax stops the scan at malformed JSON: the decoder names it.
var errJSONSyntax = errors.New("json syntax")

// manyKeys is where an object's key check switches from comparing with
// every earlier key to a map.
const manyKeys = 16

type jsonLevel struct {
	obj bool
	idx int // arrays: the current element
	// objects: the current key's token (quotes included; 0, 0 before the
	// first key), and where the object's folded keys start in keys.
	key       [2]int
	keys      int
	foldStart int
	many      map[string]bool
}

// jsonCheck is checkJSON's scanner: i is the next byte of b; keys are the
// open objects' keys, folded, as spans of fold.
type jsonCheck struct {
	b     []byte
	i     int
	stack []jsonLevel // at most maxJSONDepth: push refuses more
	keys  [][2]int
	fold  []byte
}

func (c *jsonCheck) space() {
	for c.i < len(c.b) {
		switch c.b[c.i] {
		case ' ', '\t', '\n', '\r':
			c.i++
		default:
			return
		}
	}
}

func (c *jsonCheck) value() error {
	c.space()
	if c.i >= len(c.b) {
		return errJSONSyntax
	}
	switch ch := c.b[c.i]; {
	case ch == '{':
		return c.object()
	case ch == '[':
		return c.array()
	case ch == '"':
		start := c.i
		plain, ok := c.str()
		if !ok {
			return errJSONSyntax
		}
		if !plain {
			if msg := badJSONString(c.b[start:c.i]); msg != "" {
				return badRequest("%s: %s", c.field(), msg)
			}
		}
		return nil
	case ch == 't':
		return c.literal("true")
	case ch == 'f':
		return c.literal("false")
	case ch == 'n':
		return c.literal("null")
	case ch == '-' || ch >= '0' && ch <= '9':
		return c.number()
	}
	return errJSONSyntax
}

func (c *jsonCheck) literal(lit string) error {
	if len(c.b)-c.i < len(lit) || string(c.b[c.i:c.i+len(lit)]) != lit {
		return errJSONSyntax
	}
	c.i += len(lit)
	return nil
}

func (c *jsonCheck) digits() int {
	n := 0
	for c.i < len(c.b) && c.b[c.i] >= '0' && c.b[c.i] <= '9' {
		c.i++
		n++
	}
	return n
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (c *jsonCheck) number() error {
	if c.b[c.i] == '-' {
		c.i++
	}
	switch {
	case c.i < len(c.b) && c.b[c.i] == '0':
		c.i++
	case c.digits() == 0:
		return errJSONSyntax
	}
	if c.i < len(c.b) && c.b[c.i] == '.' {
		c.i++
		if c.digits() == 0 {
			return errJSONSyntax
		}
	}
	if c.i < len(c.b) && (c.b[c.i] == 'e' || c.b[c.i] == 'E') {
		c.i++
		if c.i < len(c.b) && (c.b[c.i] == '+' || c.b[c.i] == '-') {
			c.i++
		}
		if c.digits() == 0 {
			return errJSONSyntax
		}
	}
	return nil
}

// str scans the string token at c.i, leaving c.i after it. ok is false
// for a malformed string (a control character, a bad escape, no end);
// plain says it is ASCII without escapes, so there is nothing to check.
func (c *jsonCheck) str() (plain, ok bool) {
	b := c.b
	plain = true
	for i := c.i + 1; i < len(b); {
		switch ch := b[i]; {
		case ch == '"':
			c.i = i + 1
			return plain, true
		case ch == '\\':
			plain = false
			if i+1 >= len(b) {
				return false, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return false, false
				}
				for _, h := range b[i+2 : i+6] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false, false
					}
				}
				i += 6
			default:
				return false, false
			}
		case ch < 0x20:
			return false, false
		default:
			if ch >= 0x80 {
				plain = false
			}
			i++
		}
	}
	return false, false
}

func (c *jsonCheck) push(obj bool) error {
	if len(c.stack) >= maxJSONDepth {
		return badRequest("%s: JSON nested deeper than %d levels", c.field(), maxJSONDepth)
	}
	c.i++
	c.stack = append(c.stack, jsonLevel{obj: obj, keys: len(c.keys), foldStart: len(c.fold)})
	return nil
}

func (c *jsonCheck) pop() {
	l := c.stack[len(c.stack)-1]
	if l.obj {
		c.keys, c.fold = c.keys[:l.keys], c.fold[:l.foldStart]
	}
	c.stack = c.stack[:len(c.stack)-1]
}

func (c *jsonCheck) object() error {
	if err := c.push(true); err != nil {
		return err
	}
	d := len(c.stack) - 1
	c.space()
	if c.i < len(c.b) && c.b[c.i] == '}' {
		c.i++
		c.pop()
		return nil
	}
	for {
		c.space()
		if c.i >= len(c.b) || c.b[c.i] != '"' {
			return errJSONSyntax
		}
		start := c.i
		plain, ok := c.str()
		if !ok {
			return errJSONSyntax
		}
		if !plain {
			if msg := badJSONString(c.b[start:c.i]); msg != "" {
				return badRequest("a field name after %s: %s", orStart(c.path()), msg)
			}
		}
		c.stack[d].key = [2]int{start, c.i}
		if c.given(d, plain) {
			return badRequest("%s: given twice (a key may appear once in an object, and keys match fields whatever their case)", c.field())
		}
		c.space()
		if c.i >= len(c.b) || c.b[c.i] != ':' {
			return errJSONSyntax
		}
		c.i++
		if err := c.value(); err != nil {
			return err
		}
		c.space()
		if c.i >= len(c.b) {
			return errJSONSyntax
		}
		switch c.b[c.i] {
		case ',':
			c.i++
		case '}':
			c.i++
			c.pop()
			return nil
		default:
			return errJSONSyntax
		}
	}
}

func (c *jsonCheck) array() error {
	if err := c.push(false); err != nil {
		return err
	}
	d := len(c.stack) - 1
	c.space()
	if c.i < len(c.b) && c.b[c.i] == ']' {
		c.i++
		c.pop()
		return nil
	}
	for {
		if err := c.value(); err != nil {
			return err
		}
		c.space()
		if c.i >= len(c.b) {
			return errJSONSyntax
		}
		switch c.b[c.i] {
		case ',':
			c.i++
			c.stack[d].idx++
		case ']':
			c.i++
			c.pop()
			return nil
		default:
			return errJSONSyntax
		}
	}
}

// given records the current key of the object at level d, folded as
// encoding/json matches keys to fields, and reports whether the object
// already had it.
func (c *jsonCheck) given(d int, plain bool) bool {
	l := &c.stack[d]
	at := len(c.fold)
	if plain {
		for _, ch := range c.b[l.key[0]+1 : l.key[1]-1] {
			if ch >= 'A' && ch <= 'Z' {
				ch += 'a' - 'A'
			}
			c.fold = append(c.fold, ch)
		}
	} else {
		c.fold = append(c.fold, strings.ToLower(strings.ToUpper(c.keyName(l.key)))...)
	}
	key := c.fold[at:]
	n := len(c.keys) - l.keys
	switch {
	case n < manyKeys:
		for _, k := range c.keys[l.keys:] {
			if string(c.fold[k[0]:k[1]]) == string(key) {
				return true
			}
		}
	case l.many == nil:
		l.many = make(map[string]bool, 2*manyKeys)
		for _, k := range c.keys[l.keys:] {
			l.many[string(c.fold[k[0]:k[1]])] = true
		}
		fallthrough
	default:
		if l.many[string(key)] {
			return true
		}
		l.many[string(key)] = true
	}
	c.keys = append(c.keys, [2]int{at, len(c.fold)})
	return false
}

// keyName is the key whose token is b[k[0]:k[1]], decoded ("" for none).
func (c *jsonCheck) keyName(k [2]int) string {
	if k[1] == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(c.b[k[0]:k[1]], &s) != nil {
		return string(c.b[k[0]+1 : k[1]-1])
	}
	return s
}

// path names where the scan is: object keys joined with '.', array
// indexes in brackets.
func (c *jsonCheck) path() string {
	var sb strings.Builder
	for _, l := range c.stack {
		if l.obj {
			if sb.Len() > 0 {
				sb.WriteByte('.')
			}
			sb.WriteString(c.keyName(l.key))
		} else {
			fmt.Fprintf(&sb, "[%d]", l.idx)
		}
	}
	return sb.String()
}

func (c *jsonCheck) field() string {
	if p := c.path(); p != "" {
		return "field " + p
	}
	return "the body"
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

// query parses r's query string (nil when there is none).
func query(r *http.Request) url.Values {
	if r.URL.RawQuery == "" {
		return nil
	}
	return r.URL.Query()
}

// vaultParam returns the request's vault: the body's (bodyVault), the
// vault query parameter, or "default". Both given and different is an error.
func vaultParam(r *http.Request, bodyVault string) (string, error) {
	return vaultFrom(query(r), bodyVault)
}

// vaultFrom is vaultParam with the query already parsed.
func vaultFrom(params url.Values, bodyVault string) (string, error) {
	q := params.Get("vault")
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
	return durabilityFrom(query(r))
}

// durabilityFrom is durabilityParam with the query already parsed.
func durabilityFrom(q url.Values) (core.Durability, error) {
	d, err := core.ParseDurability(q.Get("durability"))
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
