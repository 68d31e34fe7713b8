package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/apitypes"
)

// readBody reads the whole request body, at most apitypes.MaxBody bytes.
// The bytes are kept so a request can be forwarded verbatim.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, apitypes.MaxBody))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return nil, &apiError{status: http.StatusRequestEntityTooLarge, code: apitypes.CodeTooLarge,
				msg: fmt.Sprintf("request body exceeds the limit of %d bytes (1 MiB)", apitypes.MaxBody)}
		}
		return nil, badRequest("reading the request body: %v", err)
	}
	return b, nil
}

// decodeJSON decodes one JSON object from b into dst: unknown fields and
// trailing data are errors naming what was wrong.
func decodeJSON(b []byte, dst any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return badRequest("request body is empty: expected a JSON object")
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
