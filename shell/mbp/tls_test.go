package mbp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
)

// testCA is a throwaway ECDSA P-256 certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

var serial int64

func nextSerial() *big.Int { serial++; return big.NewInt(serial) }

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// leafOpts varies a node certificate for the refusal tests.
type leafOpts struct {
	usages   []x509.ExtKeyUsage
	notAfter time.Time
}

// issue signs a node certificate. Its only SAN is a name nobody dials, to
// show host names are not checked.
func (ca *testCA) issue(t testing.TB, name string, o leafOpts) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if o.usages == nil {
		o.usages = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	if o.notAfter.IsZero() {
		o.notAfter = time.Now().Add(time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name + ".invalid"},
		NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: o.notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: o.usages,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tlsFiles writes a node certificate signed by ca, its key and ca's
// certificate, and names them.
func tlsFiles(t testing.TB, ca *testCA, name string) *TLSFiles {
	t.Helper()
	dir := t.TempDir()
	c, k := ca.issue(t, name, leafOpts{})
	return &TLSFiles{
		CertFile: writeFile(t, dir, "node.crt", c), KeyFile: writeFile(t, dir, "node.key", k),
		CAFile: writeFile(t, dir, "ca.crt", ca.pem),
	}
}

func withTLS(f *TLSFiles) func(*Config) { return func(c *Config) { c.TLS = f } }

func TestLoadTLSErrors(t *testing.T) {
	ca, other := newTestCA(t, "cluster CA"), newTestCA(t, "other CA")
	dir := t.TempDir()
	cert, key := ca.issue(t, "node-a", leafOpts{})
	_, otherKey := ca.issue(t, "node-b", leafOpts{})
	otherCert, otherCertKey := other.issue(t, "node-x", leafOpts{})
	serverOnly, serverOnlyKey := ca.issue(t, "node-s", leafOpts{usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	expired, expiredKey := ca.issue(t, "node-e", leafOpts{notAfter: time.Now().Add(-time.Hour)})
	f := func(name string, b []byte) string { return writeFile(t, dir, name, b) }
	good := TLSFiles{CertFile: f("a.crt", cert), KeyFile: f("a.key", key), CAFile: f("ca.crt", ca.pem)}
	if _, err := LoadTLS(good); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	cases := []struct {
		name string
		mod  func(*TLSFiles)
		want []string
	}{
		{"no ca", func(x *TLSFiles) { x.CAFile = "" }, []string{"cluster.tls.ca is not set"}},
		{"no key", func(x *TLSFiles) { x.KeyFile = "" }, []string{"cluster.tls.key is not set"}},
		{"cert missing", func(x *TLSFiles) { x.CertFile = missing }, []string{"cluster.tls.cert", missing}},
		{"key missing", func(x *TLSFiles) { x.KeyFile = missing }, []string{"cluster.tls.key", missing}},
		{"ca missing", func(x *TLSFiles) { x.CAFile = missing }, []string{"cluster.tls.ca", missing}},
		{"cert not pem", func(x *TLSFiles) { x.CertFile = f("junk.crt", []byte("junk")) }, []string{"cluster.tls.cert", "junk.crt", "no PEM"}},
		{"ca not pem", func(x *TLSFiles) { x.CAFile = f("junk-ca.crt", []byte("junk")) }, []string{"cluster.tls.ca", "junk-ca.crt", "no PEM"}},
		{"key of another cert", func(x *TLSFiles) { x.KeyFile = f("b.key", otherKey) }, []string{"cluster.tls.key", "b.key", "a.crt"}},
		{"cert of another CA", func(x *TLSFiles) {
			x.CertFile, x.KeyFile = f("x.crt", otherCert), f("x.key", otherCertKey)
		}, []string{"cluster.tls.cert", "x.crt", "ca.crt", "unknown authority"}},
		{"server-only cert", func(x *TLSFiles) {
			x.CertFile, x.KeyFile = f("s.crt", serverOnly), f("s.key", serverOnlyKey)
		}, []string{"cluster.tls.cert", "s.crt", "client authentication", "clientAuth"}},
		{"expired cert", func(x *TLSFiles) {
			x.CertFile, x.KeyFile = f("e.crt", expired), f("e.key", expiredKey)
		}, []string{"cluster.tls.cert", "e.crt", "expired"}},
	}
	for _, c := range cases {
		files := good
		c.mod(&files)
		_, err := LoadTLS(files)
		if err == nil {
			t.Errorf("%s: loaded", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not mention %q", c.name, err, w)
			}
		}
		// The key, for a reload's refusal to name (its first word here).
		var ke *KeyError
		if !errors.As(err, &ke) || ke.Key != c.want[0] && !strings.HasPrefix(c.want[0], ke.Key) {
			t.Errorf("%s: KeyError %+v, want the key %s", c.name, ke, c.want[0])
		}
	}
	// A transport with a bad file reports it from Listen and Connect.
	bad := good
	bad.CAFile = missing
	tr := New(Config{ID: "node-a", Secret: []byte(testSecret), ListenAddr: "127.0.0.1:0", TLS: &bad})
	defer tr.Close()
	if err := tr.Listen(); err == nil || !strings.Contains(err.Error(), "cluster.tls.ca") {
		t.Fatalf("Listen: %v", err)
	}
	if err := tr.Connect("127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "cluster.tls.ca") {
		t.Fatalf("Connect: %v", err)
	}
}

// tlsState returns the TLS state of the control connection to peer.
func tlsState(t *testing.T, tr *Transport, peer core.NodeID) tls.ConnectionState {
	t.Helper()
	tr.mu.RLock()
	defer tr.mu.RUnlock()
	p := tr.peers[peer]
	if p == nil || p.conn == nil {
		t.Fatalf("no connection to %s", peer)
	}
	tc, ok := p.conn.nc.(*tls.Conn)
	if !ok {
		t.Fatalf("connection to %s is %T, not TLS", peer, p.conn.nc)
	}
	return tc.ConnectionState()
}

// Two TLS nodes connect (dialing 127.0.0.1, which their certificates do not
// name) and exchange messages both ways over TLS 1.3 with both certificates
// verified.
func TestTLSExchange(t *testing.T) {
	leakCheck(t)
	ca := newTestCA(t, "cluster CA")
	a, _ := newTestTransport(t, "node-a", testSecret, withTLS(tlsFiles(t, ca, "node-a")))
	b, _ := newTestTransport(t, "node-b", testSecret, withTLS(tlsFiles(t, ca, "node-b")))
	if err := a.Connect(b.Addr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both connected", func() bool { return connected(a, "node-b") && connected(b, "node-a") })
	for _, c := range []struct {
		tr   *Transport
		peer core.NodeID
		cn   string
	}{{a, "node-b", "node-b"}, {b, "node-a", "node-a"}} {
		st := tlsState(t, c.tr, c.peer)
		if st.Version != tls.VersionTLS13 || len(st.PeerCertificates) == 0 || st.PeerCertificates[0].Subject.CommonName != c.cn {
			t.Fatalf("%s→%s: version %x, peer certs %d", c.tr.cfg.ID, c.peer, st.Version, len(st.PeerCertificates))
		}
	}
	for i := range 50 {
		if !a.Send("node-b", core.Message{Type: core.MsgHeartbeat, Epoch: core.Epoch(i)}) {
			t.Fatal("send a→b")
		}
		if m := recvOne(t, b); m.From != "node-a" || m.Epoch != core.Epoch(i) {
			t.Fatalf("b got %+v", m)
		}
		if !b.Send("node-a", core.Message{Type: core.MsgHeartbeat, Epoch: core.Epoch(i)}) {
			t.Fatal("send b→a")
		}
		if m := recvOne(t, a); m.From != "node-b" || m.Epoch != core.Epoch(i) {
			t.Fatalf("a got %+v", m)
		}
	}
	// A large, compressed append also crosses TLS.
	big := core.Message{Type: core.MsgAppend}
	for i := range 100 {
		big.Entries = append(big.Entries, core.Entry{Pos: core.Pos{Epoch: 1, Seq: core.Seq(i + 1)}, Payload: []byte(strings.Repeat("muninn ", 200))})
	}
	a.Send("node-b", big)
	if m := recvOne(t, b); len(m.Entries) != 100 || string(m.Entries[99].Payload) != string(big.Entries[99].Payload) {
		t.Fatalf("append: %d entries", len(m.Entries))
	}
}

// rawTLSDial opens a TLS connection to addr with cfg and runs the dialer's
// HMAC handshake with the right secret over it.
func rawTLSDial(t *testing.T, addr string, cfg *tls.Config) error {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(3 * time.Second))
	tc := tls.Client(nc, cfg)
	if err := tc.Handshake(); err != nil {
		return err
	}
	_, err = DialHandshake(tc, HandshakeConfig{Secret: []byte(testSecret), Local: Hello{ID: "intruder", Purpose: PurposeControl}})
	return err
}

// A peer holding cluster_secret but no client certificate is refused.
func TestTLSRefusesPeerWithoutCert(t *testing.T) {
	leakCheck(t)
	ca := newTestCA(t, "cluster CA")
	b, blog := newTestTransport(t, "node-b", testSecret, withTLS(tlsFiles(t, ca, "node-b")))
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	err := rawTLSDial(t, b.Addr(), &tls.Config{RootCAs: pool, ServerName: "node-b.invalid", MinVersion: tls.VersionTLS13})
	// The listener's alert ("certificate required") may be lost to a reset
	// when its close races our hello; its log is the check.
	if err == nil {
		t.Fatal("dial without a certificate succeeded")
	}
	waitFor(t, "refusal logged", func() bool {
		return strings.Contains(blog.String(), "TLS failed") && strings.Contains(blog.String(), "presented no client certificate")
	})
	if len(b.Peers()) != 0 {
		t.Fatalf("peers %+v", b.Peers())
	}
}

// A certificate from another CA is refused both ways: as a client (by the
// listener) and as a server (by the dialer); with a genuine transport on
// each side, neither connects and both logs say why.
func TestTLSRefusesOtherCA(t *testing.T) {
	leakCheck(t)
	ca, other := newTestCA(t, "cluster CA"), newTestCA(t, "other CA")
	b, blog := newTestTransport(t, "node-b", testSecret, withTLS(tlsFiles(t, ca, "node-b")))

	// A client presenting a certificate from the other CA, trusting
	// everything, is refused by the listener. (GetClientCertificate: with
	// Certificates, crypto/tls would not send a certificate the listener's
	// acceptable-CA list does not name.)
	certPEM, keyPEM := other.issue(t, "node-x", leafOpts{})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	err = rawTLSDial(t, b.Addr(), &tls.Config{
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil },
		InsecureSkipVerify:   true, MinVersion: tls.VersionTLS13})
	if err == nil {
		t.Fatal("dial with another CA's certificate succeeded")
	}
	waitFor(t, "listener refusal logged", func() bool {
		return strings.Contains(blog.String(), "TLS failed") && strings.Contains(blog.String(), "not signed by cluster.tls.ca")
	})

	// A whole node of the other CA: neither side accepts the other.
	x, xlog := newTestTransport(t, "node-x", testSecret, withTLS(tlsFiles(t, other, "node-x")))
	_ = x.Connect(b.Addr())
	_ = b.Connect(x.Addr())
	// Each dialer refuses the other's server certificate; each listener
	// logs the dialer's alert.
	refused := `msg="mbp connection refused: TLS failed`
	waitFor(t, "both dialers refused", func() bool {
		return strings.Count(xlog.String(), refused) >= 2 && strings.Count(blog.String(), refused) >= 3 &&
			strings.Contains(xlog.String(), "attempt 1,") && strings.Contains(xlog.String(), "not signed by cluster.tls.ca")
	})
	if connected(x, "node-b") || connected(b, "node-x") {
		t.Fatal("nodes of different CAs connected")
	}

	// A node that trusts both CAs (so accepts node-b's certificate) but
	// holds one from the other CA is refused by node-b's listener after its
	// own TLS handshake completed (TLS 1.3); its log still blames TLS.
	dir := t.TempDir()
	yc, yk := other.issue(t, "node-y", leafOpts{})
	both := &TLSFiles{CertFile: writeFile(t, dir, "y.crt", yc), KeyFile: writeFile(t, dir, "y.key", yk),
		CAFile: writeFile(t, dir, "ca.crt", append(append([]byte{}, other.pem...), ca.pem...))}
	y, ylog := newTestTransport(t, "node-y", testSecret, withTLS(both))
	_ = y.Connect(b.Addr())
	waitFor(t, "node-y refused", func() bool {
		return strings.Contains(ylog.String(), "TLS failed") && strings.Contains(ylog.String(), "cluster.tls.ca signed our cluster.tls.cert")
	})
	if connected(y, "node-b") {
		t.Fatal("node-y connected")
	}
}

// A TLS node and a plaintext node cannot talk, and each log says why.
func TestTLSPlaintextMismatch(t *testing.T) {
	leakCheck(t)
	ca := newTestCA(t, "cluster CA")
	s, slog := newTestTransport(t, "node-s", testSecret, withTLS(tlsFiles(t, ca, "node-s")))
	p, plog := newTestTransport(t, "node-p", testSecret)
	_ = s.Connect(p.Addr())
	_ = p.Connect(s.Addr())
	waitFor(t, "both sides refused", func() bool {
		return strings.Contains(slog.String(), "the peer does not speak TLS") &&
			strings.Contains(plog.String(), "the peer speaks TLS but cluster.tls is not set on this node") &&
			strings.Contains(plog.String(), "requires TLS on MBP")
	})
	time.Sleep(50 * time.Millisecond)
	if connected(s, "node-p") || connected(p, "node-s") {
		t.Fatal("TLS and plaintext nodes connected")
	}
}

// The HMAC handshake still runs inside TLS: right certificates, wrong
// secret, refused.
func TestTLSWrongSecret(t *testing.T) {
	leakCheck(t)
	ca := newTestCA(t, "cluster CA")
	a, alog := newTestTransport(t, "node-a", "0123456789abcdef-k1", withTLS(tlsFiles(t, ca, "node-a")))
	b, _ := newTestTransport(t, "node-b", "0123456789abcdef-k2", withTLS(tlsFiles(t, ca, "node-b")))
	_ = a.Connect(b.Addr())
	waitFor(t, "auth refusal", func() bool { return strings.Contains(alog.String(), "authentication failed") })
	if connected(a, "node-b") {
		t.Fatal("connected with a wrong secret")
	}
}

// Snapshots stream over their own TLS connections.
func TestTLSSnapshot(t *testing.T) {
	leakCheck(t)
	ca := newTestCA(t, "cluster CA")
	src, staging := t.TempDir(), t.TempDir()
	writeCheckpoint(t, src, ckpt)
	got := make(chan string, 1)
	a, _ := newTestTransport(t, "node-a", testSecret, withTLS(tlsFiles(t, ca, "node-a")), func(c *Config) { c.SnapshotChunk = 32 << 10 })
	b, _ := newTestTransport(t, "node-b", testSecret, withTLS(tlsFiles(t, ca, "node-b")), func(c *Config) {
		c.SnapshotStaging = func(from core.NodeID, id string) (string, error) { return filepath.Join(staging, id), nil }
		c.OnSnapshot = func(from core.NodeID, id, dir string) { got <- dir }
	})
	_ = b.Connect(a.Addr())
	waitFor(t, "connected", func() bool { return connected(a, "node-b") })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.SendSnapshot(ctx, "node-b", src); err != nil {
		t.Fatal(err)
	}
	sameTree(t, src, <-got)
	ps := a.Snapshots()
	if len(ps) != 1 || !ps[0].Complete || ps[0].Attempts != 1 {
		t.Fatalf("progress %+v", ps)
	}
}

// A snapshot sender without TLS cannot reach a TLS receiver.
func TestTLSSnapshotRefusesPlaintext(t *testing.T) {
	leakCheck(t)
	ca := newTestCA(t, "cluster CA")
	b, _ := newTestTransport(t, "node-b", testSecret, withTLS(tlsFiles(t, ca, "node-b")))
	nc, err := net.DialTimeout("tcp", b.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(3 * time.Second))
	_, err = DialHandshake(nc, HandshakeConfig{Secret: []byte(testSecret), Local: Hello{ID: "node-a", Purpose: PurposeSnapshot}})
	if !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), "requires TLS") {
		t.Fatalf("plaintext snapshot dial: %v", err)
	}
}

// BenchmarkTLSLoopback is BenchmarkLoopback and BenchmarkLatencyIdle over
// TLS, to price the encryption: compare with the plaintext figures.
func BenchmarkTLSLoopback(b *testing.B) {
	ca := newTestCA(b, "cluster CA")
	pair := func(b *testing.B) (*Transport, *Transport) {
		mk := func(id core.NodeID) *Transport {
			tr := New(Config{ID: id, Secret: []byte(testSecret), ListenAddr: "127.0.0.1:0", QueueLen: 1 << 14, TLS: tlsFiles(b, ca, string(id))})
			if err := tr.Listen(); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { tr.Close() })
			return tr
		}
		a, c := mk("node-a"), mk("node-b")
		_ = a.Connect(c.Addr())
		for !connected(a, "node-b") || !connected(c, "node-a") {
			time.Sleep(time.Millisecond)
		}
		return a, c
	}
	for _, c := range []struct {
		name string
		m    core.Message
	}{
		{"heartbeat", core.Message{Type: core.MsgHeartbeat, Epoch: 1, Last: core.Pos{Epoch: 1, Seq: 99}}},
		{"batch100x100B-compressible", batch(100, 100, true)},
		{"batch1000x1KiB-random", batch(1000, 1024, false)},
	} {
		b.Run("throughput-"+c.name, func(b *testing.B) {
			a, r := pair(b)
			b.SetBytes(int64(len(EncodeMessage(c.m))))
			done := make(chan struct{})
			go func() {
				for range b.N {
					<-r.Recv()
				}
				close(done)
			}()
			b.ResetTimer()
			for range b.N {
				for !a.Send("node-b", c.m) {
					runtime.Gosched()
				}
			}
			<-done
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
	b.Run("latency-idle-heartbeat", func(b *testing.B) {
		a, r := pair(b)
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for range b.N {
			start := time.Now()
			a.Send("node-b", core.Message{Type: core.MsgHeartbeat, Epoch: 1})
			<-r.Recv()
			lat = append(lat, time.Since(start))
		}
		b.StopTimer()
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	})
	b.Run("connect", func(b *testing.B) {
		// A full TLS + HMAC handshake (a snapshot connection), each time.
		a, _ := pair(b)
		addr := a.Peers()[0].MBPAddr
		b.ResetTimer()
		for range b.N {
			nc, _, err := a.dial(context.Background(), addr, PurposeSnapshot)
			if err != nil {
				b.Fatal(err)
			}
			a.untrack(nc)
			nc.Close()
		}
	})
}
