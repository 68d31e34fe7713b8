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
package client

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/muninndb/muninn/core/engram"
	"github.com/muninndb/muninn/shell/apitypes"
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
	c.known = []string{c.base}
	for _, o := range opts {
		o(c)
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

func (c *Client) addKnown(u string) {
	if u != "" && !slices.Contains(c.known, u) {
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

// IsCode reports whether err is an *Error with the given code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
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

// outcome is what do learned beyond the result.
type outcome struct {
	// ambiguous is set when an attempt failed in a way that may have left
	// the write applied.
	ambiguous bool
}

func (c *Client) do(ctx context.Context, cl call, out any) (outcome, error) {
	var oc outcome
	if cl.kind == kindRead || cl.kind == kindWrite {
		c.learn(ctx)
	}
	start := time.Now()
	backoff := 50 * time.Millisecond
	target := c.pick(cl.kind)
	follows := 0
	for {
		status, node, body, err := c.once(ctx, target, cl)
		if err == nil && (status/100 == 2 || slices.Contains(cl.accept, status)) {
			if out != nil && len(body) > 0 {
				if err := json.Unmarshal(body, out); err != nil {
					return oc, fmt.Errorf("muninn: decoding the answer of %s %s: %w", cl.method, cl.path, err)
				}
			}
			return oc, nil
		}
		var apiErr *Error
		if err == nil {
			apiErr = decodeError(status, node, body)
			err = apiErr
		} else {
			if ctx.Err() != nil {
				return oc, ctx.Err()
			}
			if !dialError(err) {
				// Sent, no answer: it may or may not have been applied.
				oc.ambiguous = true
				if cl.kind == kindAdmin {
					return oc, err
				}
			}
		}
		if cl.kind == kindLocal {
			return oc, err
		}
		if apiErr != nil && (apiErr.Code == apitypes.CodeUnknownOutcome || apiErr.Code == apitypes.CodeUnavailable) {
			oc.ambiguous = true
		}
		// Follow a named Cortex at once.
		if apiErr != nil && (apiErr.Code == apitypes.CodeNotCortex || apiErr.Code == apitypes.CodeReadOnlyNode || apiErr.Code == apitypes.CodeUnknownOutcome) &&
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
			return oc, err
		case apiErr.Code == apitypes.CodeNotCortex:
			c.dropCortex(target)
			target = c.next(target)
		}
		if c.budget <= 0 || time.Since(start)+backoff > c.budget {
			return oc, err
		}
		sleep := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return oc, err
		case <-time.After(sleep):
		}
		backoff = min(2*backoff, time.Second)
		if cl.kind != kindRead {
			if cx := c.currentCortex(); cx != "" {
				target = cx
			}
		}
	}
}

// once makes one attempt against target.
func (c *Client) once(ctx context.Context, target string, cl call) (int, string, []byte, error) {
	u := target + cl.path
	if len(cl.query) > 0 {
		u += "?" + cl.query.Encode()
	}
	var body io.Reader
	if cl.body != nil {
		body = bytes.NewReader(cl.body)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, u, body)
	if err != nil {
		return 0, "", nil, err
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
		return 0, "", nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 256<<20))
	if err != nil {
		return 0, "", nil, err
	}
	return res.StatusCode, res.Header.Get(apitypes.HeaderNode), b, nil
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
	status, _, body, err := c.once(lctx, c.base, call{method: "GET", path: "/v1/cluster/info"})
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
