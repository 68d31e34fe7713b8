package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/retry"
)

// WriteBatch creates the engrams of req with one request (POST
// /api/engrams/batch, at most apitypes.MaxBatchItems engrams and
// apitypes.MaxBatchBody bytes), at the durability opts ask for. Each
// engram is its own write: some may be written while others fail.
//
// The client picks the id of every engram that has none, so, as with
// Write, resending never writes one twice: the batch follows the Cortex
// and is retried across a failover like Write, and then the engrams that
// failed with an answer worth retrying (no_cortex, not_cortex,
// unknown_outcome, unavailable, ...) are sent again, with their ids, in a
// smaller batch, within the client's retry budget. An engram whose earlier
// attempt may have been applied and whose resend answers 409 was written
// by that attempt: it is reported written (Epoch and Seq zero), after a
// strong read confirms it when the durability is quorum.
//
// With a nil error, res.Results has one result per engram, in order:
// Error nil means written, as durable as asked; Error.Code
// "unknown_outcome" means it may or may not have been written (read it
// back by ID with a strong read, or write it again with the same ID: a
// 409 then proves the earlier write); any other code means it was not
// written. res.Written, Failed and Unknown count them.
//
// A non-nil error means no engram got an answer of its own: the batch was
// refused as a whole (an *Error: nothing was written; 400 bad_request
// naming the engram's index and field, 413 too_large, no_cortex once the
// budget is spent, ...), or its outcome is unknown as a whole (an
// *AmbiguousError with Op "batch write"). res.Results then still lists
// every engram, with its id and that outcome.
func (c *Client) WriteBatch(ctx context.Context, req apitypes.BatchWriteRequest, opts ...CallOption) (apitypes.BatchWriteResult, error) {
	q := query(opts)
	dur := durOr(q.Get("durability"))
	vault := vaultOr(firstNonEmpty(req.Vault, q.Get("vault")))
	items := make([]apitypes.WriteRequest, len(req.Engrams))
	copy(items, req.Engrams)
	res := apitypes.BatchWriteResult{Durability: dur, Results: make([]apitypes.BatchItemResult, len(items))}
	pending := make([]int, len(items))
	for i := range items {
		if items[i].ID == "" {
			items[i].ID = NewID()
		}
		res.Results[i] = apitypes.BatchItemResult{ID: items[i].ID, Vault: firstNonEmpty(items[i].Vault, vault)}
		pending[i] = i
	}
	// ambiguous[i] is the first attempt that may have written engram i.
	ambiguous := make([]error, len(items))
	var found []int // answered 409 after an attempt that may have written them
	until := time.Now().Add(c.budget)
	var whole error // the first round failed as a whole
	rounds := 0
	_ = retry.Do(ctx, retry.Request(c.budget), func() error {
		rounds++
		sub := apitypes.BatchWriteRequest{Vault: req.Vault, Engrams: make([]apitypes.WriteRequest, len(pending))}
		for k, i := range pending {
			sub.Engrams[k] = items[i]
		}
		var ans apitypes.BatchWriteResult
		oc, err := c.do(ctx, call{kind: kindWrite, method: "POST", path: "/api/engrams/batch", query: q, body: mustJSON(sub), op: "batch write", until: until}, &ans)
		if oc.ambiguous != nil {
			for _, i := range pending {
				if ambiguous[i] == nil {
					ambiguous[i] = oc.ambiguous
				}
			}
		}
		if err == nil && len(ans.Results) != len(pending) {
			err = fmt.Errorf("muninn: the answer to a batch of %d engrams has %d results", len(pending), len(ans.Results))
			for _, i := range pending {
				if ambiguous[i] == nil {
					ambiguous[i] = err
				}
			}
		}
		if err != nil {
			if rounds == 1 {
				whole = err
			}
			for _, i := range pending {
				res.Results[i] = failed(res.Results[i], err)
			}
			return retry.Permanent(err)
		}
		var again []int
		for k, i := range pending {
			r := ans.Results[k]
			if r.Error == nil {
				res.Results[i] = r
				continue
			}
			e := &Error{Status: r.Status, Code: r.Error.Code, Message: r.Error.Message, Cortex: r.Error.Cortex, CortexAPI: r.Error.CortexAPI}
			if ambiguous[i] == nil && !definite(call{kind: kindWrite}, e) {
				ambiguous[i] = e
			}
			if e.Code == apitypes.CodeConflict && ambiguous[i] != nil {
				found = append(found, i)
				continue
			}
			r.ID, r.Vault = res.Results[i].ID, res.Results[i].Vault
			res.Results[i] = r
			if e.Code == apitypes.CodeNotCortex && e.CortexAPI != "" {
				c.setCortex(normalize(e.CortexAPI))
			}
			if retryable(kindWrite, e) {
				again = append(again, i)
			}
		}
		pending = again
		if len(pending) == 0 {
			return nil
		}
		return errResend
	})
	for i := range res.Results {
		r := &res.Results[i]
		if r.Error != nil && ambiguous[i] != nil {
			var last error
			if e, ok := ambiguous[i].(*Error); !ok || e.Code != r.Error.Code || e.Message != r.Error.Message {
				last = fmt.Errorf("%s (%s)", r.Error.Message, r.Error.Code)
			}
			*r = unknown(*r, ambiguous[i], last)
		}
	}
	for _, i := range found {
		res.Results[i] = c.confirm(ctx, res.Results[i], dur, ambiguous[i])
	}
	res.Written, res.Failed, res.Unknown = 0, 0, 0
	for _, r := range res.Results {
		switch {
		case r.Error == nil:
			res.Written++
		case r.Error.Code == apitypes.CodeUnknownOutcome:
			res.Failed++
			res.Unknown++
		default:
			res.Failed++
		}
	}
	if whole != nil {
		return res, whole
	}
	return res, nil
}

