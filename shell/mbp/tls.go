package mbp

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"
)

// TLSFiles names the PEM files of the optional cluster.tls section. When a
// Config carries them, every MBP connection (control and snapshot, dialed
// and accepted) runs TLS 1.3 with mutual certificate authentication, and the
// HMAC handshake then runs inside it.
type TLSFiles struct {
	CertFile string // cluster.tls.cert: this node's certificate (leaf first, then any intermediates)
	KeyFile  string // cluster.tls.key: its private key
	CAFile   string // cluster.tls.ca: the cluster CA bundle every node's certificate chains to
}

// ErrTLS wraps failures of the TLS layer under MBP: a handshake error, a
// peer certificate not signed by cluster.tls.ca, a peer without a
// certificate, or one side speaking TLS and the other not.
var ErrTLS = errors.New("mbp: TLS failed")

// plaintextRefusal is sent, as a plain MBP refuse frame, to a peer that
// opened a TLS listener's connection without TLS, so its log says why.
const plaintextRefusal = "this node requires TLS on MBP (cluster.tls): set cluster.tls.cert, key and ca on every node"

// KeyError is a LoadTLS failure with the configuration key it is about
// (cluster.tls.cert, .key or .ca), so a refused reload can name it.
type KeyError struct {
	Key string
	Err error
}

func (e *KeyError) Error() string { return e.Err.Error() }
func (e *KeyError) Unwrap() error { return e.Err }

// LoadTLS reads cluster.tls and returns a configuration for both ends of an
// MBP connection: TLS 1.3 only; as a server it requires a client certificate
// that chains to the CA; as a client it presents this node's certificate and
// checks that the server's chains to the CA.
//
// Host names are not checked: a peer is accepted if its certificate chains
// to cluster.tls.ca and is valid for its role, whatever its SANs. Nodes dial
// seed lists and advertised addresses (IPs, container or NAT names) that
// often do not match their certificates, and node identity is established by
// the HMAC handshake that runs inside TLS (it binds both node ids). TLS adds
// confidentiality and a second, independent credential: a peer needs both a
// certificate from the cluster CA and cluster_secret. Consequently the CA
// must be dedicated to the cluster: every certificate it signs is a member.
//
// The node's own certificate is checked against the CA when loading, for
// both server and client authentication (every node dials and accepts), so a
// wrong file fails at startup naming the key instead of at every connection.
// Errors name the config key and the file.
func LoadTLS(f TLSFiles) (*tls.Config, error) {
	for _, k := range []struct{ key, file string }{
		{"cluster.tls.cert", f.CertFile}, {"cluster.tls.key", f.KeyFile}, {"cluster.tls.ca", f.CAFile},
	} {
		if k.file == "" {
			return nil, &KeyError{Key: k.key, Err: fmt.Errorf("mbp: %s is not set: MBP TLS needs cluster.tls.cert, cluster.tls.key and cluster.tls.ca together", k.key)}
		}
	}
	certPEM, err := os.ReadFile(f.CertFile)
	if err != nil {
		return nil, &KeyError{Key: "cluster.tls.cert", Err: fmt.Errorf("mbp: cluster.tls.cert: %w", err)}
	}
	chain, err := parseCerts(certPEM)
	if err != nil {
		return nil, &KeyError{Key: "cluster.tls.cert", Err: fmt.Errorf("mbp: cluster.tls.cert: %s: %w", f.CertFile, err)}
	}
	keyPEM, err := os.ReadFile(f.KeyFile)
	if err != nil {
		return nil, &KeyError{Key: "cluster.tls.key", Err: fmt.Errorf("mbp: cluster.tls.key: %w", err)}
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, &KeyError{Key: "cluster.tls.key", Err: fmt.Errorf("mbp: cluster.tls.key: %s: %v (is it the private key of cluster.tls.cert %s?)", f.KeyFile, err, f.CertFile)}
	}
	caPEM, err := os.ReadFile(f.CAFile)
	if err != nil {
		return nil, &KeyError{Key: "cluster.tls.ca", Err: fmt.Errorf("mbp: cluster.tls.ca: %w", err)}
	}
	cas, err := parseCerts(caPEM)
	if err != nil {
		return nil, &KeyError{Key: "cluster.tls.ca", Err: fmt.Errorf("mbp: cluster.tls.ca: %s: %w", f.CAFile, err)}
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	for _, u := range []struct {
		usage x509.ExtKeyUsage
		name  string
	}{{x509.ExtKeyUsageServerAuth, "server"}, {x509.ExtKeyUsageClientAuth, "client"}} {
		if err := verifyChain(chain, pool, u.usage); err != nil {
			return nil, &KeyError{Key: "cluster.tls.cert", Err: fmt.Errorf("mbp: cluster.tls.cert: %s does not verify against cluster.tls.ca %s for TLS %s authentication: %v "+
				"(every node both dials and accepts: its certificate needs the serverAuth and clientAuth extended key usages, or none)",
				f.CertFile, f.CAFile, u.name, err)}
		}
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		// Always present our certificate, even if the server's list of
		// acceptable CAs does not name ours: it then refuses it with a clear
		// "unknown authority" instead of "no certificate".
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil },
		ClientAuth:           tls.RequireAndVerifyClientCert,
		ClientCAs:            pool,
		RootCAs:              pool,
		// Host names are deliberately not checked (see above); the chain is,
		// in VerifyConnection.
		InsecureSkipVerify:     true,
		VerifyConnection:       verifyServer(pool),
		SessionTicketsDisabled: true,
	}, nil
}

