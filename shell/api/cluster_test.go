package api

import (
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
	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/node"
)

// swap serves 503 until the node's API is set.
type swap struct{ h atomic.Pointer[Server] }

func (s *swap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := s.h.Load(); h != nil {
		h.ServeHTTP(w, r)
		return
	}
	writeError(w, &apiError{status: 503, code: apitypes.CodeStarting, msg: "starting"})
}

type member struct {
	id  string
	n   *node.Node
	api *Server
	srv *httptest.Server
	url string
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startCluster starts len(kinds) nodes on 127.0.0.1 that list each other
// as seeds, with a fast heartbeat, and waits for one Cortex all agree on.
func startCluster(t *testing.T, kinds ...core.Kind) []*member {
	t.Helper()
	return startClusterWith(t, nil, kinds...)
}

// startClusterWith is startCluster with each node's options adjusted by
// tweak (when not nil) before it starts.
func startClusterWith(t *testing.T, tweak func(i int, o *node.Options), kinds ...core.Kind) []*member {
	t.Helper()
	ms := make([]*member, len(kinds))
	mbp := make([]string, len(kinds))
	sw := make([]*swap, len(kinds))
	for i := range kinds {
		mbp[i] = freePort(t)
		sw[i] = &swap{}
		srv := httptest.NewServer(sw[i])
		ms[i] = &member{id: fmt.Sprintf("muninn-%02d", i+1), srv: srv, url: srv.URL}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(kinds))
	for i := range kinds {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			o := node.Options{
				ID: core.NodeID(ms[i].id), Kind: kinds[i], DataDir: t.TempDir(), Cluster: true,
				Secret: []byte("0123456789abcdef-api-test"), BindAddr: mbp[i], APIAddr: ms[i].url, Seeds: mbp,
				Heartbeat: 100 * time.Millisecond, ForwardWait: 3 * time.Second,
			}
			if tweak != nil {
				tweak(i, &o)
			}
			ms[i].n, errs[i] = node.Start(o)
		}(i)
	}
	wg.Wait()
	for i, m := range ms {
		if errs[i] != nil {
			t.Fatalf("start %s: %v", m.id, errs[i])
		}
		m.api = New(m.n, Options{})
		sw[i].h.Store(m.api)
	}
	t.Cleanup(func() {
		for _, m := range ms {
			m.srv.Close()
			m.api.Close()
			m.n.Close()
		}
	})
	waitAgree(t, ms, "")
	return ms
}

