package api

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/apitypes"
)

// maxForwardSkew bounds the age of a signed forwarded request.
const maxForwardSkew = 30 * time.Second

// maxForwardNonces bounds the nonces remembered (admin requests are rare;
// only a signed request, which needs the secret, is remembered). When full
// of unexpired nonces, signed requests are refused until some expire.
const maxForwardNonces = 100_000

// fail answers a failed Write/Read/admin call: a not_cortex refusal
// naming a Cortex forwards the original request there (rule 13); anything
// else is written as an error.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, body []byte, err error) error {
	var ce *core.Error
	if errors.As(err, &ce) && ce.Code == core.CodeNotCortex && ce.Cortex != "" && ce.Cortex != s.n.ID() {
		return s.forward(w, r, body, ce.Cortex)
	}
	return err
}

// forward sends the request once to the Cortex's API and copies its answer
// back verbatim. A request that was already forwarded is not forwarded
// again: it is answered 503 not_cortex naming the Cortex.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, body []byte, cortex core.NodeID) error {
	api := s.apiOf(cortex)
	if by := r.Header.Get(apitypes.HeaderForwardedBy); by != "" {
		return &apiError{status: http.StatusServiceUnavailable, code: apitypes.CodeNotCortex, cortex: string(cortex), cortexAPI: api,
			msg: fmt.Sprintf("this node (%s) is not the Cortex; the Cortex is %s. The request was already forwarded by %s and is not forwarded twice; retry against the Cortex", s.n.ID(), cortex, by)}
	}
	if api == "" {
		return &apiError{status: http.StatusServiceUnavailable, code: apitypes.CodeNotCortex, cortex: string(cortex),
			msg: fmt.Sprintf("this node (%s) is not the Cortex; the Cortex is %s but its API address is not known here yet; retry shortly or send the request to %s", s.n.ID(), cortex, cortex)}
	}
	url := strings.TrimSuffix(api, "/") + r.URL.RequestURI()
	// Stop waiting as soon as this node sees another Cortex: a frozen or
	// cut-off old Cortex would otherwise hold the caller for the whole
	// timeout while a new one already serves.
	fctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	moved := make(chan core.NodeID, 1)
	if r.URL.Path != "/v1/cluster/failover" {
		// (A failover moves the Cortex on purpose: its answer is awaited.)
		defer s.onCortexMove(cortex, func(now core.NodeID) {
			moved <- now
			cancel()
		})()
	}
	req, err := http.NewRequestWithContext(fctx, r.Method, url, bytes.NewReader(body))
	if err != nil {
		return &apiError{status: http.StatusInternalServerError, code: apitypes.CodeInternal, msg: fmt.Sprintf("building the forwarded request to %s: %v", url, err)}
	}
	for _, h := range []string{"Content-Type", "Accept", "Authorization"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	s.sign(req, body, cortex)
	start := time.Now()
	resp, err := s.fwd.Do(req)
	if err != nil {
		select {
		case now := <-moved:
			// The request may or may not have reached the old Cortex: the
			// caller retries where the new Cortex is (writes carry their id,
			// so a retry is recognised).
			return &apiError{status: http.StatusServiceUnavailable, code: apitypes.CodeUnknownOutcome, cortex: string(now), cortexAPI: s.apiOf(now),
				msg: fmt.Sprintf("the Cortex changed from %s to %s while this request was forwarded; its outcome is unknown: retry against %s", cortex, now, now)}
		default:
		}
		return &apiError{status: http.StatusServiceUnavailable, code: apitypes.CodeUnavailable, cortex: string(cortex), cortexAPI: api,
			msg: fmt.Sprintf("this node (%s) is not the Cortex; forwarding to the Cortex %s at %s failed: %v; retry", s.n.ID(), cortex, api, err)}
	}
	defer resp.Body.Close()
	for _, h := range []string{"Content-Type", "Retry-After", "X-Content-Type-Options", apitypes.HeaderNode} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
	s.log.Debug("api: forwarded to the cortex", "method", r.Method, "path", r.URL.Path, "cortex", cortex, "status", resp.StatusCode, "took", time.Since(start))
	return nil
}

