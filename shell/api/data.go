package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/core/engram"
	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/node"
)

func nowMS() uint64 { return uint64(time.Now().UnixMilli()) }

// POST /api/engrams
func (s *Server) handleWrite(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var req apitypes.WriteRequest
	if err := decodeFast(body, &req, fastWriteRequest); err != nil {
		return err
	}
	q := query(r)
	vault, err := vaultFrom(q, req.Vault)
	if err != nil {
		return err
	}
	dur, err := durabilityFrom(q)
	if err != nil {
		return err
	}
	if strings.TrimSpace(req.Content) == "" {
		return badRequest("content: required (the text of the memory)")
	}
	id := req.ID
	if id == "" {
		id = node.NewEngramID()
	}
	conf := 1.0
	if req.Confidence != nil {
		conf = *req.Confidence
	}
	cmd := engram.Command{Op: engram.OpWrite, Vault: vault, ID: id, At: nowMS(),
		Concept: req.Concept, Content: req.Content, Tags: req.Tags, Confidence: conf}
	return s.propose(w, r, body, cmd, dur, http.StatusCreated)
}

// PATCH /api/engrams/{id}
func (s *Server) handleUpdate(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var req apitypes.UpdateRequest
	if err := decodeJSON(body, &req); err != nil {
		return err
	}
	q := query(r)
	vault, err := vaultFrom(q, req.Vault)
	if err != nil {
		return err
	}
	dur, err := durabilityFrom(q)
	if err != nil {
		return err
	}
	cmd := engram.Command{Op: engram.OpUpdate, Vault: vault, ID: r.PathValue("id"), At: nowMS()}
	if req.Concept != nil {
		cmd.Set |= engram.FieldConcept
		cmd.Concept = *req.Concept
	}
	if req.Content != nil {
		if strings.TrimSpace(*req.Content) == "" {
			return badRequest("content: cannot be set to empty (forget the engram instead)")
		}
		cmd.Set |= engram.FieldContent
		cmd.Content = *req.Content
	}
	if req.Tags != nil {
		cmd.Set |= engram.FieldTags
		cmd.Tags = *req.Tags
	}
	if req.Confidence != nil {
		cmd.Set |= engram.FieldConfidence
		cmd.Confidence = *req.Confidence
	}
	if cmd.Set == 0 {
		return badRequest("nothing to update: set at least one of concept, content, tags, confidence")
	}
	return s.propose(w, r, body, cmd, dur, http.StatusOK)
}

// DELETE /api/engrams/{id}
func (s *Server) handleForget(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	vault, err := vaultParam(r, "")
	if err != nil {
		return err
	}
	dur, err := durabilityParam(r)
	if err != nil {
		return err
	}
	cmd := engram.Command{Op: engram.OpForget, Vault: vault, ID: r.PathValue("id"), At: nowMS()}
	return s.propose(w, r, body, cmd, dur, http.StatusOK)
}

// propose validates cmd, pre-checks an update or forget on the Cortex,
// writes it and answers with its log position; a Lobe forwards the
// original request.
func (s *Server) propose(w http.ResponseWriter, r *http.Request, body []byte, cmd engram.Command, dur core.Durability, status int) error {
	payload, err := encodeCommand(cmd)
	if err != nil {
		return err
	}
	// A create is not pre-checked: the state machine refuses an id that
	// exists when it applies the entry (409, a no-op entry), and the
	// pre-check's store read cost every write for what only a retry or a
	// client bug meets.
	if cmd.Op != engram.OpWrite {
		if err := s.precheck(cmd, payload); err != nil {
			return err
		}
	}
	start := time.Now()
	pos, err := s.n.Write(r.Context(), payload, dur)
	if err != nil {
		return s.fail(w, r, body, err)
	}
	s.writeObserver(dur).Observe(time.Since(start).Seconds())
	writeWriteResult(w, status, cmd.ID, cmd.Vault, pos, dur)
	return nil
}

// encodeCommand validates and encodes cmd; an invalid one is a 400 naming
// the field.
func encodeCommand(cmd engram.Command) ([]byte, error) {
	payload, err := engram.EncodeCommand(cmd)
	if err != nil {
		if inner := errors.Unwrap(err); inner != nil {
			err = inner // without EncodeCommand's "engram command: "
		}
		return nil, badRequest("%v", err)
	}
	return payload, nil
}

// precheck refuses, on the Cortex, a command the state machine would
// reject (a duplicate id, a missing engram), so it is answered 409/404
// instead of becoming a no-op entry. Other nodes leave it to the Cortex.
func (s *Server) precheck(cmd engram.Command, payload []byte) error {
	if snap := s.n.Status(); snap == nil || snap.Core.Role != core.RoleCortex {
		return nil
	}
	// An existence check, not a dry run of the state machine: the dry run
	// (store.Check) cost three times the real apply on the write path. The
	// state machine still refuses a command that no longer applies when
	// its entry is applied (a no-op entry), so this is advisory.
	switch cmd.Op {
	case engram.OpWrite, engram.OpForget, engram.OpUpdate:
	default:
		return nil
	}
	_, ok, err := s.n.Store().Get(cmd.Vault, cmd.ID)
	if err != nil {
		return err
	}
	if cmd.Op == engram.OpWrite && ok {
		return &apiError{status: http.StatusConflict, code: apitypes.CodeConflict, msg: fmt.Sprintf("engram %s already exists in vault %s", cmd.ID, cmd.Vault)}
	}
	if cmd.Op != engram.OpWrite && !ok {
		return notFound("engram %s not found in vault %s", cmd.ID, cmd.Vault)
	}
	return nil
}

