package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/core/engram"
	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/node"
)

// POST /api/engrams/batch
//
// Every engram is its own write (its own log entry, applied and refused on
// its own), and they go into the node's loop together, so they share its
// fsync. The answer is one result per engram, in order; see docs/api.md,
// "Batch writes", for what a partial failure means.
func (s *Server) handleWriteBatch(w http.ResponseWriter, r *http.Request) error {
	body, err := readBodyMax(w, r, apitypes.MaxBatchBody, "; a batch may be at most that: send fewer or smaller engrams per request")
	if err != nil {
		return err
	}
	var req apitypes.BatchWriteRequest
	if err := decodeFast(body, &req, fastBatchRequest); err != nil {
		return locateBatchError(body, err)
	}
	switch n := len(req.Engrams); {
	case n == 0:
		return badRequest("engrams: required: a non-empty array of engrams to write")
	case n > apitypes.MaxBatchItems:
		return &apiError{status: http.StatusRequestEntityTooLarge, code: apitypes.CodeTooLarge,
			msg: fmt.Sprintf("the batch has %d engrams, over the limit of %d engrams per request: split it", n, apitypes.MaxBatchItems)}
	}
	vault, err := vaultParam(r, req.Vault)
	if err != nil {
		return err
	}
	qVault := r.URL.Query().Get("vault")
	dur, err := durabilityParam(r)
	if err != nil {
		return err
	}
	at := nowMS()
	cmds := make([]engram.Command, len(req.Engrams))
	payloads := make([][]byte, len(req.Engrams))
	var seen map[string]int // vault/id -> index, for client-chosen ids
	for i, it := range req.Engrams {
		v := vault
		if it.Vault != "" {
			if qVault != "" && it.Vault != qVault {
				return badRequest("engrams[%d].vault: the engram says %q but the vault parameter says %q", i, it.Vault, qVault)
			}
			v = it.Vault
		}
		if strings.TrimSpace(it.Content) == "" {
			return badRequest("engrams[%d].content: required (the text of the memory)", i)
		}
		id := it.ID
		if id == "" {
			id = node.NewEngramID()
		} else {
			if seen == nil {
				seen = map[string]int{}
			}
			key := v + "/" + id
			if j, dup := seen[key]; dup {
				return badRequest("engrams[%d].id: %s is also the id of engrams[%d] in vault %s; the ids of one batch must differ", i, id, j, v)
			}
			seen[key] = i
		}
		conf := 1.0
		if it.Confidence != nil {
			conf = *it.Confidence
		}
		cmds[i] = engram.Command{Op: engram.OpWrite, Vault: v, ID: id, At: at,
			Concept: it.Concept, Content: it.Content, Tags: it.Tags, Confidence: conf}
		if payloads[i], err = engram.EncodeCommand(cmds[i]); err != nil {
			return badRequest("engrams[%d].%v", i, errors.Unwrap(err))
		}
	}
	// A Lobe sends the batch on to the Cortex as it came (rule 13) rather
	// than have its loop refuse every engram first. The Cortex judges for
	// itself: if it no longer leads, it answers not_cortex.
	if cortex, ok := s.forwardTarget(); ok {
		return s.forward(w, r, body, cortex)
	}
	start := time.Now()
	results := s.n.WriteBatch(r.Context(), payloads, dur)
	if err := batchRefused(results); err != nil {
		// Refused as a whole, before anything was written (no Cortex, a
		// Lobe, a full disk...): answered as a single write would be, and
		// forwarded when it names the Cortex.
		return s.fail(w, r, body, err)
	}
	out := apitypes.BatchWriteResult{Durability: dur.String(), Results: make([]apitypes.BatchItemResult, len(results))}
	obs := s.n.Metrics().WriteSeconds.WithLabelValues(dur.String())
	took := time.Since(start).Seconds()
	for i, res := range results {
		item := apitypes.BatchItemResult{ID: cmds[i].ID, Vault: cmds[i].Vault}
		if res.Err == nil {
			item.Status, item.Epoch, item.Seq = http.StatusCreated, uint64(res.Pos.Epoch), uint64(res.Pos.Seq)
			out.Written++
			obs.Observe(took)
		} else {
			e := s.toAPIError(res.Err)
			item.Status = e.status
			item.Error = &apitypes.ErrorDetail{Code: e.code, Message: e.msg, Cortex: e.cortex, CortexAPI: e.cortexAPI}
			out.Failed++
			if e.code == apitypes.CodeUnknownOutcome {
				out.Unknown++
			}
		}
		out.Results[i] = item
	}
	status := http.StatusCreated
	if out.Failed > 0 {
		status = http.StatusOK
	}
	writeJSON(w, status, out)
	return nil
}

// forwardTarget names the Cortex a data node that is not the Cortex sends
// a batch to, from the loop's last published status.
func (s *Server) forwardTarget() (core.NodeID, bool) {
	snap := s.n.Status()
	if snap == nil || s.n.Options().Kind != core.KindAuto {
		return "", false
	}
	c := snap.Core
	if c.Role == core.RoleCortex || c.Cortex == "" || c.Cortex == s.n.ID() {
		return "", false
	}
	return c.Cortex, true
}

// batchRefused returns the error of a batch whose every engram was refused
// with the same code, other than conflict (which is about each engram):
// the batch as a whole was refused, and nothing of it was written (or, for
// unknown_outcome, the whole batch's outcome is unknown).
func batchRefused(results []core.Result) *core.Error {
	first := results[0].Err
	if first == nil || first.Code == core.CodeConflict {
		return nil
	}
	for _, r := range results[1:] {
		if r.Err == nil || r.Err.Code != first.Code {
			return nil
		}
	}
	return first
}

// locateBatchError names the engram a body's decoding error is about: the
// decoder's own message gives the field but not the index.
func locateBatchError(body []byte, err error) error {
	var ae *apiError
	if !errors.As(err, &ae) || strings.Contains(ae.msg, "engrams[") {
		return err
	}
	var raw struct {
		Engrams []json.RawMessage `json:"engrams"`
	}
	if json.Unmarshal(body, &raw) != nil {
		return err
	}
	for i, item := range raw.Engrams {
		var wr apitypes.WriteRequest
		if e := decodeJSON(item, &wr); e != nil {
			var ie *apiError
			if errors.As(e, &ie) {
				return badRequest("engrams[%d]: %s", i, ie.msg)
			}
		}
	}
	return err
}