// waitAgree waits until every node follows the same Cortex (not notThis)
// and knows its API address; it returns the Cortex.
func waitAgree(t *testing.T, ms []*member, notThis string) *member {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var c string
		agree := true
		for _, m := range ms {
			st := m.n.Status()
			cid := string(st.Core.Cortex)
			if cid == "" || cid == notThis || (c != "" && cid != c) || st.APIAddrs[st.Core.Cortex] == "" {
				agree = false
				break
			}
			c = cid
		}
		if agree {
			for _, m := range ms {
				if m.id == c && m.n.Status().Core.Role == core.RoleCortex {
					return m
				}
			}
		}
		if time.Now().After(deadline) {
			for _, m := range ms {
				st := m.n.Status().Core
				t.Logf("%s: role %s cortex %q epoch %d", m.id, st.Role, st.Cortex, st.Epoch)
			}
			t.Fatal("the nodes never agreed on a Cortex")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func lobes(ms []*member, cortex *member) []*member {
	var out []*member
	for _, m := range ms {
		if m != cortex && m.n.Options().Kind == core.KindAuto {
			out = append(out, m)
		}
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestClusterForwarding(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	ms := startCluster(t, core.KindAuto, core.KindAuto, core.KindAuto)
	cortex := waitAgree(t, ms, "")
	lobe := lobes(ms, cortex)[0]

	// A write sent to a Lobe is forwarded and answered by the Cortex.
	r := do(t, lobe.url, "POST", "/api/engrams?durability=quorum", `{"content":"via a lobe","tags":["fwd"]}`)
	expect(t, r, 201, "")
	if got := r.header.Get(apitypes.HeaderNode); got != cortex.id {
		t.Fatalf("answered by %q, want the Cortex %s", got, cortex.id)
	}
	var wr apitypes.WriteResult
	r.json(t, &wr)

	// A strong read on a Lobe is forwarded; an eventual one is served
	// locally once replicated.
	r = do(t, lobe.url, "GET", "/api/engrams/"+wr.ID+"?consistency=strong", "")
	expect(t, r, 200, "")
	if r.header.Get(apitypes.HeaderNode) != cortex.id {
		t.Fatalf("strong read answered by %q", r.header.Get(apitypes.HeaderNode))
	}
	waitFor(t, "replication to the lobe", func() bool {
		_, ok, _ := lobe.n.Store().Get("default", wr.ID)
		return ok
	})
	r = do(t, lobe.url, "GET", "/api/engrams/"+wr.ID, "")
	expect(t, r, 200, "")
	if r.header.Get(apitypes.HeaderNode) != lobe.id {
		t.Fatalf("eventual read answered by %q", r.header.Get(apitypes.HeaderNode))
	}
	// Updates, forgets and bounded activations go through too.
	expect(t, do(t, lobe.url, "PATCH", "/api/engrams/"+wr.ID, `{"concept":"forwarded"}`), 200, "")
	expect(t, do(t, lobe.url, "POST", "/api/activate?consistency=strong", `{"query":"lobe"}`), 200, "")
	// A 404 from the Cortex comes back verbatim.
	expect(t, do(t, lobe.url, "DELETE", "/api/engrams/"+node.NewEngramID(), ""), 404, "not_found")

	// An already-forwarded request is never forwarded again.
	d := expect(t, do(t, lobe.url, "POST", "/api/engrams", `{"content":"x"}`, apitypes.HeaderForwardedBy, "someone"), 503, "not_cortex")
	if d.Cortex != cortex.id || d.CortexAPI != cortex.url || !strings.Contains(d.Message, cortex.id) {
		t.Fatalf("not_cortex error %+v", d)
	}

	// Cluster views.
	for _, m := range ms {
		var h apitypes.Health
		waitFor(t, "health on "+m.id, func() bool {
			r := do(t, m.url, "GET", "/v1/cluster/health", "")
			r.json(t, &h)
			return r.status == 200
		})
		if h.ReachableVoters != 3 || h.Cortex != cortex.id {
			t.Fatalf("health on %s: %+v", m.id, h)
		}
		var info apitypes.Info
		do(t, m.url, "GET", "/v1/cluster/info", "").json(t, &info)
		if info.Cortex != cortex.id || info.CortexAPI != cortex.url || len(info.Members) != 3 || !info.ClusterEnabled || info.FencingToken != info.Epoch {
			t.Fatalf("info on %s: %+v", m.id, info)
		}
		for _, mm := range info.Members {
			if mm.API == "" || mm.MBP == "" || (mm.ID == cortex.id) != (mm.Role == "cortex") {
				t.Fatalf("info member on %s: %+v", m.id, mm)
			}
		}
	}
	var st apitypes.Status
	r = do(t, lobe.url, "GET", "/v1/cluster/status", "")
	expect(t, r, 200, "")
	r.json(t, &st)
	if st.View != "cortex" || st.NodeID != cortex.id || len(st.Members) != 3 {
		t.Fatalf("status via a lobe: %s", r.body)
	}
	for _, m := range st.Members {
		if m.LastSeq == nil || !m.Connected || m.Health != "healthy" || (m.ID == cortex.id) != (m.LagMs == nil) {
			t.Fatalf("status member %+v", m)
		}
	}
	// The same lags as a metric on the Cortex, one series per Lobe.
	r = do(t, cortex.url, "GET", "/metrics", "")
	for _, m := range st.Members {
		series := `muninn_replication_lag_seconds{member="` + m.ID + `"}`
		if strings.Contains(string(r.body), series) != (m.ID != cortex.id) {
			t.Fatalf("/metrics on the Cortex: %s present = %v, want it for the Lobes only", series, !(m.ID != cortex.id))
		}
	}
	r = do(t, lobe.url, "GET", "/v1/cluster/status?local=true", "")
	r.json(t, &st)
	if st.View != "local" || st.NodeID != lobe.id {
		t.Fatalf("local status: %s", r.body)
	}

	// Membership through a Lobe: forwarded, signed with the cluster secret
	// (the Cortex sees a non-loopback... here loopback caller either way).
	var mr apitypes.MemberResult
	r = do(t, lobe.url, "POST", "/v1/cluster/members", `{"id":"muninn-09","kind":"observer"}`)
	expect(t, r, 201, "")
	r.json(t, &mr)
	if mr.Action != "added" || len(mr.Members) != 4 {
		t.Fatalf("add member: %s", r.body)
	}
	// The observer never connects: the cluster is degraded but has quorum.
	waitFor(t, "health to notice the missing observer", func() bool {
		return do(t, cortex.url, "GET", "/v1/cluster/health", "").status == 503
	})
	expect(t, do(t, cortex.url, "GET", "/v1/cluster/health?scope=node", ""), 200, "")
	expect(t, do(t, lobe.url, "DELETE", "/v1/cluster/members/muninn-09", ""), 200, "")
	d = expect(t, do(t, lobe.url, "DELETE", "/v1/cluster/members/"+cortex.id, ""), 400, "bad_request")
	if !strings.Contains(d.Message, "failover") {
		t.Fatalf("removing the cortex: %q", d.Message)
	}

	// Manual failover, requested on a Lobe, to the other Lobe.
	target := lobes(ms, cortex)[1]
	var fr apitypes.FailoverResult
	r = do(t, lobe.url, "POST", "/v1/cluster/failover", `{"to":"`+target.id+`"}`)
	expect(t, r, 200, "")
	r.json(t, &fr)
	if fr.From != cortex.id || fr.To != target.id {
		t.Fatalf("failover: %s", r.body)
	}
	next := waitAgree(t, ms, cortex.id)
	if next != target {
		t.Fatalf("new cortex %s, want %s", next.id, target.id)
	}
	// Writes to the old Cortex are now forwarded to the new one.
	r = do(t, cortex.url, "POST", "/api/engrams", `{"content":"after failover"}`)
	expect(t, r, 201, "")
	if r.header.Get(apitypes.HeaderNode) != target.id {
		t.Fatalf("after failover answered by %q", r.header.Get(apitypes.HeaderNode))
	}
}

func TestSentinelRefusesWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	ms := startCluster(t, core.KindAuto, core.KindAuto, core.KindSentinel)
	cortex := waitAgree(t, ms, "")
	sentinel := ms[2]
	d := expect(t, do(t, sentinel.url, "POST", "/api/engrams", `{"content":"x"}`), 403, "read_only_node")
	if d.Cortex != cortex.id || d.CortexAPI != cortex.url || !strings.Contains(d.Message, cortex.id) {
		t.Fatalf("sentinel refusal %+v", d)
	}
	expect(t, do(t, sentinel.url, "GET", "/api/engrams?consistency=eventual", ""), 403, "read_only_node")
	var st apitypes.Status
	do(t, cortex.url, "GET", "/v1/cluster/status", "").json(t, &st)
	for _, m := range st.Members {
		if m.ID == sentinel.id && (m.LastSeq != nil || m.LagMs != nil || m.Role != "sentinel") {
			t.Fatalf("sentinel row %+v", m)
		}
	}
}

// TestSignedForwardAccepted: an admin request a member forwards, signed
// with the cluster secret, passes the Cortex's admin check from a
// non-loopback address; a tampered or stale one does not.
func TestSignedForwardAccepted(t *testing.T) {
	n, err := node.Start(node.Options{ID: "solo", DataDir: t.TempDir(), Cluster: true, Secret: []byte("0123456789abcdef-api-test"), BindAddr: freePort(t)})
	if err != nil {
		t.Fatal(err)
	}
	a := New(n, Options{})
	defer func() { a.Close(); n.Close() }()
	e := &env{t: t, n: n, api: a}
	e.waitCortex()
	serve := func(req *http.Request) resp {
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, req)
		return resp{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
	}
	signed := func(body string, to core.NodeID) *http.Request {
		req := httptest.NewRequest("POST", "/v1/cluster/enable", strings.NewReader(body))
		a.sign(req, []byte(body), to)
		req.RemoteAddr = "10.0.0.9:4000"
		return req
	}
	send := func(body string, mutate func(*http.Request)) resp {
		req := signed(body, "solo")
		if mutate != nil {
			mutate(req)
		}
		return serve(req)
	}
	// Accepted: the handler runs (cluster mode is already on: 409).
	expect(t, send("", nil), 409, "conflict")
	// A captured request replayed within its 30 s is refused: one nonce,
	// one use.
	first := signed("", "solo")
	again := first.Clone(first.Context())
	again.Body = io.NopCloser(strings.NewReader(""))
	expect(t, serve(first), 409, "conflict")
	expect(t, serve(again), 403, "forbidden")
	// Signed for another node: not valid here.
	expect(t, serve(signed("", "muninn-07")), 403, "forbidden")
	expect(t, send("", func(r *http.Request) { r.Header.Set(apitypes.HeaderForwardNonce, strings.Repeat("0", 32)) }), 403, "forbidden")
	expect(t, send("", func(r *http.Request) { r.Body = io.NopCloser(strings.NewReader("{}")) }), 403, "forbidden")
	expect(t, send("", func(r *http.Request) { r.Header.Set(apitypes.HeaderForwardedBy, "other") }), 403, "forbidden")
	expect(t, send("", func(r *http.Request) {
		r.Header.Set(apitypes.HeaderForwardTime, fmt.Sprint(time.Now().Add(-time.Minute).Unix()))
	}), 403, "forbidden")
	expect(t, send("", func(r *http.Request) { r.Header.Del(apitypes.HeaderForwardSig) }), 403, "forbidden")
}
