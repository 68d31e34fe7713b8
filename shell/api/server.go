package api

import (
	"context"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Limits bound what a client can hold on the API's HTTP server, so that
// many slow or idle connections cannot exhaust the node (docs/api.md,
// Connection limits). Zero fields take the defaults.
type Limits struct {
	// ReadHeader bounds reading a request's headers.
	ReadHeader time.Duration
	// Body bounds reading a request's body, from the end of its headers.
	// It is a deadline on the connection while the body is read (not
	// http.Server.ReadTimeout, which would also cut handlers that wait
	// longer, such as a write held through an election).
	Body time.Duration
	// Idle closes a keep-alive connection idle this long.
	Idle time.Duration
	// MaxConns bounds the connections open at once: further ones wait in
	// the listen backlog until one closes.
	MaxConns int
	// MaxHeaderBytes bounds a request's headers.
	MaxHeaderBytes int
}

// Default limits.
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultBodyTimeout       = 30 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxConns          = 4096
	DefaultMaxHeaderBytes    = 64 << 10
)

func (l Limits) withDefaults() Limits {
	if l.ReadHeader <= 0 {
		l.ReadHeader = DefaultReadHeaderTimeout
	}
	if l.Body <= 0 {
		l.Body = DefaultBodyTimeout
	}
	if l.Idle <= 0 {
		l.Idle = DefaultIdleTimeout
	}
	if l.MaxConns <= 0 {
		l.MaxConns = DefaultMaxConns
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return l
}

// NewHTTPServer returns the http.Server for h with the limits applied:
// header, body and idle timeouts and a header size bound. Serve it on
// LimitListener(ln, limits.MaxConns) for the connection bound.
func NewHTTPServer(h http.Handler, limits Limits, logger *slog.Logger) *http.Server {
	l := limits.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// Shutdown waits for handlers to return; an event stream returns when
	// this channel, in every request's context, is closed.
	shut := make(chan struct{})
	base := context.WithValue(context.Background(), shutdownKey{}, (<-chan struct{})(shut))
	srv := &http.Server{
		Handler:           bodyDeadline(h, l.Body),
		ReadHeaderTimeout: l.ReadHeader,
		IdleTimeout:       l.Idle,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		ErrorLog:          log.New(slogWriter{logger}, "", 0),
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	var once sync.Once
	srv.RegisterOnShutdown(func() { once.Do(func() { close(shut) }) })
	return srv
}

// bodyDeadline sets a read deadline of d on the connection for a request
// with a body; readBody clears it once the body is read. A request without
// a body gets none (the server's background read must not time out while a
// handler waits).
func bodyDeadline(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 {
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
		}
		h.ServeHTTP(w, r)
	})
}

// clearBodyDeadline lifts bodyDeadline once the body is read.
func clearBodyDeadline(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
}

type slogWriter struct{ l *slog.Logger }

func (s slogWriter) Write(p []byte) (int, error) {
	s.l.Debug("api: http server: " + string(p))
	return len(p), nil
}

// LimitListener returns a listener that keeps at most n accepted
// connections open at once: Accept waits until one closes.
func LimitListener(ln net.Listener, n int) net.Listener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, n), done: make(chan struct{})}
}

type limitListener struct {
	net.Listener
	sem  chan struct{}
	done chan struct{}
	once sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
