// Package client is the Go client of MuninnDB's REST API (shell/api).
//
// It follows the Cortex: a write refused with not_cortex or read_only_node
// is sent again to the Cortex the refusal names, and later writes go there
// directly. Across a failover it retries with bounded, jittered backoff
// (10 s in all by default) on every known node: the one it was given and
// the members it learned from /v1/cluster/info. Writes are made safe to
// retry: Write picks the engram id on the client, so a retry of a write
// that had in fact been applied is recognised (409) and reported as done.
//
//	c := client.New("http://10.0.1.10:8475")
//	res, err := c.Write(ctx, apitypes.WriteRequest{Content: "hello"}, client.Durability("quorum"))
//
// # Outcomes
//
// A call that changes state (Write, Update, Forget, Failover, AddMember,
// RemoveMember, ReplayQuarantined, DropQuarantined) ends in one of three
// ways, and the error says which:
//
//   - nil: it took effect.
//   - an error that is not ErrAmbiguous: it did not take effect. Every
//     attempt was refused before anything was written — a dial error (the
//     request never left), or an answer that says nothing was done: 4xx
//     (400 bad_request, 401, 403, 404, 409 conflict, 413, 422
//     quorum_impossible, ...), 503 not_cortex, no_cortex,
//     handoff_in_progress, change_in_progress, starting,
//     quorum_unavailable, too_stale, 507 insufficient_storage, 501
//     not_implemented; for Failover also the Cortex's own 503 unavailable
//     (no other data voter, handoff aborted), which names no Cortex.
//   - an error for which errors.Is(err, ErrAmbiguous) holds, an
//     *AmbiguousError: the client cannot know whether it took effect. Some
//     attempt may have been applied: the request was sent and no answer
//     came (a timeout, a connection reset or closed after the request was
//     written, the context ending while waiting for the answer), or the
//     answer said the outcome is unknown (503 unknown_outcome; 503
//     unavailable, which is also what a node answers when forwarding to the
//     Cortex fails after sending, except Failover's own refusal above; 500
//     internal; 502 forward_failed; any other 5xx; a 2xx whose body does
//     not decode; 507 insufficient_storage whose message says "read it
//     back"). Once one attempt is ambiguous, the call's failure is
//     ambiguous whatever the later attempts answer, because the earlier one
//     may have applied. Two answers settle it instead: Write retried and
//     answered 409 (reported as success, after a strong read for quorum
//     durability), and Forget retried and answered 404 (success).
//
// An ambiguous write may still be applied later (it commits if the quorum
// returns before the Cortex fails, or it is in a deposed Cortex's
// quarantine). Read it back by id before acting on it: Get with
// Consistency("strong") finding the engram proves it is committed (a 404
// only that it is not yet). Calling Write again with the same
// AmbiguousError.ID is safe and settles it when it succeeds (a write
// already applied answers 409, which Write reports as success); if that
// call fails, the first one is still unknown. The error's Err is the last
// attempt's error, so IsCode and errors.As see its code: test ErrAmbiguous
// first. docs/api.md, "Go client", lists the answers of each kind.
//
// WriteBatch reports these three outcomes engram by engram, in its result
// (see WriteBatch).
//
// Reads (Get, List, Activate, Info, Status, Health, Quarantine) change
// nothing and are never ambiguous.
package client

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/core/engram"
	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/retry"
)

// DefaultAddr is the API address used when none is given.
const DefaultAddr = "http://localhost:8475"

// DefaultRetryBudget bounds the total time one call spends retrying.
const DefaultRetryBudget = 10 * time.Second

// Client talks to one MuninnDB cluster. It is safe for concurrent use.
type Client struct {
	base   string
	hc     *http.Client
	token  string
	budget time.Duration

	mu      sync.Mutex
	cortex  string   // the Cortex's API URL, once known
	known   []string // endpoints to try: base first, then learned ones
	learned bool

	// The event watcher (WithEvents, events_watch.go): epoch is the
	// newest epoch it adopted a Cortex of; wake ends when it adopts one,
	// waking the retries waiting in their backoff.
	events  bool
	watch   *watcher
	epoch   uint64
	wake    context.Context
	wakeNow context.CancelFunc
	ownHC   bool // hc is the client's own (Close closes its idle connections)
}

