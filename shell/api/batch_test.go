package api

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/node"
)

func batchBody(t *testing.T, req apitypes.BatchWriteRequest) string {
	t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func items(n int, content string) []apitypes.WriteRequest {
	out := make([]apitypes.WriteRequest, n)
	for i := range out {
		out[i] = apitypes.WriteRequest{Content: fmt.Sprintf("%s %d", content, i), Tags: []string{"batch"}}
	}
	return out
}

// saves reads muninn_store_save_seconds_count from /metrics.
func (e *env) saves() int {
	e.t.Helper()
	r := e.do("GET", "/metrics", "")
	m := regexp.MustCompile(`(?m)^muninn_store_save_seconds_count(?:\{[^}]*\})? (\d+)`).FindSubmatch(r.body)
	if m == nil {
		e.t.Fatalf("no muninn_store_save_seconds_count in /metrics")
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

func (e *env) count(vault string) int {
	e.t.Helper()
	var lr apitypes.ListResult
	r := e.do("GET", "/api/engrams?limit=1000&vault="+vault, "")
	expect(e.t, r, 200, "")
	r.json(e.t, &lr)
	return len(lr.Engrams)
}

func TestBatchWrite(t *testing.T) {
	e := standalone(t, Options{})
	req := apitypes.BatchWriteRequest{Vault: "notes", Engrams: items(100, "note")}
	own := node.NewEngramID()
	req.Engrams[7].ID = own
	req.Engrams[9].Vault = "other"
	// What one write costs in saves (the entry, then the commit point).
	before := e.saves()
	expect(t, e.do("POST", "/api/engrams?durability=quorum", `{"content":"one"}`), 201, "")
	single := e.saves() - before
	before = e.saves()
	r := e.do("POST", "/api/engrams/batch?durability=quorum", batchBody(t, req))
	expect(t, r, 201, "")
	var br apitypes.BatchWriteResult
	r.json(t, &br)
	if br.Durability != "quorum" || br.Written != 100 || br.Failed != 0 || br.Unknown != 0 || len(br.Results) != 100 {
		t.Fatalf("batch result: %s", r.body)
	}
	var prev uint64
	for i, it := range br.Results {
		if it.Status != 201 || it.Error != nil || it.Seq <= prev || it.Epoch == 0 || it.ID == "" {
			t.Fatalf("item %d: %+v", i, it)
		}
		prev = it.Seq
		want := "notes"
		if i == 9 {
			want = "other"
		}
		if it.Vault != want {
			t.Fatalf("item %d in vault %q, want %q", i, it.Vault, want)
		}
	}
	if br.Results[7].ID != own {
		t.Fatalf("client-chosen id: got %s, want %s", br.Results[7].ID, own)
	}
	// The engrams went into the loop together: the saves of one write,
	// one more if a turn of the loop split them.
	if n := e.saves() - before; n > single+1 {
		t.Fatalf("a batch of 100 took %d saves; one write takes %d", n, single)
	}
	var got apitypes.Engram
	r = e.do("GET", "/api/engrams/"+own+"?vault=notes", "")
	expect(t, r, 200, "")
	r.json(t, &got)
	if got.Content != "note 7" || len(got.Tags) != 1 {
		t.Fatalf("read back %+v", got)
	}
	if e.count("notes") != 99 || e.count("other") != 1 {
		t.Fatalf("counts: notes %d, other %d", e.count("notes"), e.count("other"))
	}

	// A conflict on one engram does not stop the others.
	dup := br.Results[3].ID
	req = apitypes.BatchWriteRequest{Vault: "notes", Engrams: items(3, "more")}
	req.Engrams[1].ID = dup
	r = e.do("POST", "/api/engrams/batch", batchBody(t, req))
	expect(t, r, 200, "")
	br = apitypes.BatchWriteResult{}
	r.json(t, &br)
	if br.Written != 2 || br.Failed != 1 || br.Unknown != 0 || br.Durability != "local" {
		t.Fatalf("batch with a conflict: %s", r.body)
	}
	for i, it := range br.Results {
		switch {
		case i == 1:
			if it.Status != 409 || it.Error == nil || it.Error.Code != "conflict" || !strings.Contains(it.Error.Message, dup) || it.ID != dup || it.Seq != 0 {
				t.Fatalf("the conflicting engram: %+v %+v", it, it.Error)
			}
		case it.Status != 201 || it.Error != nil || it.Seq == 0:
			t.Fatalf("item %d: %+v", i, it)
		}
	}
	if e.count("notes") != 101 {
		t.Fatalf("notes: %d engrams, want 101", e.count("notes"))
	}
	// Resent whole (a client retrying): every engram conflicts, each says
	// so on its own; nothing is written twice.
	ids := []string{br.Results[0].ID, dup, br.Results[2].ID}
	for i := range req.Engrams {
		req.Engrams[i].ID = ids[i]
	}
	r = e.do("POST", "/api/engrams/batch", batchBody(t, req))
	expect(t, r, 200, "")
	br = apitypes.BatchWriteResult{}
	r.json(t, &br)
	if br.Written != 0 || br.Failed != 3 || br.Results[2].Error == nil || br.Results[2].Error.Code != "conflict" {
		t.Fatalf("resent batch: %s", r.body)
	}
	if e.count("notes") != 101 {
		t.Fatalf("notes: %d engrams after the resend, want 101", e.count("notes"))
	}
	// The batch endpoint takes POST only.
	expect(t, e.do("GET", "/api/engrams/batch", ""), 405, "method_not_allowed")
}

func TestBatchLimits(t *testing.T) {
	e := standalone(t, Options{})
	// Over the item limit: 413 naming the limit.
	d := expect(t, e.do("POST", "/api/engrams/batch", batchBody(t, apitypes.BatchWriteRequest{Engrams: items(apitypes.MaxBatchItems+1, "x")})), 413, "too_large")
	if !strings.Contains(d.Message, "1001 engrams") || !strings.Contains(d.Message, "limit of 1000") {
		t.Fatalf("item limit message %q", d.Message)
	}
	// At the limit: written.
	expect(t, e.do("POST", "/api/engrams/batch?vault=full", batchBody(t, apitypes.BatchWriteRequest{Engrams: items(apitypes.MaxBatchItems, "x")})), 201, "")
	if n := e.count("full"); n != apitypes.MaxBatchItems {
		t.Fatalf("%d engrams written of %d", n, apitypes.MaxBatchItems)
	}
	// Over the byte limit: 413 naming it.
	big := items(200, "")
	for i := range big {
		big[i].Content = strings.Repeat("y", 50_000)
	}
	d = expect(t, e.do("POST", "/api/engrams/batch", batchBody(t, apitypes.BatchWriteRequest{Engrams: big})), 413, "too_large")
	if !strings.Contains(d.Message, strconv.Itoa(apitypes.MaxBatchBody)) || !strings.Contains(d.Message, "8 MiB") {
		t.Fatalf("byte limit message %q", d.Message)
	}

	// A bad engram: 400 naming its index and field, and nothing written.
	for _, c := range []struct {
		name, body, want string
	}{
		{"empty tag", `{"engrams":[{"content":"a"},{"content":"b"},{"content":"c","tags":["ok",""]}]}`, "engrams[2].tags[1]: empty tag"},
		{"blank content", `{"engrams":[{"content":"a"},{"content":"  "}]}`, "engrams[1].content: required"},
		{"confidence", `{"engrams":[{"content":"a"},{"content":"b","confidence":2}]}`, "engrams[1].confidence: 2 is outside [0, 1]"},
		{"bad id", `{"engrams":[{"content":"a","id":"nope"}]}`, `engrams[0].id "nope": must be 26 characters`},
		{"bad vault", `{"engrams":[{"content":"a"},{"content":"b","vault":"Bad"}]}`, `engrams[1].vault "Bad"`},
		{"unknown field", `{"engrams":[{"content":"a"},{"content":"b","colour":"red"}]}`, `engrams[1]: unknown field "colour"`},
		{"wrong type", `{"engrams":[{"content":"a"},{"content":"b"},{"content":"c","tags":"x"}]}`, "engrams[2]: field tags: expected an array"},
		{"key twice", `{"engrams":[{"content":"a"},{"content":"b","Content":"c"}]}`, "engrams[1].Content: given twice"},
		{"duplicate id", `{"engrams":[{"content":"a","id":"01M930CKCH3FZBE51DP5DKWWCD"},{"content":"b","id":"01M930CKCH3FZBE51DP5DKWWCD"}]}`, "engrams[1].id: 01M930CKCH3FZBE51DP5DKWWCD is also the id of engrams[0]"},
		{"vault disagrees", `{"engrams":[{"content":"a","vault":"v2"}]}`, `engrams[0].vault: the engram says "v2" but the vault parameter says "default"`},
		{"no engrams", `{"engrams":[]}`, "engrams: required"},
		{"not an array", `{"engrams":{}}`, "field engrams: expected an array"},
	} {
		path := "/api/engrams/batch"
		if c.name == "vault disagrees" {
			path += "?vault=default"
		}
		d := expect(t, e.do("POST", path, c.body), 400, "bad_request")
		if !strings.Contains(d.Message, c.want) {
			t.Fatalf("%s: message %q, want it to contain %q", c.name, d.Message, c.want)
		}
		if n := e.count("default"); n != 0 {
			t.Fatalf("%s: %d engrams written by a refused batch", c.name, n)
		}
	}
}

func TestBatchForwardedByALobe(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	ms := startCluster(t, core.KindAuto, core.KindAuto, core.KindSentinel)
	cortex := waitAgree(t, ms, "")
	lobe := lobes(ms, cortex)[0]
	req := apitypes.BatchWriteRequest{Engrams: items(50, "via a lobe")}
	r := do(t, lobe.url, "POST", "/api/engrams/batch?durability=quorum", batchBody(t, req))
	expect(t, r, 201, "")
	if got := r.header.Get(apitypes.HeaderNode); got != cortex.id {
		t.Fatalf("answered by %q, want the Cortex %s", got, cortex.id)
	}
	var br apitypes.BatchWriteResult
	r.json(t, &br)
	if br.Written != 50 || br.Durability != "quorum" {
		t.Fatalf("forwarded batch: %s", r.body)
	}
	last := br.Results[49]
	waitFor(t, "replication to the lobe", func() bool {
		_, ok, _ := lobe.n.Store().Get("default", last.ID)
		return ok
	})
	// Forwarded once only.
	d := expect(t, do(t, lobe.url, "POST", "/api/engrams/batch", batchBody(t, req), apitypes.HeaderForwardedBy, "someone"), 503, "not_cortex")
	if d.Cortex != cortex.id {
		t.Fatalf("not_cortex %+v", d)
	}
	// A Sentinel refuses the batch as a whole, naming the Cortex.
	var sentinel *member
	for _, m := range ms {
		if m.n.Options().Kind == core.KindSentinel {
			sentinel = m
		}
	}
	d = expect(t, do(t, sentinel.url, "POST", "/api/engrams/batch", batchBody(t, req)), 403, "read_only_node")
	if d.Cortex != cortex.id {
		t.Fatalf("read_only_node %+v", d)
	}
}
