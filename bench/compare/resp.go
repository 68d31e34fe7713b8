//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// respConn is a minimal RESP2 client over one TCP connection (no
// dependencies): enough for SET, WAIT, INFO, CONFIG and SENTINEL.
type respConn struct {
	c net.Conn
	r *bufio.Reader
	w *bufio.Writer
}

func dialRESP(addr string, timeout time.Duration) (*respConn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	return &respConn{c: c, r: bufio.NewReaderSize(c, 16<<10), w: bufio.NewWriterSize(c, 16<<10)}, nil
}

func (rc *respConn) Close() error { return rc.c.Close() }

// respError is an error reply ("-ERR ..."); its code is "redis_" + the
// first word in lower case.
type respError string

func (e respError) Error() string { return "redis: " + string(e) }
func (e respError) ErrorCode() string {
	s := string(e)
	for i := range len(s) {
		if s[i] == ' ' {
			s = s[:i]
			break
		}
	}
	return "redis_" + lower(s)
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

// send buffers one command.
func (rc *respConn) send(args ...string) {
	fmt.Fprintf(rc.w, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(rc.w, "$%d\r\n%s\r\n", len(a), a)
	}
}

// do sends the buffered commands plus cmds and reads one reply per command,
// all within the deadline.
func (rc *respConn) do(deadline time.Time, cmds ...[]string) ([]any, error) {
	rc.c.SetDeadline(deadline)
	for _, c := range cmds {
		rc.send(c...)
	}
	if err := rc.w.Flush(); err != nil {
		return nil, err
	}
	out := make([]any, 0, len(cmds))
	for range cmds {
		v, err := rc.read()
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
	for _, v := range out {
		if e, ok := v.(respError); ok {
			return out, e
		}
	}
	return out, nil
}

// read reads one reply: string (simple or bulk), int64, nil, []any, or
// respError.
func (rc *respConn) read() (any, error) {
	line, err := rc.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, errors.New("redis: malformed reply line")
	}
	body := line[1 : len(line)-2]
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		return respError(body), nil
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := ioReadFull(rc.r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, nil
		}
		arr := make([]any, n)
		for i := range arr {
			if arr[i], err = rc.read(); err != nil {
				return nil, err
			}
		}
		return arr, nil
	}
	return nil, fmt.Errorf("redis: unknown reply type %q", line[0])
}

func ioReadFull(r *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