// SetTLS reloads cluster.tls (a renewed certificate and key, a new CA
// bundle): new handshakes, dialed and accepted, use it; connections already
// up keep theirs. The files are checked as LoadTLS does, and on any error
// the configuration in force is kept. TLS cannot be turned on or off here
// (every node must agree, so that takes a restart of each). It returns the
// keys whose files changed since the last load (cluster.tls.cert, .key,
// .ca), by content.
func (t *Transport) SetTLS(f TLSFiles) ([]string, error) {
	t.tlsMu.Lock()
	defer t.tlsMu.Unlock()
	if t.tls.Load() == nil {
		return nil, errors.New("mbp: cluster.tls was not set when the node started: turning TLS on takes a restart of every node")
	}
	cfg, err := LoadTLS(f)
	if err != nil {
		return nil, err
	}
	sum := tlsFingerprint(f)
	var changed []string
	for i, k := range []string{"cluster.tls.cert", "cluster.tls.key", "cluster.tls.ca"} {
		if sum[i] != t.tlsSum[i] {
			changed = append(changed, k)
		}
	}
	t.tls.Store(cfg)
	t.tlsSum = sum
	if len(changed) > 0 {
		t.log.Info("mbp TLS reloaded: new handshakes use it", "changed", strings.Join(changed, ","))
	}
	return changed, nil
}

// tlsFingerprint hashes the content of the cluster.tls files (a file that
// cannot be read hashes as empty).
func tlsFingerprint(f TLSFiles) [3][32]byte {
	var out [3][32]byte
	for i, name := range []string{f.CertFile, f.KeyFile, f.CAFile} {
		b, _ := os.ReadFile(name)
		out[i] = sha256.Sum256(b)
	}
	return out
}

// parseCerts returns every CERTIFICATE block of a PEM bundle.
func parseCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return out, nil
}

// verifyChain checks that chain[0] chains to roots (through chain[1:]) and
// may be used for usage. No host name is checked.
func verifyChain(chain []*x509.Certificate, roots *x509.CertPool, usage x509.ExtKeyUsage) error {
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

// verifyServer checks the server's chain on the client side, where
// InsecureSkipVerify only turned off the host name check. On the server
// side crypto/tls has already verified the client's chain against ClientCAs
// (RequireAndVerifyClientCert), so VerifiedChains is set and there is
// nothing left to do.
func verifyServer(roots *x509.CertPool) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.VerifiedChains) > 0 {
			return nil
		}
		if len(cs.PeerCertificates) == 0 {
			return errors.New("mbp: peer presented no TLS certificate")
		}
		if err := verifyChain(cs.PeerCertificates, roots, x509.ExtKeyUsageServerAuth); err != nil {
			return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
		}
		return nil
	}
}