// gate asks the node whether a read may be served here; not_cortex
// forwards the request.
func (s *Server) gate(w http.ResponseWriter, r *http.Request, body []byte, serve func()) (served bool, c core.Consistency, err error) {
	c, lag, err := readParams(r)
	if err != nil {
		return false, c, err
	}
	if err := s.n.Read(r.Context(), c, lag, serve); err != nil {
		return false, c, s.fail(w, r, body, err)
	}
	return true, c, nil
}

func (s *Server) observeRead(c core.Consistency, start time.Time) {
	s.n.Metrics().ReadSeconds.WithLabelValues(c.String()).Observe(time.Since(start).Seconds())
}

// GET /api/engrams/{id}
func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) error {
	start := time.Now()
	id := r.PathValue("id")
	if err := engram.ValidateID(id); err != nil {
		return badRequest("%v", err)
	}
	vault, err := vaultParam(r, "")
	if err != nil {
		return err
	}
	if err := engram.ValidateVault(vault); err != nil {
		return badRequest("%v", err)
	}
	var e engram.Engram
	var found bool
	var rerr error
	ok, c, err := s.gate(w, r, nil, func() { e, found, rerr = s.n.Store().Get(vault, id) })
	if !ok {
		return err
	}
	if rerr != nil {
		return rerr
	}
	if !found {
		return notFound("engram %s not found in vault %s", id, vault)
	}
	s.observeRead(c, start)
	writeJSON(w, http.StatusOK, tidy(e))
	return nil
}

// GET /api/engrams
func (s *Server) handleList(w http.ResponseWriter, r *http.Request) error {
	start := time.Now()
	q := r.URL.Query()
	vault, err := vaultParam(r, "")
	if err != nil {
		return err
	}
	if err := engram.ValidateVault(vault); err != nil {
		return badRequest("%v", err)
	}
	o := engram.ListOptions{Cursor: q.Get("cursor")}
	if v := q.Get("limit"); v != "" {
		o.Limit, err = strconv.Atoi(v)
		if err != nil || o.Limit < 1 || o.Limit > engram.MaxListLimit {
			return badRequest("limit: %q is not an integer in 1..%d", v, engram.MaxListLimit)
		}
	}
	if o.Cursor != "" {
		if err := engram.ValidateID(o.Cursor); err != nil {
			return badRequest("cursor: %v (pass the next_cursor of the previous page)", err)
		}
	}
	if v := q.Get("tags"); v != "" {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				o.Tags = append(o.Tags, t)
			}
		}
		if err := checkTags(o.Tags); err != nil {
			return err
		}
	}
	var p engram.Page
	var rerr error
	ok, c, err := s.gate(w, r, nil, func() { p, rerr = s.n.Store().List(vault, o) })
	if !ok {
		return err
	}
	if rerr != nil {
		return rerr
	}
	res := apitypes.ListResult{Engrams: make([]apitypes.Engram, 0, len(p.Engrams)), NextCursor: p.Next}
	for _, e := range p.Engrams {
		res.Engrams = append(res.Engrams, tidy(e))
	}
	s.observeRead(c, start)
	writeJSON(w, http.StatusOK, res)
	return nil
}

func checkTags(tags []string) error {
	if len(tags) > engram.MaxTags {
		return badRequest("tags: %d tags exceeds the limit of %d", len(tags), engram.MaxTags)
	}
	for i, t := range tags {
		if len(t) > engram.MaxTagLen || !utf8.ValidString(t) {
			return badRequest("tags[%d]: must be valid UTF-8 of at most %d bytes", i, engram.MaxTagLen)
		}
	}
	return nil
}

// POST /api/activate
func (s *Server) handleActivate(w http.ResponseWriter, r *http.Request) error {
	start := time.Now()
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var req apitypes.ActivateRequest
	if err := decodeJSON(body, &req); err != nil {
		return err
	}
	vault, err := vaultParam(r, req.Vault)
	if err != nil {
		return err
	}
	if err := engram.ValidateVault(vault); err != nil {
		return badRequest("%v", err)
	}
	switch {
	case strings.TrimSpace(req.Query) == "":
		return badRequest("query: required (the text to activate memories with)")
	case len(req.Query) > engram.MaxQueryLen:
		return badRequest("query: %d bytes exceeds the limit of %d bytes", len(req.Query), engram.MaxQueryLen)
	case req.Limit < 0 || req.Limit > engram.MaxActivateLimit:
		return badRequest("limit: %d is outside 1..%d", req.Limit, engram.MaxActivateLimit)
	}
	var hits []engram.Hit
	var rerr error
	ok, c, err := s.gate(w, r, body, func() { hits, rerr = s.n.Store().Activate(vault, req.Query, req.Limit) })
	if !ok {
		return err
	}
	if err = rerr; err != nil {
		if strings.HasPrefix(err.Error(), "query:") {
			return badRequest("%v", err)
		}
		return err
	}
	res := apitypes.ActivateResult{Hits: make([]apitypes.Hit, 0, len(hits))}
	for _, h := range hits {
		h.Engram = tidy(h.Engram)
		res.Hits = append(res.Hits, h)
	}
	s.observeRead(c, start)
	writeJSON(w, http.StatusOK, res)
	return nil
}

// tidy makes an engram's JSON stable: tags is [] rather than null.
func tidy(e engram.Engram) engram.Engram {
	if e.Tags == nil {
		e.Tags = []string{}
	}
	return e
}
