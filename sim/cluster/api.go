package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/client"
)

// API is the harness's HTTP access to the nodes: only their ports
// published on 127.0.0.1, and the API addresses of the nodes of a netns
// run on the run's own bridge (allow). A node's advertised API address in
// a container (its container address, port 8475: where Cortex-following
// clients are sent) is dialled as the port it is published on; any other
// address is refused. So the harness never talks to a container network
// directly, nor to anything beyond its own runs.
type API struct {
	hc *http.Client
	// follow bounds each attempt of the Cortex-following client to 1 s,
	// so it moves on from a frozen node (the client's default is 30 s).
	follow *http.Client
	token  string

	mu sync.RWMutex
	// allowed are the host:port addresses of netns nodes it may dial.
	allowed map[string]bool
}

// allow lets the API dial addrs (host:port): the nodes of a netns run.
func (a *API) allow(addrs ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, x := range addrs {
		a.allowed[x] = true
	}
}

// disallow withdraws allow.
func (a *API) disallow(addrs ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, x := range addrs {
		delete(a.allowed, x)
	}
}

func (a *API) isAllowed(addr string) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.allowed[addr]
}

// published maps every topology's container API address to its published
// port on 127.0.0.1.
func published() map[string]string {
	m := map[string]string{}
	for _, t := range Topologies {
		for _, n := range t.Nodes {
			m[net.JoinHostPort(n.IP, "8475")] = net.JoinHostPort("127.0.0.1", strconv.Itoa(n.Port))
		}
	}
	return m
}

// NewAPI returns an API sending the admin token (the nodes' admin_token)
// on every request.
func NewAPI(token string) *API {
	d := &net.Dialer{Timeout: 2 * time.Second}
	pub := published()
	a := &API{token: token, allowed: map[string]bool{}}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if a.isAllowed(addr) {
				return d.DialContext(ctx, network, addr)
			}
			if p, ok := pub[addr]; ok {
				addr = p
			}
			host, _, err := net.SplitHostPort(addr)
			if err != nil || host != "127.0.0.1" {
				return nil, &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("refusing to dial %s: the fault driver talks only to 127.0.0.1 and to the nodes of its own netns runs", addr)}
			}
			return d.DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	a.hc, a.follow = &http.Client{Transport: tr}, &http.Client{Transport: tr, Timeout: time.Second}
	return a
}

// Close drops idle connections.
func (a *API) Close() { a.hc.CloseIdleConnections() }

// Client returns a shell/client for node n that never retries (the
// harness decides where requests go).
func (a *API) Client(n Node) *client.Client {
	return client.New(n.API(), client.WithHTTPClient(a.hc), client.WithRetryBudget(0), client.WithToken(a.token))
}

// Follower returns a shell/client that knows every node of t and follows
// the Cortex, retrying for up to budget per call, each attempt bounded to
// 1 s.
func (a *API) Follower(t Topology, budget time.Duration) *client.Client {
	var eps []string
	for _, n := range t.DataNodes()[1:] {
		eps = append(eps, n.API())
	}
	return client.New(t.DataNodes()[0].API(), client.WithHTTPClient(a.follow), client.WithRetryBudget(budget), client.WithToken(a.token), client.WithEndpoints(eps...))
}

// Reply is one HTTP exchange with a node.
type Reply struct {
	Status int
	Body   []byte
	// Node is X-Muninn-Node: the node that produced the answer.
	Node string
	// Sent is false when the request never reached the node (the
	// connection was refused): nothing can have happened.
	Sent bool
}

// Code returns the API error code of a non-2xx reply ("" if none).
func (r Reply) Code() string {
	var eb apitypes.ErrorBody
	if json.Unmarshal(r.Body, &eb) == nil {
		return eb.Error.Code
	}
	return ""
}

// Message returns the API error message of a non-2xx reply ("" if none).
func (r Reply) Message() string {
	var eb apitypes.ErrorBody
	if json.Unmarshal(r.Body, &eb) == nil {
		return eb.Error.Message
	}
	return ""
}

// Do sends one request to node n with a timeout and no retry.
func (a *API) Do(ctx context.Context, n Node, method, path string, q url.Values, body any, timeout time.Duration) (Reply, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	u := n.API() + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return Reply{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return Reply{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	res, err := a.hc.Do(req)
	if err != nil {
		return Reply{Sent: !refused(err)}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	r := Reply{Status: res.StatusCode, Body: b, Node: res.Header.Get(apitypes.HeaderNode), Sent: true}
	if err != nil {
		return Reply{Sent: true}, err
	}
	return r, nil
}

// refused reports whether err happened before the request was sent.
func refused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// Health asks node n for /v1/cluster/health and returns the body and the
// HTTP status (200 ok, 503 degraded).
func (a *API) Health(ctx context.Context, n Node) (apitypes.Health, int, error) {
	r, err := a.Do(ctx, n, "GET", "/v1/cluster/health", nil, nil, 3*time.Second)
	if err != nil {
		return apitypes.Health{}, 0, err
	}
	var h apitypes.Health
	if err := json.Unmarshal(r.Body, &h); err != nil {
		return h, r.Status, fmt.Errorf("health of %s: %d %q", n.ID, r.Status, truncate(string(r.Body), 200))
	}
	return h, r.Status, nil
}

// Info asks node n for its view of the cluster.
func (a *API) Info(ctx context.Context, n Node) (apitypes.Info, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return a.Client(n).Info(ctx)
}

// Quarantine lists node n's quarantine.
func (a *API) Quarantine(ctx context.Context, n Node) (apitypes.QuarantineList, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return a.Client(n).Quarantine(ctx)
}

// ListAll reads every engram of vault from node n (all pages) with the
// given consistency.
func (a *API) ListAll(ctx context.Context, n Node, vault, consistency string) ([]apitypes.Engram, error) {
	var all []apitypes.Engram
	cursor := ""
	for page := 0; page < 10000; page++ {
		q := url.Values{"vault": {vault}, "limit": {"1000"}, "consistency": {consistency}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		r, err := a.Do(ctx, n, "GET", "/api/engrams", q, nil, 10*time.Second)
		if err != nil {
			return nil, err
		}
		if r.Status != 200 {
			return nil, fmt.Errorf("list %s on %s: HTTP %d %s", vault, n.ID, r.Status, truncate(string(r.Body), 300))
		}
		var lr apitypes.ListResult
		if err := json.Unmarshal(r.Body, &lr); err != nil {
			return nil, fmt.Errorf("list %s on %s: %v", vault, n.ID, err)
		}
		all = append(all, lr.Engrams...)
		if lr.NextCursor == "" {
			return all, nil
		}
		cursor = lr.NextCursor
	}
	return nil, errors.New("list: too many pages")
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