// secure runs the TLS handshake over a fresh connection when cluster.tls is
// set, within the deadline the caller set, and returns the connection to use
// (nc itself without TLS, or on error). A TLS listener answers a plaintext
// MBP peer with a plain refuse frame so both logs say what is wrong.
func (t *Transport) secure(ctx context.Context, nc net.Conn, server bool) (net.Conn, error) {
	cfg := t.tls.Load() // SetTLS may replace it: each handshake uses the latest
	if cfg == nil {
		return nc, nil
	}
	var tc *tls.Conn
	if server {
		tc = tls.Server(nc, cfg)
	} else {
		tc = tls.Client(nc, cfg)
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		var rh tls.RecordHeaderError
		if server && errors.As(err, &rh) {
			_ = WriteFrame(nc, FrameRefuse, 0, []byte(plaintextRefusal))
		}
		return nc, tlsError(err)
	}
	return tc, nil
}

// tlsError wraps a TLS-layer error in ErrTLS with a hint at the likely
// misconfiguration.
func tlsError(err error) error {
	var (
		rh    tls.RecordHeaderError
		cv    *tls.CertificateVerificationError
		ua    x509.UnknownAuthorityError
		inv   x509.CertificateInvalidError
		opErr *net.OpError
	)
	hint := ""
	switch {
	case errors.As(err, &rh):
		hint = "the peer does not speak TLS: set cluster.tls on every node or on none"
	case errors.As(err, &ua):
		hint = "the peer's certificate is not signed by cluster.tls.ca"
	case errors.As(err, &inv):
		hint = "the peer's certificate is expired, not yet valid or not allowed for this use"
	case errors.As(err, &cv):
		hint = "the peer's certificate does not verify against cluster.tls.ca"
	case strings.Contains(err.Error(), "didn't provide a certificate"):
		hint = "the peer presented no client certificate: set cluster.tls.cert and cluster.tls.key on it"
	case errors.As(err, &opErr) && opErr.Op == "remote error":
		hint = "the peer refused our TLS handshake: check that its cluster.tls.ca signed our cluster.tls.cert, and the peer's log"
	}
	if hint == "" {
		return fmt.Errorf("%w: %w", ErrTLS, err)
	}
	return fmt.Errorf("%w: %w (%s)", ErrTLS, err, hint)
}

// refusedAfterTLS turns a dialer's HMAC handshake error into ErrTLS when it
// is a TLS alert from the listener. In TLS 1.3 a client's handshake
// completes before the server has checked the client's certificate, so the
// server's refusal reaches a dialer only when it reads the challenge (the
// listener's lingerClose makes sure the alert is not lost to a reset).
func refusedAfterTLS(err error) error {
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "remote error" {
		return tlsError(err)
	}
	return err
}

// looksLikeTLS reports whether a plaintext listener's frame error is a TLS
// ClientHello (record type 0x16 where the MBP version should be).
func looksLikeTLS(err error) bool {
	return errors.Is(err, ErrVersion) && strings.Contains(err.Error(), " 22 (0x16);")
}

// lingerClose closes a refused inbound connection so that the peer reads
// the refusal (an MBP refuse frame or a TLS alert) rather than a reset:
// closing a socket with unread input sends RST, and the peer's kernel may
// then drop our last bytes before it reads them. That happens whenever we
// refuse before reading all the peer sent, as a TLS listener does with a
// client's certificate (TLS 1.3: the client has already sent its Finished
// and its hello) or with a plaintext hello. So: send FIN, discard what the
// peer still sends (at most 64 KiB, for at most a second, until it closes),
// then close. A peer that let the handshake time out gets no linger.
func lingerClose(nc net.Conn, err error) {
	raw := rawConn(nc)
	if tc, ok := raw.(*net.TCPConn); ok && !errors.Is(err, os.ErrDeadlineExceeded) {
		_ = tc.CloseWrite()
		_ = tc.SetReadDeadline(time.Now().Add(time.Second))
		_, _ = io.Copy(io.Discard, io.LimitReader(tc, 64<<10))
	}
	_ = raw.Close()
}

// rawConn is the TCP connection under nc: pending connections are tracked,
// and closed by Close, as the raw connection, which closes at once where a
// TLS Close may wait to send close_notify.
func rawConn(nc net.Conn) net.Conn {
	if tc, ok := nc.(*tls.Conn); ok {
		return tc.NetConn()
	}
	return nc
}
