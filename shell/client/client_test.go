package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/api"
	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/node"
)

func standalone(t *testing.T) string {
	t.Helper()
	n, err := node.Start(node.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	a := api.New(n, api.Options{})
	srv := httptest.NewServer(a)
	t.Cleanup(func() {
		srv.Close()
		a.Close()
		n.Close()
	})
	deadline := time.Now().Add(5 * time.Second)
	for n.Status().Core.Role != core.RoleCortex {
		if time.Now().After(deadline) {
			t.Fatal("never cortex")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return srv.URL
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestRoundTrip(t *testing.T) {
	c := New(standalone(t))
	x := ctx(t)
	conf := 0.7
	w, err := c.Write(x, apitypes.WriteRequest{Concept: "go", Content: "Go has goroutines", Tags: []string{"lang"}, Confidence: &conf}, Durability("quorum"))
	if err != nil || w.Seq == 0 || w.Durability != "quorum" || w.Vault != "default" {
		t.Fatalf("write %+v %v", w, err)
	}
	e, err := c.Get(x, "", w.ID, Consistency("strong"))
	if err != nil || e.Content != "Go has goroutines" || e.Confidence != 0.7 {
		t.Fatalf("get %+v %v", e, err)
	}
	if _, err := c.Get(x, "", w.ID, MaxLag(100)); err != nil {
		t.Fatal(err)
	}
	content := "Go has goroutines and channels"
	if _, err := c.Update(x, "", w.ID, apitypes.UpdateRequest{Content: &content}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(x, apitypes.WriteRequest{Vault: "other", Content: "elsewhere"}); err != nil {
		t.Fatal(err)
	}
	l, err := c.List(x, "", ListOptions{Tags: []string{"lang"}, Limit: 10})
	if err != nil || len(l.Engrams) != 1 || l.Engrams[0].Content != content {
		t.Fatalf("list %+v %v", l, err)
	}
	a, err := c.Activate(x, apitypes.ActivateRequest{Query: "channels"})
	if err != nil || len(a.Hits) != 1 {
		t.Fatalf("activate %+v %v", a, err)
	}
	if _, err := c.Forget(x, "", w.ID); err != nil {
		t.Fatal(err)
	}
	_, err = c.Get(x, "", w.ID)
	var ae *Error
	if !errors.As(err, &ae) || ae.Status != 404 || ae.Code != "not_found" || ae.Node != "standalone" || !IsCode(err, "not_found") {
		t.Fatalf("get forgotten: %v", err)
	}
	// A bad request is not retried and says what is wrong.
	start := time.Now()
	_, err = c.Write(x, apitypes.WriteRequest{Content: "x", Tags: []string{""}})
	if !IsCode(err, "bad_request") || !strings.Contains(err.Error(), "tags[0]") || time.Since(start) > time.Second {
		t.Fatalf("bad write: %v", err)
	}

	// Cluster calls.
	info, err := c.Info(x)
	if err != nil || info.Role != "cortex" || info.Epoch == 0 {
		t.Fatalf("info %+v %v", info, err)
	}
	st, err := c.Status(x, false)
	if err != nil || st.View != "cortex" || len(st.Members) != 1 {
		t.Fatalf("status %+v %v", st, err)
	}
	h, err := c.Health(x)
	if err != nil || h.Status != "ok" {
		t.Fatalf("health %+v %v", h, err)
	}
	q, err := c.Quarantine(x)
	if err != nil || len(q.Entries) != 0 || q.NodeID == "" {
		t.Fatalf("quarantine %+v %v", q, err)
	}
	var buf bytes.Buffer
	if n, err := c.ExportQuarantine(x, &buf); err != nil || n != 0 {
		t.Fatalf("export %d %v", n, err)
	}
	if _, err := c.Failover(x, ""); !IsCode(err, "standalone") {
		t.Fatalf("failover on a standalone node: %v", err)
	}
	if _, err := c.AddMember(x, "muninn-02", "auto"); !IsCode(err, "standalone") {
		t.Fatalf("add member: %v", err)
	}
	if _, err := c.RemoveMember(x, "muninn-02"); !IsCode(err, "standalone") {
		t.Fatalf("remove member: %v", err)
	}
	if _, err := c.ReplayQuarantined(x, 1, 1); !IsCode(err, apitypes.CodeQuarantineMissing) {
		t.Fatalf("replay: %v", err)
	}
	if err := c.DropQuarantined(x, 1, 1); !IsCode(err, apitypes.CodeQuarantineMissing) {
		t.Fatalf("drop: %v", err)
	}
	// The deprecated names still work.
	if f, err := c.Fenced(x); err != nil || len(f.Entries) != 0 {
		t.Fatalf("fenced %+v %v", f, err)
	}
	if n, err := c.ExportFenced(x, &buf); err != nil || n != 0 {
		t.Fatalf("export fenced %d %v", n, err)
	}
	if _, err := c.ReplayFenced(x, 1, 1); !IsCode(err, apitypes.CodeQuarantineMissing) {
		t.Fatalf("replay fenced: %v", err)
	}
	if err := c.DropFenced(x, 1, 1); !IsCode(err, apitypes.CodeQuarantineMissing) {
		t.Fatalf("drop fenced: %v", err)
	}
	// A node served without muninn start's switcher cannot switch.
	if _, err := c.Enable(x, apitypes.EnableRequest{NodeID: "n1", BindAddr: "127.0.0.1:0"}); !IsCode(err, "not_implemented") {
		t.Fatalf("enable: %v", err)
	}
	if _, err := c.Disable(x); !IsCode(err, "conflict") {
		t.Fatalf("disable: %v", err)
	}
}

// fake is a node that answers with scripted errors, then proxies to a real
// node.
type fake struct {
	srv    *httptest.Server
	hits   atomic.Int64
	script func(n int64, w http.ResponseWriter, r *http.Request) bool // true: handled
	to     string
}

func newFake(t *testing.T, to string, script func(n int64, w http.ResponseWriter, r *http.Request) bool) *fake {
	f := &fake{script: script, to: to}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/cluster/info" {
			w.WriteHeader(503)
			return
		}
		n := f.hits.Add(1)
		if f.script(n, w, r) {
			return
		}
		proxy(w, r, f.to)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func proxy(w http.ResponseWriter, r *http.Request, to string) {
	body, _ := io.ReadAll(r.Body)
	req, _ := http.NewRequest(r.Method, to+r.URL.RequestURI(), bytes.NewReader(body))
	req.Header = r.Header.Clone()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		w.WriteHeader(502)
		return
	}
	defer res.Body.Close()
	for k, v := range res.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(res.StatusCode)
	io.Copy(w, res.Body)
}

func apiErr(w http.ResponseWriter, status int, code, cortex, cortexAPI string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"code":%q,"message":"scripted %s","cortex":%q,"cortex_api":%q}}`, code, code, cortex, cortexAPI)
}

func TestFollowsTheCortex(t *testing.T) {
	real := standalone(t)
	lobe := newFake(t, real, func(n int64, w http.ResponseWriter, r *http.Request) bool {
		apiErr(w, 503, "not_cortex", "standalone", real)
		return true
	})
	c := New(lobe.srv.URL)
	x := ctx(t)
	for i := 0; i < 3; i++ {
		if _, err := c.Write(x, apitypes.WriteRequest{Content: fmt.Sprint("w", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if h := lobe.hits.Load(); h != 1 {
		t.Fatalf("the lobe saw %d requests; after the first, writes go to the Cortex", h)
	}
	// read_only_node (a Sentinel) names the Cortex too.
	sentinel := newFake(t, real, func(n int64, w http.ResponseWriter, r *http.Request) bool {
		apiErr(w, 403, "read_only_node", "standalone", real)
		return true
	})
	if _, err := New(sentinel.srv.URL).Write(x, apitypes.WriteRequest{Content: "s"}); err != nil {
		t.Fatal(err)
	}
}

func TestRetriesAcrossAnElection(t *testing.T) {
	real := standalone(t)
	f := newFake(t, real, func(n int64, w http.ResponseWriter, r *http.Request) bool {
		if n <= 3 {
			apiErr(w, 503, "no_cortex", "", "")
			return true
		}
		return false
	})
	start := time.Now()
	w, err := New(f.srv.URL).Write(ctx(t), apitypes.WriteRequest{Content: "held"})
	if err != nil || w.Seq == 0 {
		t.Fatalf("write %+v %v", w, err)
	}
	if f.hits.Load() != 4 || time.Since(start) > 3*time.Second {
		t.Fatalf("%d attempts in %v", f.hits.Load(), time.Since(start))
	}
}

func TestRetryBudget(t *testing.T) {
	f := newFake(t, "", func(n int64, w http.ResponseWriter, r *http.Request) bool {
		apiErr(w, 503, "no_cortex", "", "")
		return true
	})
	start := time.Now()
	_, err := New(f.srv.URL, WithRetryBudget(400*time.Millisecond)).Write(ctx(t), apitypes.WriteRequest{Content: "x"})
	if !IsCode(err, "no_cortex") {
		t.Fatalf("err %v", err)
	}
	if d := time.Since(start); d > time.Second || f.hits.Load() < 2 {
		t.Fatalf("%d attempts in %v", f.hits.Load(), d)
	}
	// A canceled context stops at once.
	c, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	start = time.Now()
	if _, err := New(f.srv.URL).Write(c, apitypes.WriteRequest{Content: "x"}); err == nil || time.Since(start) > time.Second {
		t.Fatalf("canceled: %v after %v", err, time.Since(start))
	}
	// No retries at all with a zero budget.
	f.hits.Store(0)
	New(f.srv.URL, WithRetryBudget(0)).Write(ctx(t), apitypes.WriteRequest{Content: "x"})
	if f.hits.Load() != 1 {
		t.Fatalf("%d attempts with no budget", f.hits.Load())
	}
}

// TestAmbiguousWrite: the first attempt is applied but its answer lost;
// the retry finds the engram (409) and the write is reported done.
func TestAmbiguousWrite(t *testing.T) {
	real := standalone(t)
	f := newFake(t, real, func(n int64, w http.ResponseWriter, r *http.Request) bool {
		if n == 1 {
			rec := httptest.NewRecorder()
			proxy(rec, r, real)
			apiErr(w, 503, "unknown_outcome", "", "")
			return true
		}
		return false
	})
	c := New(f.srv.URL)
	x := ctx(t)
	w, err := c.Write(x, apitypes.WriteRequest{Content: "once"})
	if err != nil || w.ID == "" || w.Seq != 0 {
		t.Fatalf("write %+v %v", w, err)
	}
	l, err := c.List(x, "", ListOptions{})
	if err != nil || len(l.Engrams) != 1 {
		t.Fatalf("the write was applied %d times (%v)", len(l.Engrams), err)
	}
	// A plain duplicate (nothing ambiguous) is still a conflict.
	if _, err := c.Write(x, apitypes.WriteRequest{ID: w.ID, Content: "again"}); !IsCode(err, "conflict") {
		t.Fatalf("duplicate: %v", err)
	}
}

func TestAdminIsNotRetriedBlindly(t *testing.T) {
	f := newFake(t, "", func(n int64, w http.ResponseWriter, r *http.Request) bool {
		apiErr(w, 503, "unavailable", "", "")
		return true
	})
	if _, err := New(f.srv.URL).Failover(ctx(t), ""); !IsCode(err, "unavailable") || f.hits.Load() != 1 {
		t.Fatalf("failover: %v after %d attempts", err, f.hits.Load())
	}
}

func TestFallsBackToOtherNodes(t *testing.T) {
	real := standalone(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	c := New(dead, WithEndpoints(real))
	if _, err := c.Write(ctx(t), apitypes.WriteRequest{Content: "x"}); err != nil {
		t.Fatal(err)
	}
	// Local calls go to the given node only.
	if _, err := c.Info(ctx(t)); err == nil {
		t.Fatal("info from a dead node")
	}
	if New("localhost:1").Addr() != "http://localhost:1" || New("").Addr() != DefaultAddr {
		t.Fatal("address normalization")
	}
}

// TestCortexKilled: a 3-node cluster loses its Cortex; a client pointed at
// it keeps writing after the election, on the new Cortex.
func TestCortexKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	type member struct {
		n   *node.Node
		a   *api.Server
		srv *httptest.Server
	}
	const size = 3
	var ms [size]*member
	var mbp []string
	var sw [size]atomic.Pointer[api.Server]
	for i := range ms {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		mbp = append(mbp, l.Addr().String())
		l.Close()
		i := i
		ms[i] = &member{srv: httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if a := sw[i].Load(); a != nil {
				a.ServeHTTP(w, r)
				return
			}
			apiErr(w, 503, "starting", "", "")
		}))}
	}
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			m.n, err = node.Start(node.Options{ID: core.NodeID(fmt.Sprintf("n%d", i+1)), DataDir: t.TempDir(), Cluster: true,
				Secret: []byte("0123456789abcdef-client-test"), BindAddr: mbp[i], APIAddr: m.srv.URL, Seeds: mbp, Heartbeat: 100 * time.Millisecond})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for i, m := range ms {
		m.a = api.New(m.n, api.Options{})
		sw[i].Store(m.a)
	}
	closed := map[*member]bool{}
	t.Cleanup(func() {
		for _, m := range ms {
			if !closed[m] {
				m.srv.Close()
				m.a.Close()
				m.n.Close()
			}
		}
	})
	var cortex *member
	deadline := time.Now().Add(10 * time.Second)
	for cortex == nil {
		for _, m := range ms {
			st := m.n.Status()
			if st.Core.Role == core.RoleCortex && len(st.APIAddrs) == size {
				cortex = m
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no cortex")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c := New(cortex.srv.URL)
	x := ctx(t)
	if _, err := c.Write(x, apitypes.WriteRequest{Content: "before"}, Durability("quorum")); err != nil {
		t.Fatal(err)
	}
	cortex.srv.CloseClientConnections()
	cortex.srv.Close()
	cortex.a.Close()
	cortex.n.Close()
	closed[cortex] = true
	start := time.Now()
	w, err := c.Write(x, apitypes.WriteRequest{Content: "after"}, Durability("quorum"))
	if err != nil {
		t.Fatalf("write after the cortex died: %v", err)
	}
	t.Logf("write acknowledged %v after the kill at %d.%d", time.Since(start), w.Epoch, w.Seq)
	if time.Since(start) > DefaultRetryBudget {
		t.Fatalf("took %v", time.Since(start))
	}
}

// drop closes the connection without answering: the client cannot know
// what happened to its request.
func drop(t *testing.T, w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		t.Error(err)
		return
	}
	conn.Close()
}

func apiErrMsg(w http.ResponseWriter, status int, code, msg, cortexAPI string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"code":%q,"message":%q,"cortex_api":%q}}`, code, msg, cortexAPI)
}

// ambiguous checks that err is an *AmbiguousError about id whose last
// attempt failed with lastCode ("" for a transport error).
func ambiguous(t *testing.T, what string, err error, id, lastCode string) *AmbiguousError {
	t.Helper()
	var ae *AmbiguousError
	if !errors.Is(err, ErrAmbiguous) || !errors.As(err, &ae) {
		t.Fatalf("%s: want an ambiguous outcome, got %v", what, err)
	}
	if ae.ID != id || ae.Reason == nil || ae.Err == nil {
		t.Fatalf("%s: %+v", what, ae)
	}
	var ce *Error
	if lastCode == "" && errors.As(err, &ce) || lastCode != "" && !IsCode(err, lastCode) {
		t.Fatalf("%s: the last attempt's error should be %q: %v", what, lastCode, ae.Err)
	}
	if !strings.Contains(err.Error(), "outcome unknown") || !strings.Contains(err.Error(), id) {
		t.Fatalf("%s: message %q", what, err)
	}
	return ae
}

// TestAppliedThenDropped: the first attempt is applied and its connection
// dropped. Without retries, or when every retry fails, the write is
// reported as "may have happened", never as failed; the engram can be read
// back by the error's id.
func TestAppliedThenDropped(t *testing.T) {
	real := standalone(t)
	x := ctx(t)
	rc := New(real)
	// Later attempts are refused with a forwarding error, a definite
	// refusal, or nothing at all.
	for _, later := range []struct {
		name string
		code string
		then func(w http.ResponseWriter)
	}{
		{"no retry", "", nil},
		{"forwarding failed", "unavailable", func(w http.ResponseWriter) {
			apiErrMsg(w, 503, "unavailable", "this node (n2) is not the Cortex; forwarding to the Cortex n1 at http://127.0.0.1:1 failed: EOF; retry", "")
		}},
		{"disk full", "insufficient_storage", func(w http.ResponseWriter) {
			apiErrMsg(w, 507, "insufficient_storage", "disk full: nothing was written", "")
		}},
		{"quorum unavailable", "quorum_unavailable", func(w http.ResponseWriter) {
			apiErrMsg(w, 503, "quorum_unavailable", "a commit needs 2 data voters but only 1 answer", "")
		}},
	} {
		f := newFake(t, real, func(n int64, w http.ResponseWriter, r *http.Request) bool {
			if n == 1 {
				proxy(httptest.NewRecorder(), r, real)
				drop(t, w)
				return true
			}
			later.then(w)
			return true
		})
		budget := 300 * time.Millisecond
		if later.then == nil {
			budget = 0
		}
		id := NewID()
		_, err := New(f.srv.URL, WithRetryBudget(budget)).Write(x, apitypes.WriteRequest{ID: id, Content: "applied, answer lost"})
		ae := ambiguous(t, later.name, err, id, later.code)
		if ae.Op != "write" || errors.As(ae.Reason, new(*Error)) {
			t.Fatalf("%s: the ambiguous attempt is the dropped one: %+v", later.name, ae)
		}
		if later.then == nil && f.hits.Load() != 1 || later.then != nil && f.hits.Load() < 2 {
			t.Fatalf("%s: %d attempts", later.name, f.hits.Load())
		}
		// What the caller should do: read it back by id.
		if e, err := rc.Get(x, "", ae.ID, Consistency("strong")); err != nil || e.Content != "applied, answer lost" {
			t.Fatalf("%s: read back: %+v %v", later.name, e, err)
		}
	}
	// With retries allowed and a healthy node behind, the retry finds the
	// engram (409) and the write is reported done, once.
	f := newFake(t, real, func(n int64, w http.ResponseWriter, r *http.Request) bool {
		if n == 1 {
			proxy(httptest.NewRecorder(), r, real)
			drop(t, w)
			return true
		}
		return false
	})
	res, err := New(f.srv.URL).Write(x, apitypes.WriteRequest{Vault: "dropped", Content: "once"}, Durability("quorum"))
	// Three requests: the dropped one, the retry (409), the strong read
	// confirming quorum durability.
	if err != nil || res.ID == "" || f.hits.Load() != 3 {
		t.Fatalf("write after a dropped answer: %+v %v (%d attempts)", res, err, f.hits.Load())
	}
	if l, err := rc.List(x, "dropped", ListOptions{}); err != nil || len(l.Engrams) != 1 {
		t.Fatalf("applied %d times (%v)", len(l.Engrams), err)
	}
	// Forget: a retry that finds it gone reports success; with no retry
	// the outcome is unknown.
	g := newFake(t, real, func(n int64, w http.ResponseWriter, r *http.Request) bool {
		if n == 1 {
			proxy(httptest.NewRecorder(), r, real)
			drop(t, w)
			return true
		}
		return false
	})
	if _, err := New(g.srv.URL).Forget(x, "dropped", res.ID); err != nil || g.hits.Load() != 2 {
		t.Fatalf("forget after a dropped answer: %v (%d attempts)", err, g.hits.Load())
	}
	w2, err := rc.Write(x, apitypes.WriteRequest{Content: "to update"})
	if err != nil {
		t.Fatal(err)
	}
	g.hits.Store(0)
	content := "updated"
	_, err = New(g.srv.URL, WithRetryBudget(0)).Update(x, "", w2.ID, apitypes.UpdateRequest{Content: &content})
	if ae := ambiguous(t, "update", err, w2.ID, ""); ae.Op != "update" {
		t.Fatalf("op %q", ae.Op)
	}
	if e, err := rc.Get(x, "", w2.ID); err != nil || e.Content != "updated" {
		t.Fatalf("the update was applied: %+v %v", e, err)
	}
}

// TestUnknownOutcomeAnswer: a node answering 503 unknown_outcome (the
// Cortex deposed before the write committed) makes the write ambiguous
// when no retry settles it.
func TestUnknownOutcomeAnswer(t *testing.T) {
	f := newFake(t, "", func(n int64, w http.ResponseWriter, r *http.Request) bool {
		apiErrMsg(w, 503, "unknown_outcome", "the Cortex stepped down before the write reached a quorum; it may or may not survive: read it back", "")
		return true
	})
	id := NewID()
	start := time.Now()
	_, err := New(f.srv.URL, WithRetryBudget(300*time.Millisecond)).Write(ctx(t), apitypes.WriteRequest{ID: id, Content: "x"}, Durability("quorum"))
	ae := ambiguous(t, "unknown_outcome", err, id, "unknown_outcome")
	if !IsCode(ae.Reason, "unknown_outcome") || f.hits.Load() < 2 || time.Since(start) > 2*time.Second {
		t.Fatalf("%+v after %d attempts in %v", ae, f.hits.Load(), time.Since(start))
	}
	// Other answers that leave the outcome open.
	for _, c := range []struct {
		status     int
		code, msg  string
		cortexAPI  string
		wantLast   string
		wantBudget bool
	}{
		{503, "unavailable", "forwarding to the Cortex failed: read: connection reset by peer; retry", "", "unavailable", true},
		{500, "internal", "storage failure", "", "internal", false},
		{502, "", "", "", "http_502", false},
		{507, "insufficient_storage", "no space; the node was storing this request's outcome when the disk filled: it is held until space is freed and may still be applied, so read it back before retrying", "", "insufficient_storage", false},
	} {
		f := newFake(t, "", func(n int64, w http.ResponseWriter, r *http.Request) bool {
			if c.code == "" {
				w.WriteHeader(c.status)
				return true
			}
			apiErrMsg(w, c.status, c.code, c.msg, c.cortexAPI)
			return true
		})
		id := NewID()
		_, err := New(f.srv.URL, WithRetryBudget(200*time.Millisecond)).Write(ctx(t), apitypes.WriteRequest{ID: id, Content: "x"})
		ambiguous(t, fmt.Sprint(c.status, " ", c.code), err, id, c.wantLast)
	}
}

// TestDefiniteRefusals: answers that say nothing was written stay plain
// errors, with their code.
func TestDefiniteRefusals(t *testing.T) {
	for _, c := range []struct {
		status int
		code   string
		msg    string
	}{
		{400, "bad_request", "tags[0]: empty"},
		{409, "conflict", "engram exists"},
		{413, "too_large", "body over 1 MiB"},
		{403, "read_only_node", "a sentinel"},
		{422, "quorum_impossible", "too few data voters"},
		{507, "insufficient_storage", "disk full: /data has 12 MiB free, below the 64 MiB reserve"},
		{503, "quorum_unavailable", "a commit needs 2 data voters but only 1 answer"},
		{503, "not_cortex", "not the Cortex; its API address is not known here yet"},
		{503, "no_cortex", "an election is under way"},
		{503, "handoff_in_progress", "handoff"},
		{503, "starting", "starting"},
	} {
		f := newFake(t, "", func(n int64, w http.ResponseWriter, r *http.Request) bool {
			apiErrMsg(w, c.status, c.code, c.msg, "")
			return true
		})
		_, err := New(f.srv.URL, WithRetryBudget(150*time.Millisecond)).Write(ctx(t), apitypes.WriteRequest{Content: "x"})
		if errors.Is(err, ErrAmbiguous) || !IsCode(err, c.code) {
			t.Errorf("%d %s: want a definite %s, got %v", c.status, c.code, c.code, err)
		}
	}
	// A dial error: the request never left.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	_, err = New(dead, WithRetryBudget(100*time.Millisecond)).Write(ctx(t), apitypes.WriteRequest{Content: "x"})
	if err == nil || errors.Is(err, ErrAmbiguous) {
		t.Fatalf("dial error: %v", err)
	}
	// Reads are never ambiguous, even when their answer is lost.
	f := newFake(t, "", func(n int64, w http.ResponseWriter, r *http.Request) bool {
		drop(t, w)
		return true
	})
	if _, err := New(f.srv.URL, WithRetryBudget(0)).Get(ctx(t), "", NewID()); err == nil || errors.Is(err, ErrAmbiguous) {
		t.Fatalf("read: %v", err)
	}
}

// TestSentThenTimedOut: a write applied whose answer does not come before
// the HTTP timeout, or before the caller's context ends, is ambiguous; the
// context's error is still visible.
func TestSentThenTimedOut(t *testing.T) {
	real := standalone(t)
	release := make(chan struct{})
	defer close(release)
	f := newFake(t, real, func(n int64, w http.ResponseWriter, r *http.Request) bool {
		proxy(httptest.NewRecorder(), r, real)
		select {
		case <-r.Context().Done():
		case <-release:
		}
		return true
	})
	id := NewID()
	hc := &http.Client{Timeout: 200 * time.Millisecond}
	_, err := New(f.srv.URL, WithHTTPClient(hc), WithRetryBudget(0)).Write(ctx(t), apitypes.WriteRequest{ID: id, Content: "slow"})
	ambiguous(t, "http timeout", err, id, "")
	var ue interface{ Timeout() bool }
	if !errors.As(err, &ue) || !ue.Timeout() {
		t.Fatalf("the cause is the timeout: %v", err)
	}
	if _, err := New(real).Get(ctx(t), "", id); err != nil {
		t.Fatalf("applied: %v", err)
	}
	c, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	id = NewID()
	_, err = New(f.srv.URL).Write(c, apitypes.WriteRequest{ID: id, Content: "slow"})
	ambiguous(t, "context deadline", err, id, "")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the cause is the deadline: %v", err)
	}
}