// Option configures a Client.
type Option func(*Client)

// WithToken sends "Authorization: Bearer token" (the node's admin_token).
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithHTTPClient replaces the HTTP client (default: 30 s timeout).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithRetryBudget bounds the time one call spends retrying across a
// failover (default 10 s; 0 disables retries, following the Cortex still
// happens once).
func WithRetryBudget(d time.Duration) Option { return func(c *Client) { c.budget = d } }

// WithEndpoints adds other nodes' API URLs to fall back to when the node
// given to New is unreachable.
func WithEndpoints(urls ...string) Option {
	return func(c *Client) {
		for _, u := range urls {
			c.addKnown(normalize(u))
		}
	}
}

// New returns a client of the node at addr ("http://host:8475"; a bare
// "host:port" gets http://).
func New(addr string, opts ...Option) *Client {
	if addr == "" {
		addr = DefaultAddr
	}
	c := &Client{base: normalize(addr), hc: &http.Client{Timeout: 8 * time.Second, Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}}, budget: DefaultRetryBudget}
	own := c.hc
	c.known = []string{c.base}
	for _, o := range opts {
		o(c)
	}
	c.ownHC = c.hc == own
	if c.events {
		c.startWatcher()
	}
	return c
}

// Addr returns the address the client was created with.
func (c *Client) Addr() string { return c.base }

func normalize(addr string) string {
	addr = strings.TrimRight(strings.TrimSpace(addr), "/")
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return addr
}

// maxKnown bounds the endpoints a client learns (from cluster info, refusals
// and events): a cluster has at most core.MaxMembers members, and a hostile
// or confused node must not grow the list without end.
const maxKnown = 2 * core.MaxMembers

func (c *Client) addKnown(u string) {
	if u != "" && len(c.known) < maxKnown && !slices.Contains(c.known, u) {
		c.known = append(c.known, u)
	}
}

// Error is an error answered by a node: the API's stable code and message.
type Error struct {
	Status  int
	Code    string
	Message string
	// Cortex and CortexAPI name the Cortex when the node said where to go.
	Cortex    string
	CortexAPI string
	// Node is the node that answered (X-Muninn-Node).
	Node string
}

func (e *Error) Error() string {
	if e.Node != "" {
		return fmt.Sprintf("%s: %s (%s, HTTP %d)", e.Node, e.Message, e.Code, e.Status)
	}
	return fmt.Sprintf("%s (%s, HTTP %d)", e.Message, e.Code, e.Status)
}

// IsCode reports whether err is an *Error with the given code. For an
// *AmbiguousError it reports the last attempt's code: check ErrAmbiguous
// first.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// ErrAmbiguous is matched (errors.Is) by every error of a call whose
// outcome is unknown: it may or may not have taken effect. See the package
// documentation, "Outcomes".
var ErrAmbiguous = errors.New("outcome unknown: it may or may not have taken effect")

// AmbiguousError is the error of a call that changes state when the client
// cannot know whether it took effect: an attempt was sent and not answered,
// or answered that its outcome is unknown. errors.Is(err, ErrAmbiguous)
// holds for it, and it unwraps to Err, the last attempt's error (an *Error
// when a node answered, a transport or context error otherwise).
type AmbiguousError struct {
	// Op is what was asked, e.g. "write", "forget", "add member".
	Op string
	// ID is what the call was about, when there is one: the engram's id
	// (read it back by this id), the member's id, or the quarantined
	// entry's EPOCH.SEQ.
	ID string
	// Reason is the error of the first attempt whose outcome is unknown.
	Reason error
	// Err is the last attempt's error (Reason when it was the last).
	Err error
}

func (e *AmbiguousError) Error() string {
	what := e.Op
	if e.ID != "" {
		what += " " + e.ID
	}
	why, last := e.Reason, e.Err
	if why == nil {
		why, last = e.Err, nil
	}
	msg := fmt.Sprintf("outcome unknown: %s may or may not have taken effect: %v", what, why)
	if last != nil && last.Error() != why.Error() {
		msg += fmt.Sprintf("; then: %v", last)
	}
	switch e.Op {
	case "write", "update", "forget":
		return msg + "; read it back by id (a strong read) before acting on it"
	case "batch write":
		return msg + "; read each engram back by its id (a strong read), or write the batch again with the same ids"
	}
	return msg + "; check the cluster's state before retrying"
}

