package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/core/engram"
	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/store"
)

// quarantineNames are the names a quarantine answer uses.
type quarantineNames struct {
	missing     string // error code of an entry not there
	countHeader string // header of the export's entry count
	file        string // the export's file name, before "-NODE.jsonl"
}

var (
	current = quarantineNames{apitypes.CodeQuarantineMissing, apitypes.HeaderQuarantineCount, "muninn-quarantine"}
	// fencedNames are the deprecated /v1/cluster/fenced paths' names,
	// kept so that scripts written against those paths keep working.
	fencedNames = quarantineNames{apitypes.CodeFencedEntryNotFound, apitypes.HeaderFencedCount, "muninn-fenced"}
)

type namesKey struct{}

// names returns the names r's answer uses.
func names(r *http.Request) quarantineNames {
	if n, ok := r.Context().Value(namesKey{}).(quarantineNames); ok {
		return n
	}
	return current
}

// fencedAlias serves a deprecated /v1/cluster/fenced path with the
// handler of its /v1/cluster/quarantine successor, under the old names.
func fencedAlias(successor string, h handler) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Link", "<"+successor+`>; rel="successor-version"`)
		return h(w, r.WithContext(context.WithValue(r.Context(), namesKey{}, fencedNames)))
	}
}

func quarantineEntry(q store.Quarantined) apitypes.QuarantineEntry {
	return apitypes.QuarantineEntry{Epoch: uint64(q.Epoch), Seq: uint64(q.Seq), Type: q.Type, Durability: q.Durability,
		Vault: q.Vault, Op: q.Op, ID: q.ID, Payload: q.Payload, Reason: q.Reason, TimeMS: q.TimeMS, Base: q.Base}
}