var errResend = errors.New("some engrams of the batch are to be sent again")

// confirm reports engram r, which a resend found already written (409)
// after an attempt that may have written it, as written: at once for
// local durability, after a strong read finds it for quorum (a strong read
// answers only once everything the Cortex applied is committed).
func (c *Client) confirm(ctx context.Context, r apitypes.BatchItemResult, dur string, reason error) apitypes.BatchItemResult {
	if dur == "quorum" {
		if _, err := c.Get(ctx, r.Vault, r.ID, Consistency("strong")); err != nil {
			return unknown(r, reason, fmt.Errorf("a resend found the engram on the Cortex, but its quorum durability could not be confirmed by a strong read: %w", err))
		}
	}
	return apitypes.BatchItemResult{ID: r.ID, Vault: r.Vault, Status: http.StatusCreated}
}

// failed is r failed with the error of its whole request.
func failed(r apitypes.BatchItemResult, err error) apitypes.BatchItemResult {
	out := apitypes.BatchItemResult{ID: r.ID, Vault: r.Vault, Status: http.StatusServiceUnavailable,
		Error: &apitypes.ErrorDetail{Code: apitypes.CodeUnavailable, Message: err.Error()}}
	var e *Error
	if errors.As(err, &e) {
		out.Status = e.Status
		out.Error = &apitypes.ErrorDetail{Code: e.Code, Message: e.Message, Cortex: e.Cortex, CortexAPI: e.CortexAPI}
	}
	return out
}

// unknown marks r's outcome unknown: reason is the attempt that may have
// written it, last what the last attempt answered.
func unknown(r apitypes.BatchItemResult, reason, last error) apitypes.BatchItemResult {
	msg := fmt.Sprintf("outcome unknown: engram %s may or may not have been written: %v", r.ID, reason)
	if last != nil && last.Error() != reason.Error() {
		msg += fmt.Sprintf("; then: %v", last)
	}
	msg += "; read it back by id (a strong read), or write it again with the same id"
	return apitypes.BatchItemResult{ID: r.ID, Vault: r.Vault, Status: http.StatusServiceUnavailable,
		Error: &apitypes.ErrorDetail{Code: apitypes.CodeUnknownOutcome, Message: msg}}
}