// moveGrace is how long a forwarded request may still be answered by the
// old Cortex once this node sees another: an answer already on its way
// (the old Cortex learns of the new one as this node does) is not cut off.
const moveGrace = 50 * time.Millisecond

// onCortexMove calls moved, once, when this node has seen a Cortex other
// than cortex for moveGrace (the lag tracker's sampler watches, every
// sampleEvery), until the returned stop is called. No goroutine or timer
// waits per request: a callback is armed on the sampler's change context,
// and re-armed when the change was to cortex itself or to none; a timer
// runs only once the Cortex has moved.
func (s *Server) onCortexMove(cortex core.NodeID, moved func(now core.NodeID)) (stop func()) {
	var mu sync.Mutex
	var unwatch func() bool // the armed callback
	var timer *time.Timer   // once the Cortex has moved
	done := false
	// check starts the grace timer if the Cortex has moved, and reports
	// whether it has.
	check := func() bool {
		snap := s.n.Status()
		if snap == nil || snap.Core.Cortex == "" || snap.Core.Cortex == cortex {
			return false
		}
		now := snap.Core.Cortex
		mu.Lock()
		defer mu.Unlock()
		if !done && timer == nil {
			timer = time.AfterFunc(moveGrace, func() { moved(now) })
		}
		return true
	}
	var arm func()
	arm = func() {
		changes := s.lag.cortexChanges()
		mu.Lock()
		defer mu.Unlock()
		if done || timer != nil {
			return
		}
		unwatch = context.AfterFunc(changes, func() {
			if !check() {
				arm()
			}
		})
	}
	arm()
	check() // it may have moved before the callback was armed
	return func() {
		mu.Lock()
		defer mu.Unlock()
		done = true
		if unwatch != nil {
			unwatch()
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// forwardMAC is the signature of a forwarded request: HMAC-SHA256 with the
// cluster secret over the forwarder, the target node, method, URI, time,
// nonce and body hash. Each field is length-prefixed.
func forwardMAC(secret []byte, by, to, method, uri, ts, nonce string, body []byte) string {
	bh := sha256.Sum256(body)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("muninn-forward-v2"))
	for _, f := range []string{by, to, method, uri, ts, nonce} {
		fmt.Fprintf(m, "\n%d:%s", len(f), f)
	}
	m.Write(bh[:])
	return hex.EncodeToString(m.Sum(nil))
}

// sign marks req as forwarded by this node and, in cluster mode, signs it
// for node to, so that it can trust the admin check this node made, once.
func (s *Server) sign(req *http.Request, body []byte, to core.NodeID) {
	by := string(s.n.ID())
	req.Header.Set(apitypes.HeaderForwardedBy, by)
	secret, _ := s.n.Secrets() // the current one: reloads rotate it
	if len(secret) == 0 {
		return
	}
	var nb [16]byte
	_, _ = rand.Read(nb[:])
	nonce := hex.EncodeToString(nb[:])
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set(apitypes.HeaderForwardTime, ts)
	req.Header.Set(apitypes.HeaderForwardNonce, nonce)
	req.Header.Set(apitypes.HeaderForwardSig, forwardMAC(secret, by, string(to), req.Method, req.URL.RequestURI(), ts, nonce, body))
}

// signedForward reports whether r is a request forwarded by a member,
// signed with this cluster's secret for this node, within maxForwardSkew,
// and seen for the first time: its nonce is remembered until the request
// would be too old, so a captured request cannot be replayed.
func (s *Server) signedForward(r *http.Request, body []byte) bool {
	secret, previous := s.n.Secrets() // either, during a rotation
	h := r.Header
	by, ts, nonce, sig := h.Get(apitypes.HeaderForwardedBy), h.Get(apitypes.HeaderForwardTime), h.Get(apitypes.HeaderForwardNonce), h.Get(apitypes.HeaderForwardSig)
	if len(secret) == 0 || by == "" || ts == "" || sig == "" || len(nonce) != 32 {
		return false
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return false
	}
	at := time.Unix(sec, 0)
	if d := time.Since(at); d > maxForwardSkew || d < -maxForwardSkew {
		return false
	}
	ok := false
	for _, sec := range [][]byte{secret, previous} {
		if len(sec) > 0 && hmac.Equal([]byte(forwardMAC(sec, by, string(s.n.ID()), r.Method, r.URL.RequestURI(), ts, nonce, body)), []byte(sig)) {
			ok = true
		}
	}
	if !ok {
		return false
	}
	if !s.nonces.first(nonce, at.Add(maxForwardSkew), time.Now()) {
		s.log.Warn("api: refused a replayed (or, with the nonce store full, an excess) signed forwarded request", "method", r.Method, "path", r.URL.Path, "forwarded_by", by, "remote", r.RemoteAddr)
		return false
	}
	return true
}

// nonceSet remembers the nonces of accepted forwarded requests until they
// expire.
type nonceSet struct {
	mu sync.Mutex
	m  map[string]time.Time // nonce -> when its request becomes too old
}

// first records nonce until expiry and reports whether it was new. When
// the set is full of live nonces it refuses (fails closed).
func (ns *nonceSet) first(nonce string, expiry, now time.Time) bool {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.m == nil {
		ns.m = map[string]time.Time{}
	}
	if exp, ok := ns.m[nonce]; ok && now.Before(exp) {
		return false
	}
	if len(ns.m) >= maxForwardNonces {
		for k, exp := range ns.m {
			if !now.Before(exp) {
				delete(ns.m, k)
			}
		}
		if len(ns.m) >= maxForwardNonces {
			return false
		}
	}
	ns.m[nonce] = expiry
	return true
}

// checkAdmin guards the admin endpoints: a valid bearer admin token when
// one is configured, otherwise loopback callers only. A request forwarded
// and signed by a member passed that check on the member.
func (s *Server) checkAdmin(r *http.Request, body []byte) error {
	if crossSite(r) {
		// A web page the operator has open must not drive the admin API
		// through the browser: loopback callers need no token, and a
		// cross-site "simple" POST needs no preflight.
		return &apiError{status: http.StatusForbidden, code: apitypes.CodeForbidden,
			msg: "admin endpoints refuse requests a browser sends on behalf of another site (Origin or Sec-Fetch-Site says cross-site): call them with muninn cluster ..., curl or the Go client"}
	}
	if s.signedForward(r, body) {
		return nil
	}
	if tok := s.adminToken(); tok != "" { // reload.go: a reload may change it
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(tok)) != 1 {
			return &apiError{status: http.StatusUnauthorized, code: apitypes.CodeUnauthorized,
				msg: "this admin endpoint needs the header Authorization: Bearer <admin_token> (muninn cluster --token, or MUNINN_ADMIN_TOKEN)"}
		}
		return nil
	}
	if isLoopback(r.RemoteAddr) {
		return nil
	}
	return &apiError{status: http.StatusForbidden, code: apitypes.CodeForbidden,
		msg: "admin endpoints accept only loopback callers when no admin_token is configured: set admin_token in the node's config (or MUNINN_ADMIN_TOKEN in its environment), restart it, and call with Authorization: Bearer <token> (muninn cluster ... --token)"}
}

// crossSite reports whether a browser sent r for a page of another
// origin: Sec-Fetch-Site other than same-origin or none (typed by the
// user), or an Origin whose host is not the one the request was sent to.
// CLIs and the Go client send neither header.
func crossSite(r *http.Request) bool {
	if v := r.Header.Get("Sec-Fetch-Site"); v != "" && v != "same-origin" && v != "none" {
		return true
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
			return true
		}
	}
	return false
}

func isLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
