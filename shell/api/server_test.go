package api

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serveLimited serves h with small limits on 127.0.0.1 and returns the
// address.
func serveLimited(t *testing.T, h http.Handler, l Limits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewHTTPServer(h, l, nil)
	go srv.Serve(LimitListener(ln, l.withDefaults().MaxConns))
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedWithin reads c until the server closes it, failing if that takes
// longer than d; it returns what was read.
func closedWithin(t *testing.T, c net.Conn, d time.Duration) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	b, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open after %v (read %q)", d, b)
	}
	return string(b)
}

// A client trickling a body is answered and cut off at the body timeout,
// not held: 10,000 of them would otherwise hold 10,000 connections.
func TestSlowBodyCut(t *testing.T) {
	e := standalone(t, Options{})
	addr := serveLimited(t, e.api, Limits{Body: 300 * time.Millisecond})
	c := dialRaw(t, addr)
	start := time.Now()
	if _, err := io.WriteString(c, "POST /api/engrams HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"con"); err != nil {
		t.Fatal(err)
	}
	out := closedWithin(t, c, 5*time.Second)
	if !strings.HasPrefix(out, "HTTP/1.1 400") || !strings.Contains(out, "did not arrive in time") {
		t.Fatalf("answer %q", out)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("cut after %v", el)
	}
}

// Slow headers and idle keep-alive connections are closed too.
func TestSlowHeadersAndIdleCut(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	addr := serveLimited(t, ok, Limits{ReadHeader: 300 * time.Millisecond, Idle: 300 * time.Millisecond})
	c := dialRaw(t, addr)
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	closedWithin(t, c, 5*time.Second)

	c = dialRaw(t, addr)
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || res.StatusCode != 204 {
		t.Fatalf("%v %v", res, err)
	}
	closedWithin(t, c, 5*time.Second)
}

// The body timeout ends once the body is read: a handler that then waits
// longer (a write held through an election) is not cut off, unlike with
// http.Server.ReadTimeout.
func TestBodyTimeoutSparesSlowHandlers(t *testing.T) {
	const body = 200 * time.Millisecond
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := readBody(w, r); err != nil {
			t.Errorf("reading the body: %v", err)
		}
		select {
		case <-time.After(3 * body):
			w.WriteHeader(200)
		case <-r.Context().Done():
			t.Errorf("the request was cancelled while the handler waited: %v", r.Context().Err())
		}
	})
	addr := serveLimited(t, h, Limits{Body: body})
	res, err := http.Post("http://"+addr+"/", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
}

// LimitListener keeps at most n connections open; the next waits until one
// closes.
func TestLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := LimitListener(inner, 2)
	defer ln.Close()
	accepted := make(chan net.Conn, 3)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	for i := 0; i < 3; i++ {
		dialRaw(t, inner.Addr().String())
	}
	var open []net.Conn
	for i := 0; i < 2; i++ {
		select {
		case c := <-accepted:
			open = append(open, c)
		case <-time.After(5 * time.Second):
			t.Fatalf("connection %d not accepted", i+1)
		}
	}
	select {
	case <-accepted:
		t.Fatal("a third connection was accepted while two were open")
	case <-time.After(200 * time.Millisecond):
	}
	open[0].Close()
	open[0].Close() // a second Close releases nothing more
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("the third connection was not accepted after one closed")
	}
	open[1].Close()
}