// Unwrap returns ErrAmbiguous and the last attempt's error.
func (e *AmbiguousError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrAmbiguous}
	}
	return []error{ErrAmbiguous, e.Err}
}

// CallOption sets a per-call parameter.
type CallOption func(url.Values)

// Durability asks for local (default) or quorum durability on a write.
func Durability(d string) CallOption { return func(q url.Values) { q.Set("durability", d) } }

// Consistency asks for eventual (default), bounded or strong reads.
func Consistency(c string) CallOption { return func(q url.Values) { q.Set("consistency", c) } }

// MaxLag asks for a bounded read at most ms milliseconds behind the Cortex.
func MaxLag(ms int64) CallOption {
	return func(q url.Values) {
		q.Set("consistency", "bounded")
		q.Set("max_lag_ms", strconv.FormatInt(ms, 10))
	}
}

// kind says how a call may be retried and where it goes.
type kind uint8

const (
	// kindRead: any node; retried on transient errors and on other nodes.
	kindRead kind = iota
	// kindWrite: sent to the Cortex when known; retried (writes are made
	// idempotent by the caller).
	kindWrite
	// kindAdmin: sent to the Cortex when known; follows not_cortex and
	// waits out elections, but is never retried after it may have run.
	kindAdmin
	// kindLocal: this node's own answer (info, status, quarantine): one
	// attempt on the node given to New.
	kindLocal
)

type call struct {
	kind   kind
	method string
	path   string
	query  url.Values
	body   []byte
	// accept lists non-2xx statuses whose body is decoded as the result.
	accept []int
	// op names a call that changes state ("write", "add member"): its
	// failure is ambiguous when an attempt may have taken effect. Empty
	// for calls that change nothing.
	op string
	// id is the engram or member the call is about, for AmbiguousError.
	id string
	// definite lists codes that, for this call, say nothing was done
	// beyond the ones every call has (definite).
	definite []string
	// until, when set, ends the call's retries at that time instead of
	// the client's budget from now (WriteBatch's rounds share one budget).
	until time.Time
}

// retryable reports whether a refusal says nothing was done and a retry
// (after a pause) may succeed.
func retryable(k kind, e *Error) bool {
	switch e.Code {
	case apitypes.CodeNoCortex, apitypes.CodeHandoff, apitypes.CodeChangeInProgress, apitypes.CodeStarting:
		return true
	case apitypes.CodeNotCortex:
		return true
	case apitypes.CodeUnavailable, apitypes.CodeUnknownOutcome:
		return k == kindRead || k == kindWrite
	}
	return false
}

// Codes the API answers that apitypes does not name (core.Code values).
const (
	// codeQuorumUnavailable: fewer than W data voters answer; nothing was
	// written (docs/protocol.md, rule 17).
	codeQuorumUnavailable = "quorum_unavailable"
	// codeInsufficientStorage: the Cortex's disk is below its reserve.
	codeInsufficientStorage = "insufficient_storage"
)

// definiteCodes are the answers that say the attempt changed nothing.
var definiteCodes = []string{
	apitypes.CodeNotCortex, apitypes.CodeNoCortex, apitypes.CodeReadOnlyNode, apitypes.CodeHandoff,
	apitypes.CodeChangeInProgress, apitypes.CodeStarting, apitypes.CodeQuorumImpossible,
	codeQuorumUnavailable, apitypes.CodeTooStale, apitypes.CodeStandalone, apitypes.CodeNotImplemented,
}

