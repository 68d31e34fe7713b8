// Package api is MuninnDB's REST API (port 8475): the engram data
// endpoints under /api, the cluster endpoints under /v1/cluster, and
// /metrics. See docs/api.md.
//
// Handlers talk to the node runner only: writes go through Node.Write,
// reads through Node.Read, which serves from the store when allowed. A Lobe forwards what only
// the Cortex may answer (docs/protocol.md, rule 13), once.
package api

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/node"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configure the API.
type Options struct {
	// AdminToken, when set, is required as "Authorization: Bearer <token>"
	// on the admin endpoints (failover, membership, quarantine replay and
	// drop, enable/disable). When empty, admin endpoints accept only
	// loopback callers.
	AdminToken string
	Logger     *slog.Logger
	// ForwardTimeout bounds one request forwarded to the Cortex (default
	// 30 s: a held write may wait out an election first).
	ForwardTimeout time.Duration
	// FailoverWait bounds how long POST /v1/cluster/failover waits to name
	// the new Cortex after the handoff (default 3 s).
	FailoverWait time.Duration
}

// Server is the API's http.Handler. Close stops its lag sampler.
type Server struct {
	n    *node.Node
	opts Options
	log  *slog.Logger
	mux  *http.ServeMux
	fwd  *http.Client
	lag  *lagTracker
	// nonces of the signed forwarded requests accepted (replay guard).
	nonces nonceSet
	// writeObs are muninn_write_seconds by durability, looked up once.
	writeObs map[core.Durability]prometheus.Observer
	// nodeHeader is X-Muninn-Node's value.
	nodeHeader []string
	// streams ends open event streams on Close (events.go).
	streams *streams
}

// New returns the API for node n.
func New(n *node.Node, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ForwardTimeout == 0 {
		// Long enough for a quorum write the Cortex may hold until it
		// demotes (5 s), short enough that a paused Cortex does not hang
		// the caller for long.
		opts.ForwardTimeout = 8 * time.Second
	}
	if opts.FailoverWait == 0 {
		opts.FailoverWait = 3 * time.Second
	}
	s := &Server{
		n: n, opts: opts, log: opts.Logger, mux: http.NewServeMux(),
		fwd: &http.Client{Timeout: opts.ForwardTimeout, Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
		}},
		lag:        newLagTracker(n),
		writeObs:   map[core.Durability]prometheus.Observer{},
		nodeHeader: []string{string(n.ID())},
		streams:    newStreams(),
	}
	for _, d := range []core.Durability{core.Local, core.Quorum} {
		s.writeObs[d] = n.Metrics().WriteSeconds.WithLabelValues(d.String())
	}
	s.routes()
	s.registerLagMetric()
	return s
}

// writeObserver is muninn_write_seconds for durability d.
func (s *Server) writeObserver(d core.Durability) prometheus.Observer {
	if o, ok := s.writeObs[d]; ok {
		return o
	}
	return s.n.Metrics().WriteSeconds.WithLabelValues(d.String())
}

// Close stops the background lag sampler and ends the open event
// streams. The node is not closed.
func (s *Server) Close() {
	s.streams.close()
	s.lag.close()
}

// handler is an endpoint that returns its error instead of writing it.
type handler func(w http.ResponseWriter, r *http.Request) error

type methods map[string]handler

func (s *Server) route(pattern string, ms methods) {
	allow := make([]string, 0, len(ms))
	for m := range ms {
		allow = append(allow, m)
	}
	slices.Sort(allow)
	allowed := strings.Join(allow, ", ")
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		h, ok := ms[r.Method]
		if !ok && r.Method == http.MethodHead {
			h, ok = ms[http.MethodGet]
		}
		if !ok {
			w.Header().Set("Allow", allowed)
			writeError(w, &apiError{status: http.StatusMethodNotAllowed, code: apitypes.CodeMethodNotAllowed,
				msg: fmt.Sprintf("%s %s is not supported; allowed: %s", r.Method, r.URL.Path, allowed)})
			return
		}
		if err := h(w, r); err != nil {
			s.writeErr(w, r, err)
		}
	})
}

func (s *Server) routes() {
	s.route("/api/engrams", methods{"POST": s.handleWrite, "GET": s.handleList})
	s.route("/api/engrams/batch", methods{"POST": s.handleWriteBatch})
	s.route("/api/engrams/{id}", methods{"GET": s.handleGet, "PATCH": s.handleUpdate, "DELETE": s.handleForget})
	s.route("/api/activate", methods{"POST": s.handleActivate})

	s.route("/v1/cluster/health", methods{"GET": s.handleHealth})
	s.route("/v1/cluster/info", methods{"GET": s.handleInfo})
	s.route("/v1/cluster/status", methods{"GET": s.handleStatus})
	s.route("/v1/cluster/events", methods{"GET": s.handleEvents})
	s.route("/v1/cluster/failover", methods{"POST": s.handleFailover})
	s.route("/v1/cluster/members", methods{"POST": s.handleAddMember})
	s.route("/v1/cluster/members/{id}", methods{"DELETE": s.handleRemoveMember})
	s.route("/v1/cluster/quarantine", methods{"GET": s.handleQuarantine})
	s.route("/v1/cluster/quarantine/export", methods{"GET": s.handleQuarantineExport})
	s.route("/v1/cluster/quarantine/replay", methods{"POST": s.handleQuarantineReplay})
	s.route("/v1/cluster/quarantine/drop", methods{"POST": s.handleQuarantineDrop})
	// Deprecated aliases, answering under their old names (quarantine.go).
	s.route("/v1/cluster/fenced", methods{"GET": fencedAlias("/v1/cluster/quarantine", s.handleQuarantine)})
	s.route("/v1/cluster/fenced/export", methods{"GET": fencedAlias("/v1/cluster/quarantine/export", s.handleQuarantineExport)})
	s.route("/v1/cluster/fenced/replay", methods{"POST": fencedAlias("/v1/cluster/quarantine/replay", s.handleQuarantineReplay)})
	s.route("/v1/cluster/fenced/drop", methods{"POST": fencedAlias("/v1/cluster/quarantine/drop", s.handleQuarantineDrop)})
	s.route("/v1/cluster/propose", methods{"POST": s.handlePropose})
	s.route("/v1/cluster/enable", methods{"POST": s.handleEnable})
	s.route("/v1/cluster/disable", methods{"POST": s.handleDisable})
	s.route("/v1/admin/backup", methods{"GET": s.handleBackup})
	s.route("/v1/admin/reload", methods{"POST": s.handleReload})
	s.uiRoutes() // GET /ui, the read-only status page (ui.go)

	metrics := promhttp.HandlerFor(s.n.Metrics().Registry, promhttp.HandlerOpts{ErrorLog: slogPrinter{s.log}})
	s.route("/metrics", methods{"GET": func(w http.ResponseWriter, r *http.Request) error {
		metrics.ServeHTTP(w, r)
		return nil
	}})
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{status: http.StatusNotFound, code: apitypes.CodeNotFound,
			msg: fmt.Sprintf("no such endpoint: %s %s (see docs/api.md)", r.Method, r.URL.Path)})
	})
}

// ServeHTTP serves the API. Every response names the node in X-Muninn-Node
// (a forwarded response keeps the Cortex's).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header()[apitypes.HeaderNode] = s.nodeHeader // canonical already; never changed in place
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("api: handler panicked", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			writeError(w, &apiError{status: http.StatusInternalServerError, code: apitypes.CodeInternal, msg: "internal error; see the node's log"})
		}
	}()
	s.mux.ServeHTTP(w, r)
}

type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.l.Warn(fmt.Sprint(v...)) }
