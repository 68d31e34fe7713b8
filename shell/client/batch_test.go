package client

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/muninndb/muninn/shell/apitypes"
)

func batchOf(n int, what string) apitypes.BatchWriteRequest {
	req := apitypes.BatchWriteRequest{Engrams: make([]apitypes.WriteRequest, n)}
	for i := range req.Engrams {
		req.Engrams[i] = apitypes.WriteRequest{Content: fmt.Sprintf("%s %d", what, i)}
	}
	return req
}

func TestWriteBatch(t *testing.T) {
	real := standalone(t)
	c := New(real)
	x := ctx(t)
	req := batchOf(5, "batch")
	own := NewID()
	req.Engrams[2].ID = own
	req.Engrams[4].Vault = "other"
	res, err := c.WriteBatch(x, req, Durability("quorum"))
	if err != nil || res.Written != 5 || res.Failed != 0 || res.Durability != "quorum" || len(res.Results) != 5 {
		t.Fatalf("batch %+v %v", res, err)
	}
	if res.Results[2].ID != own || res.Results[4].Vault != "other" || res.Results[0].Vault != "default" || res.Results[0].Seq == 0 {
		t.Fatalf("results %+v", res.Results)
	}
	if req.Engrams[0].ID != "" {
		t.Fatal("WriteBatch changed the caller's request")
	}
	if e, err := c.Get(x, "", own, Consistency("strong")); err != nil || e.Content != "batch 2" {
		t.Fatalf("read back %+v %v", e, err)
	}
	// Sent again with the same ids, nothing ambiguous: every engram is a
	// plain conflict, each on its own.
	for i := range req.Engrams {
		req.Engrams[i].ID = res.Results[i].ID
	}
	again, err := c.WriteBatch(x, req)
	if err != nil || again.Written != 0 || again.Failed != 5 || again.Unknown != 0 {
		t.Fatalf("resent batch %+v %v", again, err)
	}
	for _, r := range again.Results {
		if r.Error == nil || r.Error.Code != "conflict" || r.Status != 409 {
			t.Fatalf("resent engram %+v", r)
		}
	}
	// A bad engram refuses the batch as a whole, naming it; nothing is
	// retried.
	bad := batchOf(3, "bad")
	bad.Vault = "refused"
	bad.Engrams[1].Tags = []string{""}
	res, err = c.WriteBatch(x, bad)
	if !IsCode(err, "bad_request") || !strings.Contains(err.Error(), "engrams[1].tags[0]") {
		t.Fatalf("bad batch: %v", err)
	}
	if len(res.Results) != 3 || res.Results[1].Error == nil || res.Results[1].Error.Code != "bad_request" || res.Written != 0 || res.Failed != 3 {
		t.Fatalf("bad batch results %+v", res)
	}
	if l, err := c.List(x, "refused", ListOptions{}); err != nil || len(l.Engrams) != 0 {
		t.Fatalf("a refused batch wrote %d engrams (%v)", len(l.Engrams), err)
	}
	// Too many engrams: 413.
	if _, err := c.WriteBatch(x, batchOf(apitypes.MaxBatchItems+1, "many")); !IsCode(err, "too_large") {
		t.Fatalf("too many: %v", err)
	}
}

// rewrite is a node in front of the real one that changes the answer of
// the first batch it sees: drop names engrams it does not pass on and
// answers no_cortex for (not written); lose names engrams it passes on but
// answers unknown_outcome for (written, answer lost).
func rewrite(t *testing.T, real string, drop, lose []int) (*fake, *[][]string) {
	var mu sync.Mutex
	var sent [][]string // the contents of each batch the fake saw
	f := newFake(t, real, func(n int64, w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/api/engrams/batch" {
			return false
		}
		body, _ := io.ReadAll(r.Body)
		var req apitypes.BatchWriteRequest
		json.Unmarshal(body, &req)
		mu.Lock()
		var contents []string
		for _, e := range req.Engrams {
			contents = append(contents, e.Content)
		}
		sent = append(sent, contents)
		first := len(sent) == 1
		mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		if !first {
			return false
		}
		pass := req
		pass.Engrams = nil
		for i, e := range req.Engrams {
			if !slices.Contains(drop, i) {
				pass.Engrams = append(pass.Engrams, e)
			}
		}
		b, _ := json.Marshal(pass)
		r.Body = io.NopCloser(bytes.NewReader(b))
		rec := httptest.NewRecorder()
		proxy(rec, r, real)
		var ans apitypes.BatchWriteResult
		if err := json.Unmarshal(rec.Body.Bytes(), &ans); err != nil {
			t.Errorf("proxied batch: %s", rec.Body.Bytes())
		}
		var out []apitypes.BatchItemResult
		k := 0
		for i, e := range req.Engrams {
			switch {
			case slices.Contains(drop, i):
				out = append(out, apitypes.BatchItemResult{ID: e.ID, Vault: "default", Status: 503, Error: &apitypes.ErrorDetail{Code: "no_cortex", Message: "scripted: not written"}})
				continue
			case slices.Contains(lose, i):
				out = append(out, apitypes.BatchItemResult{ID: e.ID, Vault: "default", Status: 503, Error: &apitypes.ErrorDetail{Code: "unknown_outcome", Message: "scripted: written, answer lost"}})
			default:
				out = append(out, ans.Results[k])
			}
			k++
		}
		ans.Results = out
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(200)
		json.NewEncoder(w).Encode(ans)
		return true
	})
	return f, &sent
}

