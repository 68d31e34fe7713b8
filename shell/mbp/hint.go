package mbp

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/muninndb/muninn/core"
)

// DefaultHintDialTimeout bounds the redial that tells a crash from a
// partition (rule 18); the node passes min(heartbeat/2, this).
const DefaultHintDialTimeout = 250 * time.Millisecond

// hintBacklog bounds the hints waiting for the node; more are dropped (the
// SDOWN window still catches a crash).
const hintBacklog = 64

// Hint is a crash hint (docs/protocol.md, rule 18): the control connection
// to Peer closed or was reset, and an immediate redial of the address it
// advertised was refused. A crashed process looks like that (its kernel
// closed its sockets and nothing listens); a frozen process, a partition or
// a dead host are silent instead, and are left to the SDOWN window.
type Hint struct {
	Peer core.NodeID
	Why  string
}

// Hints delivers crash hints; it is closed by Close. A consumer that falls
// hintBacklog behind loses some.
func (t *Transport) Hints() <-chan Hint { return t.hints }

// closedByPeer reports whether a control connection's error says the other
// end closed or reset it: EOF, a reset, a broken pipe. Our own Close
// (net.ErrClosed), a deadline, a keepalive timeout and bad frames are not.
func closedByPeer(err error) bool {
	if err == nil || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED)
}

// probeCrash dials addr once, at once: only a refusal (nothing listens
// where the peer advertised itself) makes the closed connection a hint. A
// successful connect (the peer restarted, or closed just this connection),
// a timeout or any other error is not one. A plain TCP connect is enough;
// the peer's listener takes the probe's EOF for a port probe (logRefusal).
//
// A killed process's kernel closes its sockets one by one, so our
// connection may be reset before its listener is closed, and the redial
// then meets a listener going away: the connect is reset during the TCP
// handshake, or accepted into the listener's queue and reset with it. Both
// count as refused. A live MBP listener does neither: it completes the
// handshake and waits for our hello for its handshake timeout.
func (t *Transport) probeCrash(p *peer, addr string, cause error) {
	defer t.wg.Done()
	defer func() {
		t.mu.Lock()
		p.probing = false
		t.mu.Unlock()
	}()
	id := p.id
	timeout := t.cfg.HintDialTimeout
	d := net.Dialer{Timeout: timeout}
	nc, err := d.DialContext(t.ctx, "tcp", addr)
	how := ""
	switch {
	case err == nil:
		_ = nc.SetReadDeadline(time.Now().Add(timeout))
		_, rerr := nc.Read(make([]byte, 1))
		nc.Close()
		if !closedByPeer(rerr) {
			t.log.Debug("mbp peer closed its connection but its listener answers: not a crash hint", "peer", string(id), "addr", addr, "cause", cause)
			return
		}
		how = "accepted and at once closed (its listener was closing)"
		if errors.Is(rerr, syscall.ECONNRESET) {
			how = "accepted and at once reset (its listener was closing)"
		}
	case errors.Is(err, syscall.ECONNREFUSED):
		how = "refused"
	case errors.Is(err, syscall.ECONNRESET):
		how = "reset (its listener was closing)"
	}
	if how == "" || t.ctx.Err() != nil {
		t.log.Debug("mbp peer closed its connection; the redial was not refused: not a crash hint", "peer", string(id), "addr", addr, "err", err)
		return
	}
	h := Hint{Peer: id, Why: fmt.Sprintf("its connection closed (%s) and a redial of %s was %s", shortCause(cause), addr, how)}
	select {
	case t.hints <- h:
	default:
		t.log.Warn("mbp crash hint dropped: the node is not taking hints", "peer", string(id))
	}
}

// shortCause names what ended a connection in a word or two.
func shortCause(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, syscall.ECONNABORTED):
		return "aborted"
	}
	return "EOF"
}

// hintAddr is where to redial a peer: the MBP address it advertised, with
// the connection's remote host when that address names none (":8474",
// "0.0.0.0:8474"): dialing it as given would reach this host, and a
// refusal here would say nothing about the peer. "" when there is none.
func hintAddr(advertised string, remote net.Addr) string {
	host, port, err := net.SplitHostPort(advertised)
	if err != nil || port == "" {
		return ""
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return advertised
	}
	ta, ok := remote.(*net.TCPAddr)
	if !ok || ta == nil {
		return ""
	}
	return net.JoinHostPort(ta.IP.String(), port)
}