// TestAdminAmbiguous: an admin call whose outcome is unknown is not sent
// again, and says so; the Cortex's own refusals stay definite.
func TestAdminAmbiguous(t *testing.T) {
	x := ctx(t)
	other := newFake(t, "", func(n int64, w http.ResponseWriter, r *http.Request) bool {
		apiErr(w, 200, "", "", "")
		return true
	})
	// unknown_outcome naming a new Cortex: not followed.
	f := newFake(t, "", func(n int64, w http.ResponseWriter, r *http.Request) bool {
		apiErrMsg(w, 503, "unknown_outcome", "the Cortex changed from n1 to n2 while this request was forwarded", other.srv.URL)
		return true
	})
	_, err := New(f.srv.URL).Failover(x, "")
	if ae := ambiguous(t, "failover", err, "", "unknown_outcome"); ae.Op != "failover" || f.hits.Load() != 1 || other.hits.Load() != 0 {
		t.Fatalf("%+v: %d and %d attempts", ae, f.hits.Load(), other.hits.Load())
	}
	// A forwarding failure (it names the Cortex) may have reached it.
	f = newFake(t, "", func(n int64, w http.ResponseWriter, r *http.Request) bool {
		apiErrMsg(w, 503, "unavailable", "forwarding to the Cortex n1 at http://127.0.0.1:1 failed: EOF", "http://127.0.0.1:1")
		return true
	})
	_, err = New(f.srv.URL).AddMember(x, "muninn-04", "auto")
	ambiguous(t, "add member", err, "muninn-04", "unavailable")
	// The connection dropped after the request was sent.
	f = newFake(t, "", func(n int64, w http.ResponseWriter, r *http.Request) bool {
		io.ReadAll(r.Body)
		drop(t, w)
		return true
	})
	_, err = New(f.srv.URL).RemoveMember(x, "muninn-03")
	if ambiguous(t, "remove member", err, "muninn-03", ""); f.hits.Load() != 1 {
		t.Fatalf("%d attempts", f.hits.Load())
	}
	_, err = New(f.srv.URL).ReplayQuarantined(x, 3, 7)
	ambiguous(t, "replay", err, "3.7", "")
	// The Cortex's own refusals: nothing was done.
	f = newFake(t, "", func(n int64, w http.ResponseWriter, r *http.Request) bool {
		apiErrMsg(w, 503, "unavailable", "no other data voter to hand off to", "")
		return true
	})
	if _, err := New(f.srv.URL).Failover(x, ""); errors.Is(err, ErrAmbiguous) || !IsCode(err, "unavailable") {
		t.Fatalf("failover refused: %v", err)
	}
	f = newFake(t, "", func(n int64, w http.ResponseWriter, r *http.Request) bool {
		apiErrMsg(w, 400, "bad_request", "muninn-02 is already a member", "")
		return true
	})
	if _, err := New(f.srv.URL).AddMember(x, "muninn-02", "auto"); errors.Is(err, ErrAmbiguous) || !IsCode(err, "bad_request") {
		t.Fatalf("add member refused: %v", err)
	}
}

// TestKnownBounded: endpoints learned from nodes are capped, whatever a
// node announces.
func TestKnownBounded(t *testing.T) {
	c := New("http://127.0.0.1:1")
	for i := range 10 * maxKnown {
		c.addKnown(fmt.Sprintf("http://127.0.0.1:%d", 2+i))
	}
	if len(c.known) != maxKnown {
		t.Fatalf("known has %d endpoints, want the cap %d", len(c.known), maxKnown)
	}
}
