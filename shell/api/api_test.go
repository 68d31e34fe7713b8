package api

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/core/engram"
	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/node"
	"github.com/muninndb/muninn/shell/store"
)

type env struct {
	t   *testing.T
	n   *node.Node
	api *Server
	srv *httptest.Server
}

func standalone(t *testing.T, opts Options) *env {
	t.Helper()
	return standaloneIn(t, t.TempDir(), opts)
}

func standaloneIn(t *testing.T, dir string, opts Options) *env {
	t.Helper()
	n, err := node.Start(node.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	a := New(n, opts)
	srv := httptest.NewServer(a)
	t.Cleanup(func() {
		srv.Close()
		a.Close()
		n.Close()
	})
	e := &env{t: t, n: n, api: a, srv: srv}
	e.waitCortex()
	return e
}

func (e *env) waitCortex() {
	deadline := time.Now().Add(5 * time.Second)
	// The event hub sees the election a step after the status (a hello
	// would still say lobe).
	for e.n.Status().Core.Role != core.RoleCortex || e.n.Events().Hello().Role != "cortex" {
		if time.Now().After(deadline) {
			e.t.Fatal("standalone node never became cortex")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
}

func (r resp) err(t *testing.T) apitypes.ErrorDetail {
	t.Helper()
	var eb apitypes.ErrorBody
	r.json(t, &eb)
	if eb.Error.Code == "" || eb.Error.Message == "" {
		t.Fatalf("error body without code or message: %s", r.body)
	}
	return eb.Error
}

func do(t *testing.T, base, method, path, body string, hdr ...string) resp {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func (e *env) do(method, path, body string, hdr ...string) resp {
	e.t.Helper()
	return do(e.t, e.srv.URL, method, path, body, hdr...)
}

func expect(t *testing.T, r resp, status int, code string) apitypes.ErrorDetail {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if code == "" {
		return apitypes.ErrorDetail{}
	}
	d := r.err(t)
	if d.Code != code {
		t.Fatalf("code %q, want %q: %s", d.Code, code, r.body)
	}
	return d
}

func TestEngramLifecycle(t *testing.T) {
	e := standalone(t, Options{})
	r := e.do("POST", "/api/engrams", `{"concept":"paris","content":"Paris is the capital of France","tags":["geo","eu"],"confidence":0.9}`)
	expect(t, r, 201, "")
	var wr apitypes.WriteResult
	r.json(t, &wr)
	if engram.ValidateID(wr.ID) != nil || wr.Vault != "default" || wr.Seq == 0 || wr.Epoch == 0 || wr.Durability != "local" {
		t.Fatalf("write result %+v", wr)
	}
	if r.header.Get(apitypes.HeaderNode) != "standalone" {
		t.Fatalf("X-Muninn-Node %q", r.header.Get(apitypes.HeaderNode))
	}

	var got apitypes.Engram
	r = e.do("GET", "/api/engrams/"+wr.ID, "")
	expect(t, r, 200, "")
	r.json(t, &got)
	if got.Content != "Paris is the capital of France" || got.Concept != "paris" || got.Confidence != 0.9 || len(got.Tags) != 2 || got.Activation != 1 {
		t.Fatalf("got %+v", got)
	}
	for _, c := range []string{"consistency=strong", "consistency=eventual", "consistency=bounded&max_lag_ms=50"} {
		expect(t, e.do("GET", "/api/engrams/"+wr.ID+"?"+c, ""), 200, "")
	}
	// The same engram is not in another vault.
	expect(t, e.do("GET", "/api/engrams/"+wr.ID+"?vault=other", ""), 404, "not_found")

	// Quorum durability on a one-voter cluster.
	r = e.do("POST", "/api/engrams?durability=quorum&vault=notes", `{"content":"second","tags":["geo"]}`)
	expect(t, r, 201, "")
	var wr2 apitypes.WriteResult
	r.json(t, &wr2)
	if wr2.Vault != "notes" || wr2.Durability != "quorum" || wr2.Seq <= wr.Seq {
		t.Fatalf("second write %+v after %+v", wr2, wr)
	}
	r = e.do("GET", "/api/engrams/"+wr2.ID+"?vault=notes", "")
	expect(t, r, 200, "")
	r.json(t, &got)
	if got.Confidence != 1 || got.Tags == nil {
		t.Fatalf("defaults: %+v (%s)", got, r.body)
	}

	// A client-chosen id, and its replay.
	id := node.NewEngramID()
	expect(t, e.do("POST", "/api/engrams", `{"id":"`+id+`","content":"mine"}`), 201, "")
	d := expect(t, e.do("POST", "/api/engrams", `{"id":"`+id+`","content":"mine"}`), 409, "conflict")
	if !strings.Contains(d.Message, id) {
		t.Fatalf("conflict message %q", d.Message)
	}

	// Update.
	r = e.do("PATCH", "/api/engrams/"+wr.ID, `{"content":"Paris, France","tags":[]}`)
	expect(t, r, 200, "")
	r = e.do("GET", "/api/engrams/"+wr.ID, "")
	r.json(t, &got)
	if got.Content != "Paris, France" || got.Concept != "paris" || len(got.Tags) != 0 || got.Confidence != 0.9 {
		t.Fatalf("after update %+v", got)
	}
	expect(t, e.do("PATCH", "/api/engrams/"+wr.ID, `{}`), 400, "bad_request")
	expect(t, e.do("PATCH", "/api/engrams/"+node.NewEngramID(), `{"content":"x"}`), 404, "not_found")

	// List with tags and pages.
	for i := 0; i < 3; i++ {
		expect(t, e.do("POST", "/api/engrams", `{"content":"page item","tags":["page"]}`), 201, "")
	}
	var lr apitypes.ListResult
	r = e.do("GET", "/api/engrams?tags=page&limit=2", "")
	expect(t, r, 200, "")
	r.json(t, &lr)
	if len(lr.Engrams) != 2 || lr.NextCursor == "" {
		t.Fatalf("page 1: %s", r.body)
	}
	r = e.do("GET", "/api/engrams?tags=page&limit=2&cursor="+lr.NextCursor, "")
	r.json(t, &lr)
	if len(lr.Engrams) != 1 || lr.NextCursor != "" {
		t.Fatalf("page 2: %s", r.body)
	}
	r = e.do("GET", "/api/engrams?vault=empty", "")
	expect(t, r, 200, "")
	if !strings.Contains(string(r.body), `"engrams":[]`) {
		t.Fatalf("empty list: %s", r.body)
	}

	// Activate.
	var ar apitypes.ActivateResult
	r = e.do("POST", "/api/activate", `{"query":"paris capital","limit":5}`)
	expect(t, r, 200, "")
	r.json(t, &ar)
	if len(ar.Hits) != 1 || ar.Hits[0].ID != wr.ID || ar.Hits[0].Score <= 0 {
		t.Fatalf("activate: %s", r.body)
	}
	r = e.do("POST", "/api/activate?vault=notes&consistency=strong", `{"query":"second"}`)
	r.json(t, &ar)
	if len(ar.Hits) != 1 || ar.Hits[0].ID != wr2.ID {
		t.Fatalf("activate notes: %s", r.body)
	}

	// Forget.
	expect(t, e.do("DELETE", "/api/engrams/"+wr.ID, ""), 200, "")
	expect(t, e.do("GET", "/api/engrams/"+wr.ID, ""), 404, "not_found")
	expect(t, e.do("DELETE", "/api/engrams/"+wr.ID, ""), 404, "not_found")
	expect(t, e.do("DELETE", "/api/engrams/"+node.NewEngramID(), ""), 404, "not_found")

	// Metrics saw the writes and reads.
	r = e.do("GET", "/metrics", "")
	expect(t, r, 200, "")
	for _, m := range []string{`muninn_role{role="cortex"} 1`, `muninn_write_seconds_count{durability="local"}`, `muninn_write_seconds_count{durability="quorum"} 1`, `muninn_read_seconds_count{consistency="strong"}`, "muninn_epoch"} {
		if !strings.Contains(string(r.body), m) {
			t.Fatalf("metrics lack %q", m)
		}
	}
}

func TestBadInput(t *testing.T) {
	e := standalone(t, Options{})
	id := node.NewEngramID()
	big := `{"content":"` + strings.Repeat("x", apitypes.MaxBody) + `"}`
	long := `{"content":"` + strings.Repeat("x", engram.MaxContent+1) + `"}`
	cases := []struct {
		name, method, path, body string
		status                   int
		code, want               string
	}{
		{"unknown field", "POST", "/api/engrams", `{"content":"x","colour":"red"}`, 400, "bad_request", `unknown field "colour"`},
		{"trailing data", "POST", "/api/engrams", `{"content":"x"} {"content":"y"}`, 400, "bad_request", "trailing data"},
		{"trailing garbage", "POST", "/api/engrams", `{"content":"x"}]`, 400, "bad_request", "trailing data"},
		{"malformed", "POST", "/api/engrams", `{"content":`, 400, "bad_request", "malformed JSON"},
		{"syntax", "POST", "/api/engrams", `{content:1}`, 400, "bad_request", "malformed JSON"},
		{"wrong type", "POST", "/api/engrams", `{"content":"x","confidence":"high"}`, 400, "bad_request", "field confidence: expected a number"},
		{"tags type", "POST", "/api/engrams", `{"content":"x","tags":"a"}`, 400, "bad_request", "field tags: expected an array"},
		{"not an object", "POST", "/api/engrams", `[1]`, 400, "bad_request", "expected a JSON object"},
		{"empty body", "POST", "/api/engrams", ``, 400, "bad_request", "empty"},
		{"no content", "POST", "/api/engrams", `{"concept":"x"}`, 400, "bad_request", "content: required"},
		{"confidence range", "POST", "/api/engrams", `{"content":"x","confidence":1.5}`, 400, "bad_request", "confidence"},
		{"bad vault", "POST", "/api/engrams?vault=Bad!", `{"content":"x"}`, 400, "bad_request", "vault"},
		{"vault mismatch", "POST", "/api/engrams?vault=a", `{"vault":"b","content":"x"}`, 400, "bad_request", "vault"},
		{"bad id", "POST", "/api/engrams", `{"id":"nope","content":"x"}`, 400, "bad_request", "id"},
		{"too many tags", "POST", "/api/engrams", `{"content":"x","tags":[` + strings.Repeat(`"t",`, engram.MaxTags) + `"t"]}`, 400, "bad_request", "tags"},
		{"empty tag", "POST", "/api/engrams", `{"content":"x","tags":[""]}`, 400, "bad_request", "tags[0]"},
		{"content limit", "POST", "/api/engrams", long, 400, "bad_request", "content"},
		{"body limit", "POST", "/api/engrams", big, 413, "too_large", "1 MiB"},
		{"durability", "POST", "/api/engrams?durability=forever", `{"content":"x"}`, 400, "bad_request", "durability"},
		{"get bad id", "GET", "/api/engrams/abc", "", 400, "bad_request", "id"},
		{"get bad vault", "GET", "/api/engrams/" + id + "?vault=A", "", 400, "bad_request", "vault"},
		{"consistency", "GET", "/api/engrams/" + id + "?consistency=psychic", "", 400, "bad_request", "consistency"},
		{"bounded lag", "GET", "/api/engrams/" + id + "?consistency=bounded", "", 400, "bad_request", "max_lag_ms"},
		{"lag not number", "GET", "/api/engrams/" + id + "?consistency=bounded&max_lag_ms=soon", "", 400, "bad_request", "max_lag_ms"},
		{"limit high", "GET", "/api/engrams?limit=1001", "", 400, "bad_request", "limit"},
		{"limit zero", "GET", "/api/engrams?limit=0", "", 400, "bad_request", "limit"},
		{"cursor", "GET", "/api/engrams?cursor=zzz", "", 400, "bad_request", "cursor"},
		{"list tag long", "GET", "/api/engrams?tags=" + strings.Repeat("t", 65), "", 400, "bad_request", "tags[0]"},
		{"patch unknown", "PATCH", "/api/engrams/" + id, `{"body":"x"}`, 400, "bad_request", `unknown field "body"`},
		{"patch empty content", "PATCH", "/api/engrams/" + id, `{"content":""}`, 400, "bad_request", "content"},
		{"patch bad id", "PATCH", "/api/engrams/x", `{"content":"a"}`, 400, "bad_request", "id"},
		{"delete bad id", "DELETE", "/api/engrams/x", "", 400, "bad_request", "id"},
		{"activate no query", "POST", "/api/activate", `{"limit":3}`, 400, "bad_request", "query: required"},
		{"activate no terms", "POST", "/api/activate", `{"query":"!!!"}`, 400, "bad_request", "query"},
		{"activate limit", "POST", "/api/activate", `{"query":"a","limit":5000}`, 400, "bad_request", "limit"},
		{"activate long", "POST", "/api/activate", `{"query":"` + strings.Repeat("a ", engram.MaxQueryLen) + `"}`, 400, "bad_request", "query"},
		{"method", "PUT", "/api/engrams", `{}`, 405, "method_not_allowed", "GET, POST"},
		{"method cluster", "GET", "/v1/cluster/failover", ``, 405, "method_not_allowed", "POST"},
		{"no route", "GET", "/api/nothing", "", 404, "not_found", "no such endpoint"},
		{"health scope", "GET", "/v1/cluster/health?scope=planet", "", 400, "bad_request", "scope"},
		{"members no id", "POST", "/v1/cluster/members", `{"kind":"auto"}`, 400, "bad_request", "id"},
		{"members bad kind", "POST", "/v1/cluster/members", `{"id":"x","kind":"boss"}`, 400, "bad_request", "kind"},
		{"members id ../x", "POST", "/v1/cluster/members", `{"id":"../x"}`, 400, "bad_request", `id: "../x" is not a valid node id (starts with '.'): use 1 to 64 letters, digits, '.', '_' or '-', not starting with '.', the rule of cluster.node_id`},
		{"members id with a space", "POST", "/v1/cluster/members", `{"id":"a b"}`, 400, "bad_request", `id: "a b" is not a valid node id`},
		{"members id 128 bytes", "POST", "/v1/cluster/members", `{"id":"` + strings.Repeat("a", 128) + `"}`, 400, "bad_request", "128 bytes, over 64"},
		{"invalid UTF-8", "POST", "/api/engrams", "{\"content\":\"caf\xe9\"}", 400, "bad_request", "field content: invalid UTF-8"},
		{"invalid UTF-8 in a tag", "POST", "/api/engrams", "{\"content\":\"x\",\"tags\":[\"ok\",\"\xff\"]}", 400, "bad_request", "field tags[1]: invalid UTF-8"},
		{"invalid UTF-8 in a key", "POST", "/api/engrams", "{\"content\":\"x\",\"\xff\":1}", 400, "bad_request", "a field name after field content: invalid UTF-8"},
		{"lone surrogate", "POST", "/api/engrams", `{"content":"\ud800x"}`, 400, "bad_request", "field content: invalid UTF-16 escape"},
		{"duplicate key", "POST", "/api/engrams", `{"content":"x","content":"y"}`, 400, "bad_request", `field content: given twice`},
		{"duplicate key, other case", "POST", "/api/engrams", `{"content":"x","Content":"y"}`, 400, "bad_request", `field Content: given twice`},
		{"duplicate key, member", "POST", "/v1/cluster/members", `{"id":"a","kind":"auto","id":"b"}`, 400, "bad_request", `field id: given twice`},
		{"too deep", "POST", "/api/engrams", strings.Repeat("[", 100) + strings.Repeat("]", 100), 400, "bad_request", "nested"},
		{"replay no ref", "POST", "/v1/cluster/quarantine/replay", `{}`, 400, "bad_request", "epoch and seq"},
		{"replay missing", "POST", "/v1/cluster/quarantine/replay", `{"epoch":9,"seq":9}`, 404, "quarantine_entry_not_found", "9.9"},
		{"drop missing", "POST", "/v1/cluster/quarantine/drop", `{"epoch":9,"seq":9}`, 404, "quarantine_entry_not_found", "9.9"},
		// The deprecated paths answer with the code they always had.
		{"fenced replay no ref", "POST", "/v1/cluster/fenced/replay", `{}`, 400, "bad_request", "epoch and seq"},
		{"fenced replay missing", "POST", "/v1/cluster/fenced/replay", `{"epoch":9,"seq":9}`, 404, "fenced_entry_not_found", "9.9"},
		{"fenced drop missing", "POST", "/v1/cluster/fenced/drop", `{"epoch":9,"seq":9}`, 404, "fenced_entry_not_found", "9.9"},
		{"propose garbage", "POST", "/v1/cluster/propose", `{"payload":"AAEC"}`, 400, "bad_request", "payload"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(c.method, c.path, c.body)
			d := expect(t, r, c.status, c.code)
			if !strings.Contains(d.Message, c.want) {
				t.Fatalf("message %q lacks %q", d.Message, c.want)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("content type %q", ct)
			}
		})
	}
	if r := e.do("PUT", "/api/engrams", `{}`); r.header.Get("Allow") != "GET, POST" {
		t.Fatalf("Allow: %q", r.header.Get("Allow"))
	}
}

func TestClusterEndpointsStandalone(t *testing.T) {
	e := standalone(t, Options{})
	expect(t, e.do("POST", "/api/engrams", `{"content":"x"}`), 201, "")

	var info apitypes.Info
	r := e.do("GET", "/v1/cluster/info", "")
	expect(t, r, 200, "")
	r.json(t, &info)
	if info.NodeID != "standalone" || info.Role != "cortex" || info.Cortex != "standalone" || info.Epoch == 0 || info.FencingToken != info.Epoch ||
		info.ClusterEnabled || len(info.Members) != 1 || info.Members[0].Kind != "auto" || info.Members[0].Role != "cortex" || info.LastSeq == 0 || info.Quorum != 1 {
		t.Fatalf("info %s", r.body)
	}

	var h apitypes.Health
	r = e.do("GET", "/v1/cluster/health", "")
	expect(t, r, 200, "")
	r.json(t, &h)
	if h.Status != "ok" || h.ReachableVoters != 1 || h.Quorum != 1 || h.Reason != "" {
		t.Fatalf("health %s", r.body)
	}
	expect(t, e.do("GET", "/v1/cluster/health?scope=node", ""), 200, "")

	var st apitypes.Status
	r = e.do("GET", "/v1/cluster/status", "")
	expect(t, r, 200, "")
	r.json(t, &st)
	if st.View != "cortex" || st.Health != "ok" || len(st.Members) != 1 || st.Members[0].LastSeq == nil || *st.Members[0].LastSeq != info.LastSeq ||
		st.Members[0].LagMs != nil || !st.Members[0].Connected || st.Members[0].Health != "healthy" {
		t.Fatalf("status %s", r.body)
	}

	for _, path := range []string{"/v1/cluster/quarantine", "/v1/cluster/fenced"} {
		var ql apitypes.QuarantineList
		r = e.do("GET", path, "")
		expect(t, r, 200, "")
		r.json(t, &ql)
		if ql.NodeID != "standalone" || ql.Entries == nil || len(ql.Entries) != 0 {
			t.Fatalf("%s: %s", path, r.body)
		}
		if link := r.header.Get("Link"); (path == "/v1/cluster/fenced") != (link == `</v1/cluster/quarantine>; rel="successor-version"`) {
			t.Fatalf("%s: Link %q", path, link)
		}
		r = e.do("GET", path+"/export", "")
		if r.status != 200 || len(r.body) != 0 || r.header.Get("Content-Type") != "application/x-ndjson" {
			t.Fatalf("%s/export: %d %q %v", path, r.status, r.body, r.header)
		}
	}

	// Admin operations a standalone node cannot do say why.
	d := expect(t, e.do("POST", "/v1/cluster/failover", ""), 409, "standalone")
	if !strings.Contains(d.Message, "runs standalone, so it has no members to hand the Cortex role off to") {
		t.Fatalf("failover: %q", d.Message)
	}
	expect(t, e.do("POST", "/v1/cluster/failover", `{"to":"nobody"}`), 409, "standalone")
	expect(t, e.do("POST", "/v1/cluster/failover", `{"to":`), 400, "bad_request")
	expect(t, e.do("POST", "/v1/cluster/members", `{"id":"muninn-02","kind":"auto"}`), 409, "standalone")
	expect(t, e.do("DELETE", "/v1/cluster/members/muninn-02", ""), 409, "standalone")
	d = expect(t, e.do("POST", "/v1/cluster/enable", ""), 501, "not_implemented")
	if !strings.Contains(d.Message, "cluster.enabled: true") {
		t.Fatalf("enable: %q", d.Message)
	}
	expect(t, e.do("POST", "/v1/cluster/disable", ""), 409, "conflict")
	// The node is still writable: the failed handoff changed nothing.
	expect(t, e.do("POST", "/api/engrams", `{"content":"after"}`), 201, "")
}

// adminReq sends a request straight to the handler with a chosen remote
// address.
func adminReq(e *env, method, path, body, remote string, hdr ...string) resp {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.RemoteAddr = remote
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	e.api.ServeHTTP(rec, req)
	return resp{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

func TestAdminProtection(t *testing.T) {
	admin := []struct{ method, path, body string }{
		{"POST", "/v1/cluster/failover", ``},
		{"POST", "/v1/cluster/members", `{"id":"b"}`},
		{"DELETE", "/v1/cluster/members/b", ``},
		{"POST", "/v1/cluster/quarantine/replay", `{"epoch":1,"seq":1}`},
		{"POST", "/v1/cluster/quarantine/drop", `{"epoch":1,"seq":1}`},
		{"POST", "/v1/cluster/fenced/replay", `{"epoch":1,"seq":1}`},
		{"POST", "/v1/cluster/fenced/drop", `{"epoch":1,"seq":1}`},
		{"POST", "/v1/cluster/enable", ``},
		{"POST", "/v1/cluster/disable", ``},
		{"POST", "/v1/cluster/propose", `{"payload":""}`},
	}
	t.Run("no token: loopback only", func(t *testing.T) {
		e := standalone(t, Options{})
		for _, a := range admin {
			r := adminReq(e, a.method, a.path, a.body, "10.0.0.7:41000")
			d := expect(t, r, 403, "forbidden")
			if !strings.Contains(d.Message, "admin_token") {
				t.Fatalf("%s %s: %q", a.method, a.path, d.Message)
			}
			for _, lo := range []string{"127.0.0.1:5000", "[::1]:5000"} {
				if r := adminReq(e, a.method, a.path, a.body, lo); r.status == 403 || r.status == 401 {
					t.Fatalf("%s %s from %s: %d %s", a.method, a.path, lo, r.status, r.body)
				}
			}
		}
		// Reads and writes are not admin.
		expect(t, adminReq(e, "GET", "/v1/cluster/info", "", "10.0.0.7:41000"), 200, "")
		expect(t, adminReq(e, "POST", "/api/engrams", `{"content":"x"}`, "10.0.0.7:41000"), 201, "")
	})
	t.Run("token", func(t *testing.T) {
		e := standalone(t, Options{AdminToken: "s3cret"})
		for _, a := range admin {
			for _, remote := range []string{"10.0.0.7:41000", "127.0.0.1:5000"} {
				expect(t, adminReq(e, a.method, a.path, a.body, remote), 401, "unauthorized")
				expect(t, adminReq(e, a.method, a.path, a.body, remote, "Authorization", "Bearer wrong"), 401, "unauthorized")
				expect(t, adminReq(e, a.method, a.path, a.body, remote, "Authorization", "s3cret"), 401, "unauthorized")
				if r := adminReq(e, a.method, a.path, a.body, remote, "Authorization", "Bearer s3cret"); r.status == 401 || r.status == 403 {
					t.Fatalf("%s %s with the token: %d %s", a.method, a.path, r.status, r.body)
				}
			}
		}
		// A forwarded-by header without a valid signature grants nothing.
		expect(t, adminReq(e, "POST", "/v1/cluster/enable", "", "10.0.0.7:1", apitypes.HeaderForwardedBy, "x", apitypes.HeaderForwardTime, "1", apitypes.HeaderForwardSig, "00"), 401, "unauthorized")
	})
}

func TestForwardSignature(t *testing.T) {
	secret := []byte("cluster-secret")
	uri := "/v1/cluster/failover"
	body := []byte(`{"to":"b"}`)
	ts, nonce := "1700000000", "00112233445566778899aabbccddeeff"
	a := forwardMAC(secret, "n1", "n3", "POST", uri, ts, nonce, body)
	if a != forwardMAC(secret, "n1", "n3", "POST", uri, ts, nonce, body) {
		t.Fatal("not deterministic")
	}
	for _, b := range []string{
		forwardMAC([]byte("other"), "n1", "n3", "POST", uri, ts, nonce, body),
		forwardMAC(secret, "n2", "n3", "POST", uri, ts, nonce, body),
		forwardMAC(secret, "n1", "n4", "POST", uri, ts, nonce, body),
		forwardMAC(secret, "n1n", "3", "POST", uri, ts, nonce, body),
		forwardMAC(secret, "n1", "n3", "DELETE", uri, ts, nonce, body),
		forwardMAC(secret, "n1", "n3", "POST", uri+"?x=1", ts, nonce, body),
		forwardMAC(secret, "n1", "n3", "POST", uri, "1700000001", nonce, body),
		forwardMAC(secret, "n1", "n3", "POST", uri, ts, "ff112233445566778899aabbccddeeff", body),
		forwardMAC(secret, "n1", "n3", "POST", uri, ts, nonce, []byte(`{"to":"c"}`)),
	} {
		if a == b {
			t.Fatal("signature does not cover every input")
		}
	}
}

// The nonce store refuses a nonce seen before it expires, forgets it
// after, and fails closed when full of live nonces.
func TestForwardNonces(t *testing.T) {
	var ns nonceSet
	now := time.Unix(1700000000, 0)
	exp := now.Add(maxForwardSkew)
	if !ns.first("a", exp, now) || ns.first("a", exp, now.Add(time.Second)) {
		t.Fatal("a nonce was accepted twice")
	}
	if !ns.first("a", exp.Add(time.Minute), exp) {
		t.Fatal("an expired nonce is still remembered")
	}
	for i := len(ns.m); i < maxForwardNonces; i++ {
		ns.m[strconv.Itoa(i)] = exp.Add(time.Hour)
	}
	if ns.first("b", exp, now) {
		t.Fatal("accepted with the store full of live nonces")
	}
	if !ns.first("c", exp, exp.Add(2*time.Hour)) || len(ns.m) > 2 {
		t.Fatalf("expired nonces not pruned when full: %d left", len(ns.m))
	}
}

// TestReplayQuarantined: an entry a failover cut off is listed, exported,
// replayed as a new write (then gone from the quarantine), and a second
// one is dropped; the same through the deprecated /v1/cluster/fenced
// paths, which answer under their old names.
func TestReplayQuarantined(t *testing.T) {
	for _, c := range []struct{ prefix, missing, countHeader, file string }{
		{"/v1/cluster/quarantine", "quarantine_entry_not_found", "X-Muninn-Quarantine-Count", "muninn-quarantine-standalone.jsonl"},
		{"/v1/cluster/fenced", "fenced_entry_not_found", "X-Muninn-Fenced-Count", "muninn-fenced-standalone.jsonl"},
	} {
		t.Run(c.prefix, func(t *testing.T) { testReplayQuarantined(t, c.prefix, c.missing, c.countHeader, c.file) })
	}
}

func testReplayQuarantined(t *testing.T, prefix, missing, countHeader, file string) {
	dir := t.TempDir()
	id1, id2 := node.NewEngramID(), node.NewEngramID()
	st, err := store.Open(filepath.Join(dir, "db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	enc := func(id, content string) []byte {
		b, err := engram.EncodeCommand(engram.Command{Op: engram.OpWrite, Vault: "default", ID: id, At: 1, Content: content, Confidence: 0.5})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	members := core.Members{{ID: "standalone", Kind: core.KindAuto}}
	err = st.Save(store.SaveBatch{
		HardState: &core.HardState{Epoch: 1, Vote: "standalone", Commit: core.Pos{Epoch: 1, Seq: 1}},
		Entries: []core.Entry{
			{Pos: core.Pos{Epoch: 1, Seq: 1}, Type: core.EntryEpochStart},
			{Pos: core.Pos{Epoch: 1, Seq: 2}, Type: core.EntryData, Payload: enc(id1, "cut off one")},
			{Pos: core.Pos{Epoch: 1, Seq: 3}, Type: core.EntryData, Durability: core.Local, Payload: enc(id2, "cut off two")},
		},
		Members: members,
	}, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Save(store.SaveBatch{Truncate: &core.Truncation{After: core.Pos{Epoch: 1, Seq: 1}, Removed: nil, Reason: "diverged from epoch 2"}, Now: 42}, true); err != nil {
		t.Fatal(err)
	}
	st.Close()

	e := standaloneIn(t, dir, Options{})
	var fl apitypes.QuarantineList
	r := e.do("GET", prefix, "")
	expect(t, r, 200, "")
	r.json(t, &fl)
	if len(fl.Entries) != 2 || fl.Entries[0].ID != id1 || fl.Entries[0].Op != "write" || fl.Entries[0].Reason != "diverged from epoch 2" || fl.Entries[1].Seq != 3 {
		t.Fatalf("list: %s", r.body)
	}
	r = e.do("GET", prefix+"/export", "")
	if lines := strings.Split(strings.TrimSpace(string(r.body)), "\n"); len(lines) != 2 || r.header.Get(countHeader) != "2" || !strings.Contains(r.header.Get("Content-Disposition"), file) {
		t.Fatalf("export: %q", r.body)
	}
	expect(t, e.do("GET", "/api/engrams/"+id1, ""), 404, "not_found")

	var rr apitypes.ReplayResult
	r = e.do("POST", prefix+"/replay", `{"epoch":1,"seq":2}`)
	expect(t, r, 200, "")
	r.json(t, &rr)
	if rr.From != (apitypes.QuarantineRef{Epoch: 1, Seq: 2}) || rr.Epoch < 2 {
		t.Fatalf("replay: %s", r.body)
	}
	var got apitypes.Engram
	r = e.do("GET", "/api/engrams/"+id1, "")
	expect(t, r, 200, "")
	r.json(t, &got)
	if got.Content != "cut off one" {
		t.Fatalf("replayed engram %+v", got)
	}
	expect(t, e.do("POST", prefix+"/replay", `{"epoch":1,"seq":2}`), 404, missing)
	// id2 is written again meanwhile: replaying the cut-off create would
	// overwrite it, so it is refused and the entry stays.
	expect(t, e.do("POST", "/api/engrams", `{"id":"`+id2+`","content":"newer"}`), 201, "")
	expect(t, e.do("POST", prefix+"/replay", `{"epoch":1,"seq":3}`), 409, "conflict")
	r = e.do("GET", "/api/engrams/"+id2, "")
	r.json(t, &got)
	if got.Content != "newer" {
		t.Fatalf("a refused replay changed %s: %+v", id2, got)
	}
	r = e.do("GET", prefix, "")
	r.json(t, &fl)
	if len(fl.Entries) != 1 || fl.Entries[0].Seq != 3 {
		t.Fatalf("after a refused replay the entry must stay: %s", r.body)
	}
	expect(t, e.do("POST", prefix+"/drop", `{"epoch":1,"seq":3}`), 200, "")
	r = e.do("GET", prefix, "")
	r.json(t, &fl)
	if len(fl.Entries) != 0 {
		t.Fatalf("after replay and drop: %s", r.body)
	}
}

func TestLagTracker(t *testing.T) {
	tr := &lagTracker{samples: make([]lagSample, ringSize)}
	t0 := time.Unix(1000, 0)
	tr.record(10, t0)
	tr.record(10, t0.Add(time.Millisecond)) // unchanged: not recorded
	tr.record(12, t0.Add(5*time.Millisecond))
	tr.record(20, t0.Add(9*time.Millisecond))
	now := t0.Add(10 * time.Millisecond)
	for _, c := range []struct {
		match, last core.Seq
		want        int64
	}{
		{20, 20, 0}, {21, 20, 0}, // caught up
		{19, 20, 1}, // missing 20, first seen at 9ms
		{12, 20, 1}, // missing 13.., seen at 9ms
		{11, 20, 5}, // missing 12, seen at 5ms
		{10, 20, 5}, // idem
		{5, 20, 10}, // older than the history: its age, a lower bound
		{20, 25, 0}, // newer than the last sample: younger than a period
	} {
		got, ok := tr.lag(c.match, c.last, now)
		if !ok || got != c.want {
			t.Errorf("lag(%d, %d) = %d %v, want %d", c.match, c.last, got, ok, c.want)
		}
	}
	// The ring keeps the newest samples.
	for i := 0; i < ringSize+10; i++ {
		tr.record(core.Seq(100+i), t0.Add(time.Duration(i)*time.Microsecond))
	}
	if tr.count != ringSize || tr.samples[tr.head].seq != 110 {
		t.Fatalf("ring: count %d head seq %d", tr.count, tr.samples[tr.head].seq)
	}
	empty := &lagTracker{samples: make([]lagSample, ringSize)}
	if _, ok := empty.lag(1, 2, now); ok {
		t.Fatal("lag known with no samples")
	}
}

// checkJSON accepts what is valid: UTF-8 text, surrogate pairs, an escaped
// backslash before "u", the same key in different objects, repeated
// array values.
func TestCheckJSONAccepts(t *testing.T) {
	for _, ok := range []string{
		`{"content":"café 😀 \ud83d\ude00 \\ud800 \"\\\u00e9"}`,
		`{"a":{"b":1},"c":{"b":2},"d":[{"b":1},{"b":2}]}`,
		`{"tags":["a","a"]}`,
		`{"content":"x"} {"content":"x"}`,
	} {
		if err := checkJSON([]byte(ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{`{"a":{"b":1,"b":2}}`, `{"d":[{"b":1,"B":2}]}`} {
		if err := checkJSON([]byte(bad)); err == nil || !strings.Contains(err.Error(), "given twice") {
			t.Errorf("%s: %v", bad, err)
		}
	}
	if err := checkJSON([]byte(`{"d":[{"b":1},{"e":"\udc00"}]}`)); err == nil || !strings.Contains(err.Error(), "field d[1].e: invalid UTF-16") {
		t.Errorf("nested path: %v", err)
	}
}