// GET /v1/cluster/quarantine: this node's quarantine (entries a failover
// cut off; they stay on the node that held them).
func (s *Server) handleQuarantine(w http.ResponseWriter, r *http.Request) error {
	qs, err := s.n.Store().Quarantine()
	if err != nil {
		return err
	}
	out := apitypes.QuarantineList{NodeID: string(s.n.ID()), Entries: make([]apitypes.QuarantineEntry, 0, len(qs))}
	for _, q := range qs {
		out.Entries = append(out.Entries, quarantineEntry(q))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// GET /v1/cluster/quarantine/export: the quarantine as JSON lines.
func (s *Server) handleQuarantineExport(w http.ResponseWriter, r *http.Request) error {
	var buf bytes.Buffer
	n, err := s.n.Store().ExportQuarantine(&buf)
	if err != nil {
		return err
	}
	nm := names(r)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%s.jsonl"`, nm.file, s.n.ID()))
	w.Header().Set(nm.countHeader, fmt.Sprint(n))
	w.WriteHeader(http.StatusOK)
	io.Copy(w, &buf)
	return nil
}

func (s *Server) findQuarantined(r *http.Request, ref apitypes.QuarantineRef) (store.Quarantined, error) {
	qs, err := s.n.Store().Quarantine()
	if err != nil {
		return store.Quarantined{}, err
	}
	for _, q := range qs {
		if uint64(q.Epoch) == ref.Epoch && uint64(q.Seq) == ref.Seq {
			return q, nil
		}
	}
	return store.Quarantined{}, &apiError{status: http.StatusNotFound, code: names(r).missing,
		msg: fmt.Sprintf("no quarantined entry %d.%d on %s (list them with muninn cluster quarantine)", ref.Epoch, ref.Seq, s.n.ID())}
}

func readRef(w http.ResponseWriter, r *http.Request) (apitypes.QuarantineRef, []byte, error) {
	var ref apitypes.QuarantineRef
	body, err := readBody(w, r)
	if err != nil {
		return ref, nil, err
	}
	if err := decodeJSON(body, &ref); err != nil {
		return ref, nil, err
	}
	if ref.Epoch == 0 || ref.Seq == 0 {
		return ref, nil, badRequest("epoch and seq: both required (from muninn cluster quarantine)")
	}
	return ref, body, nil
}

// POST /v1/cluster/quarantine/replay {epoch, seq}: write the quarantined
// command again through the Cortex as a conditional write: it applies only
// if the engram is still as the entry found it, and consumes the entry from
// the quarantine in the same batch on every node that holds it (applied at
// most once). A conflict keeps the entry and says why.
func (s *Server) handleQuarantineReplay(w http.ResponseWriter, r *http.Request) error {
	ref, body, err := readRef(w, r)
	if err != nil {
		return err
	}
	if err := s.checkAdmin(r, body); err != nil {
		return err
	}
	q, err := s.findQuarantined(r, ref)
	if err != nil {
		return err
	}
	if q.Type != core.EntryData.String() {
		return badRequest("entry %d.%d is a %s entry, not a data write: only data writes replay (drop it instead)", ref.Epoch, ref.Seq, q.Type)
	}
	cmd, err := engram.DecodeCommand(q.Payload)
	if err != nil {
		return badRequest("entry %d.%d does not decode as an engram command: %v (export it, then drop it)", ref.Epoch, ref.Seq, err)
	}
	dur, err := core.ParseDurability(q.Durability)
	if err != nil {
		dur = core.Local
	}
	if len(q.Base) == 0 {
		return &apiError{status: http.StatusConflict, code: apitypes.CodeConflict, msg: fmt.Sprintf("entry %d.%d was quarantined without the state it was applied on (by an older version), so a replay cannot tell whether the engram was written again meanwhile: export it, merge it by hand, then drop it", ref.Epoch, ref.Seq)}
	}
	if cmd.If, err = engram.DecodePrecondition(q.Base); err != nil {
		return fmt.Errorf("entry %d.%d: %w (export it, then drop it)", ref.Epoch, ref.Seq, err)
	}
	cmd.Consumes = q.Pos()
	payload, err := engram.EncodeCommand(cmd)
	if err != nil {
		return badRequest("entry %d.%d: %v", ref.Epoch, ref.Seq, err)
	}
	pos, err := s.proposeRaw(r, cmd, payload, dur)
	if err != nil {
		return err
	}
	s.log.Info(fmt.Sprintf("replayed quarantined entry %d.%d as a conditional write at %s; every node drops it from its quarantine as it applies that entry", ref.Epoch, ref.Seq, pos))
	writeJSON(w, http.StatusOK, apitypes.ReplayResult{From: ref, Epoch: uint64(pos.Epoch), Seq: uint64(pos.Seq)})
	return nil
}

// POST /v1/cluster/quarantine/drop {epoch, seq}
func (s *Server) handleQuarantineDrop(w http.ResponseWriter, r *http.Request) error {
	ref, body, err := readRef(w, r)
	if err != nil {
		return err
	}
	if err := s.checkAdmin(r, body); err != nil {
		return err
	}
	ok, err := s.n.Store().DropQuarantine(core.Pos{Epoch: core.Epoch(ref.Epoch), Seq: core.Seq(ref.Seq)})
	if err != nil {
		return err
	}
	if !ok {
		_, err := s.findQuarantined(r, ref)
		return err
	}
	s.log.Info(fmt.Sprintf("dropped quarantined entry %d.%d", ref.Epoch, ref.Seq))
	writeJSON(w, http.StatusOK, map[string]any{"dropped": ref})
	return nil
}

// proposeRaw writes an encoded command: here when this node is Cortex,
// else through the Cortex's /v1/cluster/propose (signed as forwarded).
func (s *Server) proposeRaw(r *http.Request, cmd engram.Command, payload []byte, dur core.Durability) (core.Pos, error) {
	if err := s.precheck(cmd, payload); err != nil {
		return core.Pos{}, err
	}
	pos, err := s.n.Write(r.Context(), payload, dur)
	if err == nil {
		return pos, nil
	}
	ce, ok := err.(*core.Error)
	if !ok || ce.Code != core.CodeNotCortex || ce.Cortex == "" {
		return pos, err
	}
	// Send the payload to the Cortex.
	body, _ := json.Marshal(apitypes.ProposeRequest{Payload: payload, Durability: dur.String()})
	req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, "/v1/cluster/propose", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if a := r.Header.Get("Authorization"); a != "" {
		req.Header.Set("Authorization", a)
	}
	rec := &recorder{h: http.Header{}}
	if err := s.forward(rec, req, body, ce.Cortex); err != nil {
		return pos, err
	}
	if rec.status != http.StatusOK && rec.status != http.StatusCreated {
		var eb apitypes.ErrorBody
		if json.Unmarshal(rec.buf.Bytes(), &eb) == nil && eb.Error.Code != "" {
			return pos, &apiError{status: rec.status, code: eb.Error.Code, msg: "the Cortex refused the replay: " + eb.Error.Message, cortex: eb.Error.Cortex, cortexAPI: eb.Error.CortexAPI}
		}
		return pos, &apiError{status: http.StatusBadGateway, code: apitypes.CodeForwardFailed, msg: fmt.Sprintf("the Cortex answered %d: %s", rec.status, strings.TrimSpace(rec.buf.String()))}
	}
	var wr apitypes.WriteResult
	if err := json.Unmarshal(rec.buf.Bytes(), &wr); err != nil {
		return pos, &apiError{status: http.StatusBadGateway, code: apitypes.CodeForwardFailed, msg: fmt.Sprintf("the Cortex's answer does not decode: %v", err)}
	}
	return core.Pos{Epoch: core.Epoch(wr.Epoch), Seq: core.Seq(wr.Seq)}, nil
}

// recorder captures a forwarded answer.
type recorder struct {
	h      http.Header
	status int
	buf    bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) WriteHeader(code int)        { r.status = code }
func (r *recorder) Write(b []byte) (int, error) { return r.buf.Write(b) }

// POST /v1/cluster/propose (internal, admin): write an encoded engram
// command. A node replaying a quarantined entry sends it here on the
// Cortex; a non-Cortex receiving it directly forwards it once.
func (s *Server) handlePropose(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	if err := s.checkAdmin(r, body); err != nil {
		return err
	}
	var req apitypes.ProposeRequest
	if err := decodeJSON(body, &req); err != nil {
		return err
	}
	dur, err := core.ParseDurability(req.Durability)
	if err != nil {
		return badRequest("durability: %v", err)
	}
	cmd, err := engram.DecodeCommand(req.Payload)
	if err != nil {
		return badRequest("payload: %v", err)
	}
	if err := s.precheck(cmd, req.Payload); err != nil {
		return err
	}
	pos, err := s.n.Write(r.Context(), req.Payload, dur)
	if err != nil {
		return s.fail(w, r, body, err)
	}
	writeJSON(w, http.StatusOK, apitypes.WriteResult{ID: cmd.ID, Vault: cmd.Vault, Epoch: uint64(pos.Epoch), Seq: uint64(pos.Seq), Durability: dur.String()})
	return nil
}
