package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/node"
)

// apiError is an error with its HTTP status and stable code.
type apiError struct {
	status    int
	code      string
	msg       string
	cortex    string
	cortexAPI string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: apitypes.CodeBadRequest, msg: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) *apiError {
	return &apiError{status: http.StatusNotFound, code: apitypes.CodeNotFound, msg: fmt.Sprintf(format, args...)}
}

// Response header values, shared by every response: net/http never
// changes a header value in place.
var (
	jsonContentType = []string{"application/json"}
	noSniff         = []string{"nosniff"}
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(apitypes.ErrorBody{Error: apitypes.ErrorDetail{Code: apitypes.CodeInternal, Message: "encoding the response failed: " + err.Error()}})
	}
	writeBody(w, status, append(b, '\n'))
}

func writeBody(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["X-Content-Type-Options"] = noSniff
	w.WriteHeader(status)
	w.Write(b)
}

// writeWriteResult writes apitypes.WriteResult{id, vault, pos, dur}, as
// writeJSON would, without reflection: the answer of every write.
func writeWriteResult(w http.ResponseWriter, status int, id, vault string, pos core.Pos, dur core.Durability) {
	if !plainJSON(id) || !plainJSON(vault) {
		writeJSON(w, status, apitypes.WriteResult{ID: id, Vault: vault, Epoch: uint64(pos.Epoch), Seq: uint64(pos.Seq), Durability: dur.String()})
		return
	}
	b := make([]byte, 0, 96+len(id)+len(vault))
	b = append(b, `{"id":"`...)
	b = append(b, id...)
	b = append(b, `","vault":"`...)
	b = append(b, vault...)
	b = append(b, `","epoch":`...)
	b = strconv.AppendUint(b, uint64(pos.Epoch), 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, uint64(pos.Seq), 10)
	b = append(b, `,"durability":"`...)
	b = append(b, dur.String()...)
	b = append(b, "\"}\n"...)
	writeBody(w, status, b)
}

// plainJSON reports whether s is written in JSON as it is: printable ASCII
// that encoding/json does not escape (ids and vault names are).
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

func writeError(w http.ResponseWriter, e *apiError) {
	switch e.status {
	case http.StatusServiceUnavailable:
		// Everything 503 here is transient: an election, a handoff, a
		// membership change, a node catching up.
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, e.status, apitypes.ErrorBody{Error: apitypes.ErrorDetail{
		Code: e.code, Message: e.msg, Cortex: e.cortex, CortexAPI: e.cortexAPI,
	}})
}

// writeErr writes any error a handler returned.
func (s *Server) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	e := s.toAPIError(err)
	if e.status >= 500 && e.status != http.StatusNotImplemented {
		s.log.Warn("api: request failed", "method", r.Method, "path", r.URL.Path, "status", e.status, "code", e.code, "err", e.msg)
	}
	writeError(w, e)
}

// coreStatus maps the protocol's codes to HTTP statuses.
var coreStatus = map[core.Code]int{
	core.CodeNotCortex:        http.StatusServiceUnavailable,
	core.CodeNoCortex:         http.StatusServiceUnavailable,
	core.CodeReadOnly:         http.StatusForbidden,
	core.CodeTransferring:     http.StatusServiceUnavailable,
	core.CodeQuorumImpossible: http.StatusUnprocessableEntity,
	core.CodeUnknownOutcome:   http.StatusServiceUnavailable,
	core.CodeStale:            http.StatusServiceUnavailable,
	core.CodeBusy:             http.StatusServiceUnavailable,
	core.CodeBadRequest:       http.StatusBadRequest,
	core.CodeUnavailable:      http.StatusServiceUnavailable,
	// Fewer than W data voters answer: nothing was written (rule 17).
	core.CodeQuorumUnavailable: http.StatusServiceUnavailable,
	// The state machine refused the command when it was applied.
	core.CodeConflict: http.StatusConflict,
	// The node's disk is below its reserve (docs/storage.md, "Disk space").
	core.CodeInsufficientStorage: http.StatusInsufficientStorage,
}

func (s *Server) toAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var ce *core.Error
	if errors.As(err, &ce) {
		st, ok := coreStatus[ce.Code]
		if !ok {
			st = http.StatusServiceUnavailable
		}
		e := &apiError{status: st, code: string(ce.Code), msg: ce.Msg}
		if ce.Code == core.CodeNotCortex && ce.Cortex == "" {
			// Not the Cortex and none known: an election is under way.
			e.code = apitypes.CodeNoCortex
		}
		if ce.Cortex != "" {
			e.cortex = string(ce.Cortex)
			e.cortexAPI = s.apiOf(ce.Cortex)
		}
		return e
	}
	switch {
	case errors.Is(err, node.ErrStopped):
		return &apiError{status: http.StatusServiceUnavailable, code: apitypes.CodeUnavailable, msg: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return &apiError{status: http.StatusServiceUnavailable, code: apitypes.CodeUnavailable, msg: "timed out waiting for the cluster; retry"}
	case errors.Is(err, context.Canceled):
		return &apiError{status: http.StatusServiceUnavailable, code: apitypes.CodeUnavailable, msg: "request canceled"}
	}
	return &apiError{status: http.StatusInternalServerError, code: apitypes.CodeInternal, msg: err.Error()}
}

// apiOf returns a member's API URL as this node knows it.
func (s *Server) apiOf(id core.NodeID) string {
	if snap := s.n.Status(); snap != nil {
		return snap.APIAddrs[id]
	}
	return ""
}
