package api

import (
	"strconv"

	"github.com/muninndb/muninn/shell/apitypes"
)

// The bodies of writes, the API's hot path, are decoded here without
// reflection when they are plain: known keys in ASCII, strings without
// escapes, numbers, arrays of strings. Anything else (an escape, null, an
// unknown key, a wrong type, a syntax error) is left to encoding/json,
// whose result and error messages stay the reference: FuzzFastDecode holds
// the two to the same result. checkJSON runs first, so the body is valid
// UTF-8 and has no key twice.

// fastReader is a cursor over a body.
type fastReader struct {
	b []byte
	i int
}

func (r *fastReader) space() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// next skips spaces and reports whether the next byte is c (taking it).
func (r *fastReader) next(c byte) bool {
	r.space()
	if r.i < len(r.b) && r.b[r.i] == c {
		r.i++
		return true
	}
	return false
}

// peek skips spaces and returns the next byte (0 at the end).
func (r *fastReader) peek() byte {
	r.space()
	if r.i < len(r.b) {
		return r.b[r.i]
	}
	return 0
}

// raw returns the contents of a string without escapes or control
// characters, or ok false.
func (r *fastReader) raw() (s []byte, ok bool) {
	if !r.next('"') {
		return nil, false
	}
	start := r.i
	for r.i < len(r.b) {
		switch c := r.b[r.i]; {
		case c == '"':
			s = r.b[start:r.i]
			r.i++
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		}
		r.i++
	}
	return nil, false
}

func (r *fastReader) str() (string, bool) {
	s, ok := r.raw()
	return string(s), ok
}

// float reads a JSON number as encoding/json does into a float64.
func (r *fastReader) float() (float64, bool) {
	r.space()
	c := jsonCheck{b: r.b, i: r.i}
	if r.i >= len(r.b) || !(r.b[r.i] == '-' || r.b[r.i] >= '0' && r.b[r.i] <= '9') || c.number() != nil {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(r.b[r.i:c.i]), 64)
	if err != nil {
		return 0, false
	}
	r.i = c.i
	return f, true
}

// strings reads an array of strings (never nil, as encoding/json).
func (r *fastReader) strings() ([]string, bool) {
	if !r.next('[') {
		return nil, false
	}
	out := []string{}
	if r.next(']') {
		return out, true
	}
	for {
		s, ok := r.str()
		if !ok {
			return nil, false
		}
		out = append(out, s)
		if r.next(']') {
			return out, true
		}
		if !r.next(',') {
			return nil, false
		}
	}
}

// key reads an object key and its colon, folded to lower case (ASCII
// only: other keys are encoding/json's to match).
func (r *fastReader) key(buf []byte) ([]byte, bool) {
	k, ok := r.raw()
	if !ok || len(k) > len(buf) || !r.next(':') {
		return nil, false
	}
	for i, c := range k {
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c >= 0x80:
			return nil, false
		}
		buf[i] = c
	}
	return buf[:len(k)], true
}

// object reads an object, calling field for each key; field reads the
// value and reports whether it could.
func (r *fastReader) object(field func(key []byte) bool) bool {
	if !r.next('{') {
		return false
	}
	if r.next('}') {
		return true
	}
	var buf [16]byte
	for {
		k, ok := r.key(buf[:])
		if !ok || !field(k) {
			return false
		}
		if r.next('}') {
			return true
		}
		if !r.next(',') {
			return false
		}
	}
}

// writeRequest reads a WriteRequest object into w.
func (r *fastReader) writeRequest(w *apitypes.WriteRequest) bool {
	return r.object(func(k []byte) bool {
		var ok bool
		switch string(k) {
		case "vault":
			w.Vault, ok = r.str()
		case "id":
			w.ID, ok = r.str()
		case "concept":
			w.Concept, ok = r.str()
		case "content":
			w.Content, ok = r.str()
		case "tags":
			w.Tags, ok = r.strings()
		case "confidence":
			var f float64
			if f, ok = r.float(); ok {
				w.Confidence = &f
			}
		}
		return ok
	})
}

// end reports whether only spaces are left.
func (r *fastReader) end() bool {
	r.space()
	return r.i == len(r.b)
}

// fastWriteRequest decodes body into w when it is plain, and reports
// whether it did (w is then complete; otherwise it is to be decoded
// again from scratch).
func fastWriteRequest(body []byte, w *apitypes.WriteRequest) bool {
	r := fastReader{b: body}
	return r.writeRequest(w) && r.end()
}

// fastBatchRequest is fastWriteRequest for a batch.
func fastBatchRequest(body []byte, req *apitypes.BatchWriteRequest) bool {
	r := fastReader{b: body}
	return r.object(func(k []byte) bool {
		switch string(k) {
		case "vault":
			var ok bool
			req.Vault, ok = r.str()
			return ok
		case "engrams":
			if !r.next('[') {
				return false
			}
			req.Engrams = []apitypes.WriteRequest{}
			if r.next(']') {
				return true
			}
			for {
				if r.peek() != '{' {
					return false
				}
				req.Engrams = append(req.Engrams, apitypes.WriteRequest{})
				if !r.writeRequest(&req.Engrams[len(req.Engrams)-1]) {
					return false
				}
				if r.next(']') {
					return true
				}
				if !r.next(',') {
					return false
				}
			}
		}
		return false
	}) && r.end()
}