// TestWriteBatchResendsFailedEngrams: engrams that failed with an answer
// worth retrying are sent again, alone, with their ids; one whose first
// attempt was in fact applied is found (409) and reported written, once.
func TestWriteBatchResendsFailedEngrams(t *testing.T) {
	real := standalone(t)
	x := ctx(t)
	for _, dur := range []string{"local", "quorum"} {
		vault := "resend-" + dur
		f, sent := rewrite(t, real, []int{1}, []int{3})
		req := batchOf(5, dur)
		req.Vault = vault
		res, err := New(f.srv.URL).WriteBatch(x, req, Durability(dur))
		if err != nil || res.Written != 5 || res.Failed != 0 || res.Unknown != 0 {
			t.Fatalf("%s: %+v %v", dur, res, err)
		}
		if got := fmt.Sprint(*sent); got != fmt.Sprintf("[[%[1]s 0 %[1]s 1 %[1]s 2 %[1]s 3 %[1]s 4] [%[1]s 1 %[1]s 3]]", dur) {
			t.Fatalf("%s: batches sent: %s", dur, got)
		}
		// Engram 1 was written by the resend (its position known), engram 3
		// by the first attempt (found: position unknown).
		if res.Results[1].Seq == 0 || res.Results[3].Seq != 0 || res.Results[3].Status != 201 {
			t.Fatalf("%s: results %+v", dur, res.Results)
		}
		l, err := New(real).List(x, vault, ListOptions{})
		if err != nil || len(l.Engrams) != 5 {
			t.Fatalf("%s: %d engrams written, want 5 (%v)", dur, len(l.Engrams), err)
		}
	}
	// Without a retry budget nothing is resent: the lost answer is
	// ambiguous, the refused engram failed.
	f, sent := rewrite(t, real, []int{1}, []int{3})
	req := batchOf(5, "once")
	req.Vault = "once"
	res, err := New(f.srv.URL, WithRetryBudget(0)).WriteBatch(x, req)
	if err != nil || res.Written != 3 || res.Failed != 2 || res.Unknown != 1 || len(*sent) != 1 {
		t.Fatalf("no budget: %+v %v (%d batches)", res, err, len(*sent))
	}
	if e := res.Results[1].Error; e == nil || e.Code != "no_cortex" {
		t.Fatalf("refused engram: %+v", res.Results[1])
	}
	if e := res.Results[3].Error; e == nil || e.Code != "unknown_outcome" || !strings.Contains(e.Message, res.Results[3].ID) {
		t.Fatalf("lost engram: %+v", res.Results[3])
	}
	// It was written: read back by its id.
	if _, err := New(real).Get(x, "once", res.Results[3].ID, Consistency("strong")); err != nil {
		t.Fatal(err)
	}
}

// TestWriteBatchAmbiguous: the whole batch is applied and its answer lost.
// Retried, every engram answers 409 and is reported written, once; with no
// retry the batch's outcome is unknown and each engram says so.
func TestWriteBatchAmbiguous(t *testing.T) {
	real := standalone(t)
	x := ctx(t)
	dropFirst := func() *fake {
		return newFake(t, real, func(n int64, w http.ResponseWriter, r *http.Request) bool {
			if n == 1 {
				proxy(httptest.NewRecorder(), r, real)
				drop(t, w)
				return true
			}
			return false
		})
	}
	req := batchOf(4, "dropped")
	req.Vault = "dropped"
	res, err := New(dropFirst().srv.URL).WriteBatch(x, req, Durability("quorum"))
	if err != nil || res.Written != 4 || res.Failed != 0 {
		t.Fatalf("dropped then retried: %+v %v", res, err)
	}
	if l, err := New(real).List(x, "dropped", ListOptions{}); err != nil || len(l.Engrams) != 4 {
		t.Fatalf("applied %d engrams, want 4 (%v)", len(l.Engrams), err)
	}
	req.Vault = "lost"
	res, err = New(dropFirst().srv.URL, WithRetryBudget(0)).WriteBatch(x, req)
	ae := ambiguous(t, "batch", err, "", "")
	if ae.Op != "batch write" || !strings.Contains(err.Error(), "same ids") {
		t.Fatalf("ambiguous batch: %v", err)
	}
	if res.Unknown != 4 || res.Written != 0 || len(res.Results) != 4 {
		t.Fatalf("ambiguous batch results %+v", res)
	}
	for _, r := range res.Results {
		if r.Error == nil || r.Error.Code != "unknown_outcome" || r.ID == "" {
			t.Fatalf("ambiguous engram %+v", r)
		}
	}
}