// definite reports whether a node's answer says this attempt of cl changed
// nothing. Everything else a node answers to a call that changes state
// (unknown_outcome, unavailable, internal, forward_failed, a 5xx without
// a code) leaves its outcome unknown.
func definite(cl call, e *Error) bool {
	switch {
	case e.Code == codeInsufficientStorage:
		// Refused before it was logged, unless the disk filled while the
		// node was storing it: then the message asks to read it back.
		return !strings.Contains(e.Message, "read it back")
	case e.Code == apitypes.CodeUnavailable && slices.Contains(cl.definite, e.Code):
		// Only the node's own refusal: one naming the Cortex is a
		// forwarding failure, which may have reached the Cortex.
		return e.Cortex == "" && e.CortexAPI == ""
	case slices.Contains(definiteCodes, e.Code):
		return true
	}
	// 4xx: the request itself was refused (bad_request, unauthorized,
	// forbidden, not_found, conflict, too_large, ...).
	return e.Status >= 400 && e.Status < 500
}

// outcome is what do learned beyond the result.
type outcome struct {
	// ambiguous is the error of the first attempt that may have taken
	// effect (calls that change state only); nil when none.
	ambiguous error
}

// fail ends do with err: an *AmbiguousError when an attempt of a call that
// changes state may have taken effect.
func (oc outcome) fail(cl call, err error) (outcome, error) {
	if oc.ambiguous == nil {
		return oc, err
	}
	return oc, &AmbiguousError{Op: cl.op, ID: cl.id, Reason: oc.ambiguous, Err: err}
}

func (c *Client) do(ctx context.Context, cl call, out any) (outcome, error) {
	var oc outcome
	if cl.kind == kindRead || cl.kind == kindWrite {
		c.learn(ctx)
	}
	target := c.pick(cl.kind)
	follows, attempts := 0, 0
	// Each attempt returns nil (done), a retry.Permanent error (stop), or
	// an error worth retrying after a pause (retryable, or a node that
	// did not answer).
	attempt := func() error {
		attempts++
		if attempts > 1 && cl.kind != kindRead {
			if cx := c.currentCortex(); cx != "" {
				target = cx
			}
		}
		for {
			status, node, body, sent, err := c.once(ctx, target, cl)
			if err == nil && (status/100 == 2 || slices.Contains(cl.accept, status)) {
				if out != nil && len(body) > 0 {
					if err := json.Unmarshal(body, out); err != nil {
						err = fmt.Errorf("muninn: decoding the answer of %s %s: %w", cl.method, cl.path, err)
						if cl.op != "" && oc.ambiguous == nil && status/100 == 2 {
							// It was done; what it returned is not known.
							oc.ambiguous = err
						}
						return retry.Permanent(err)
					}
				}
				return nil
			}
			var apiErr *Error
			if err == nil {
				apiErr = decodeError(status, node, body)
				err = apiErr
				if cl.op != "" && oc.ambiguous == nil && !definite(cl, apiErr) {
					oc.ambiguous = err
				}
			} else {
				if ctx.Err() != nil {
					err = ctx.Err()
				}
				if cl.op != "" && oc.ambiguous == nil && sent {
					// Sent, no answer: it may or may not have been applied.
					oc.ambiguous = err
				}
				if ctx.Err() != nil || (cl.kind == kindAdmin && sent) {
					return retry.Permanent(err)
				}
			}
			if cl.kind == kindLocal {
				return retry.Permanent(err)
			}
			// Follow a named Cortex at once. An admin call whose outcome
			// is unknown is not sent again: it may have run.
			if apiErr != nil && (apiErr.Code == apitypes.CodeNotCortex || apiErr.Code == apitypes.CodeReadOnlyNode ||
				apiErr.Code == apitypes.CodeUnknownOutcome && cl.kind != kindAdmin) &&
				apiErr.CortexAPI != "" && normalize(apiErr.CortexAPI) != target && follows < 3 {
				follows++
				target = normalize(apiErr.CortexAPI)
				c.setCortex(target)
				continue
			}
			switch {
			case apiErr == nil:
				// Unreachable: forget it as Cortex, try the next node.
				c.dropCortex(target)
				target = c.next(target)
			case !retryable(cl.kind, apiErr):
				return retry.Permanent(err)
			case apiErr.Code == apitypes.CodeNotCortex:
				c.dropCortex(target)
				target = c.next(target)
			}
			return err
		}
	}
	budget := c.budget
	if !cl.until.IsZero() {
		budget = time.Until(cl.until)
	}
	// A new Cortex announced by the event watcher ends the backoff wait
	// at once (events_watch.go).
	err := c.retryWoken(ctx, budget, func(wctx context.Context, budget time.Duration) error {
		return retry.Do(wctx, retry.Request(budget), attempt)
	})
	if err != nil {
		return oc.fail(cl, err)
	}
	return oc, nil
}

// once makes one attempt against target. sent reports whether any of the
// request may have reached the node: false only when the transport
// reported that it never wrote the request (or the connection was never
// made).
func (c *Client) once(ctx context.Context, target string, cl call) (status int, node string, body []byte, sent bool, err error) {
	u := target + cl.path
	if len(cl.query) > 0 {
		u += "?" + cl.query.Encode()
	}
	var rd io.Reader
	if cl.body != nil {
		rd = bytes.NewReader(cl.body)
	}
	var traced, wrote atomic.Bool
	tctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GetConn:      func(string) { traced.Store(true) },
		WroteHeaders: func() { wrote.Store(true) },
	})
	req, err := http.NewRequestWithContext(tctx, cl.method, u, rd)
	if err != nil {
		return 0, "", nil, false, err
	}
	if cl.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		// A transport that reports no trace events (a custom
		// RoundTripper) gets the benefit of the doubt only for a dial
		// error.
		sent := wrote.Load() || !traced.Load() && !dialError(err)
		return 0, "", nil, sent, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 256<<20))
	if err != nil {
		return 0, "", nil, true, err
	}
	return res.StatusCode, res.Header.Get(apitypes.HeaderNode), b, true, nil
}

// dialError reports whether err happened before the request was sent.
func dialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func decodeError(status int, node string, body []byte) *Error {
	var eb apitypes.ErrorBody
	if json.Unmarshal(body, &eb) == nil && eb.Error.Code != "" {
		return &Error{Status: status, Code: eb.Error.Code, Message: eb.Error.Message, Cortex: eb.Error.Cortex, CortexAPI: eb.Error.CortexAPI, Node: node}
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &Error{Status: status, Code: "http_" + strconv.Itoa(status), Message: msg, Node: node}
}

func (c *Client) pick(k kind) string {
	if k == kindWrite || k == kindAdmin {
		if cx := c.currentCortex(); cx != "" {
			return cx
		}
	}
	return c.base
}

func (c *Client) currentCortex() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cortex
}

func (c *Client) setCortex(u string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cortex = u
	c.addKnown(u)
}

func (c *Client) dropCortex(u string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cortex == u {
		c.cortex = ""
	}
}

// next returns the known endpoint after cur (round robin).
func (c *Client) next(cur string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.Index(c.known, cur)
	return c.known[(i+1)%len(c.known)]
}

// learn asks the node once for the members' API addresses and the Cortex,
// so a failover of the node given to New can be ridden out.
func (c *Client) learn(ctx context.Context) {
	c.mu.Lock()
	if c.learned {
		c.mu.Unlock()
		return
	}
	c.learned = true
	c.mu.Unlock()
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var info apitypes.Info
	status, _, body, _, err := c.once(lctx, c.base, call{method: "GET", path: "/v1/cluster/info"})
	if err != nil || status != http.StatusOK || json.Unmarshal(body, &info) != nil {
		c.mu.Lock()
		c.learned = false // try again next time
		c.mu.Unlock()
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range info.Members {
		if m.API != "" {
			c.addKnown(normalize(m.API))
		}
	}
	if info.CortexAPI != "" && c.cortex == "" {
		c.cortex = normalize(info.CortexAPI)
		c.addKnown(c.cortex)
	}
}

func query(opts []CallOption) url.Values {
	q := url.Values{}
	for _, o := range opts {
		o(q)
	}
	return q
}

func vaultOr(v string) string {
	if v == "" {
		return apitypes.DefaultVault
	}
	return v
}

// NewID returns a new engram id (26-character ULID) for WriteRequest.ID.
func NewID() string {
	var rnd [10]byte
	crand.Read(rnd[:])
	return engram.NewID(uint64(time.Now().UnixMilli()), rnd)
}
