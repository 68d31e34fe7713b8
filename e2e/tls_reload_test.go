//go:build unix

package e2e

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/client"
	"github.com/muninndb/muninn/shell/mbp"
)

// ---------------------------------------------------------------- test PKI

// testCA is a certificate authority made in the test (ECDSA P-256).
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func randSerial(t *testing.T) *big.Int {
	t.Helper()
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	return s.Add(s, big.NewInt(1)) // never 0
}

func newTestCA(t *testing.T, cn string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randSerial(t),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// leafCert is a certificate the test CA issued, with its key.
type leafCert struct {
	cert            *x509.Certificate
	certPEM, keyPEM []byte
}

func (l leafCert) pair(t *testing.T) tls.Certificate {
	t.Helper()
	p, err := tls.X509KeyPair(l.certPEM, l.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// issue signs a node certificate valid for `valid` from now, for both TLS
// server and client use (every node dials and accepts), with SANs
// 127.0.0.1, localhost and the node id (shell/mbp checks the chain and the
// usages, not the names), a fresh key and a random serial.
func (ca *testCA) issue(t *testing.T, cn string, valid time.Duration) leafCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: randSerial(t),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		// Whole seconds: the certificate stores no more.
		NotAfter:    time.Now().Add(valid).Truncate(time.Second),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:    []string{"localhost", cn},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return leafCert{cert: cert,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})}
}

func certPool(cas ...*testCA) *x509.CertPool {
	p := x509.NewCertPool()
	for _, ca := range cas {
		p.AddCert(ca.cert)
	}
	return p
}

// replaceFile writes a file as an operator's tooling should: a temp file
// in the same directory, fsync, rename over the old one, fsync the
// directory. A reload never reads a half-written file.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		t.Fatal(err)
	}
	tmp := f.Name()
	if _, err := f.Write(data); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}

// ---------------------------------------------------------------- per node

// tlsNode is a node's cluster.tls files and what it should present.
type tlsNode struct {
	*node
	certFile, keyFile, caFile string
	cur                       leafCert // the certificate in the files, and in force after a good reload
}

// install writes l as the node's certificate and key.
func (tn *tlsNode) install(t *testing.T, l leafCert) {
	t.Helper()
	replaceFile(t, tn.certFile, l.certPEM)
	replaceFile(t, tn.keyFile, l.keyPEM)
	tn.cur = l
}

// probeTLS dials the node's MBP port as a new peer would: TLS 1.3 with
// clientCert, the server's certificate verified against roots (and its IP
// SAN). It returns the certificate the node presented and the result of
// an MBP handshake run inside TLS with a secret the node does not hold:
// mbp.ErrAuth means the node accepted clientCert and answered over TLS; a
// "remote error: tls: ..." means it refused clientCert (in TLS 1.3 a
// client's handshake completes before the server has checked the client's
// certificate, so the refusal arrives on the first read).
func probeTLS(n *node, clientCert tls.Certificate, roots *x509.CertPool) (*x509.Certificate, error, error) {
	nc, err := net.DialTimeout("tcp", n.mbpAddr(), 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	tc := tls.Client(nc, &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots, ServerName: "127.0.0.1",
		// Always offered, as a node does (mbp.LoadTLS): with Certificates
		// crypto/tls would send none when the server's list of acceptable
		// CAs does not name its issuer, and the test would see "certificate
		// required" instead of the node judging the certificate.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &clientCert, nil }})
	if err := tc.Handshake(); err != nil {
		return nil, nil, fmt.Errorf("TLS handshake with %s: %w", n.id, err)
	}
	leaf := tc.ConnectionState().PeerCertificates[0]
	_, herr := mbp.DialHandshake(tc, mbp.HandshakeConfig{Secret: []byte("e2e-tls-probe-not-the-secret-0123"),
		Local: mbp.Hello{ID: "e2e-tls-probe", Kind: core.KindAuto, Purpose: mbp.PurposeControl}})
	return leaf, herr, nil
}

// presents fails the test unless a fresh TLS dial to the node shows want
// and the node accepts clientCert.
func (tn *tlsNode) presents(t *testing.T, what string, want leafCert, clientCert tls.Certificate, roots *x509.CertPool) {
	t.Helper()
	leaf, herr, err := probeTLS(tn.node, clientCert, roots)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if leaf.SerialNumber.Cmp(want.cert.SerialNumber) != 0 || !leaf.NotAfter.Equal(want.cert.NotAfter) || leaf.Issuer.CommonName != want.cert.Issuer.CommonName {
		t.Fatalf("%s: %s presents serial %x (issuer %s, not after %s), want serial %x (issuer %s, not after %s)", what, tn.id,
			leaf.SerialNumber, leaf.Issuer.CommonName, leaf.NotAfter.UTC().Format(time.RFC3339),
			want.cert.SerialNumber, want.cert.Issuer.CommonName, want.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if !errors.Is(herr, mbp.ErrAuth) {
		t.Fatalf("%s: after TLS, an MBP handshake with a wrong secret against %s gave %v, want an authentication failure (the node answering over TLS)", what, tn.id, herr)
	}
}

// lastReloadMsg is the node's last "configuration reloaded: ..." log line.
func (n *node) lastReloadMsg() string {
	var last string
	for _, m := range n.logMsgs() {
		if strings.HasPrefix(m, "configuration reloaded") {
			last = m
		}
	}
	return last
}

// reloadTLS reloads the node by how (SIGHUP or POST) and checks that the
// reload was applied with exactly the keys want changed: in the POST
// answer, and in the log for both.
func (tn *tlsNode) reloadTLS(t *testing.T, how string, want ...string) {
	t.Helper()
	tlsLogs := tn.countMsg("mbp TLS reloaded: new handshakes use it")
	r := tn.reloadVia(how, "configuration reloaded")
	if how == "POST" {
		var res struct {
			Changed []string `json:"changed"`
			Restart []string `json:"restart_required"`
		}
		if r.status != 200 || json.Unmarshal(r.body, &res) != nil || !slices.Equal(res.Changed, want) || len(res.Restart) != 0 {
			t.Fatalf("POST /v1/admin/reload on %s: HTTP %d %s, want changed %q", tn.id, r.status, r.body, want)
		}
	}
	wantMsg := "configuration reloaded: applied " + strings.Join(want, ", ")
	if len(want) == 0 {
		wantMsg = "configuration reloaded: nothing to apply"
	}
	if got := tn.lastReloadMsg(); got != wantMsg {
		t.Fatalf("%s reload of %s logged %q, want %q", how, tn.id, got, wantMsg)
	}
	if k := tn.countMsg("mbp TLS reloaded: new handshakes use it"); len(want) > 0 && k != tlsLogs+1 {
		t.Fatalf("%s reload of %s: %d new \"mbp TLS reloaded\" log lines, want 1", how, tn.id, k-tlsLogs)
	}
}

// refusedReload reloads the node by POST, which must be refused with a 400
// whose message contains each of want, and returns the answer's fields.
func (tn *tlsNode) refusedReload(t *testing.T, what string, want ...string) []struct{ Key, Message string } {
	t.Helper()
	r := tn.reloadVia("POST", "configuration reload refused")
	var refused struct {
		Fields []struct{ Key, Message string } `json:"fields"`
	}
	if r.status != 400 || json.Unmarshal(r.body, &refused) != nil {
		t.Fatalf("%s: POST /v1/admin/reload on %s: HTTP %d %s, want 400", what, tn.id, r.status, r.body)
	}
	for _, s := range want {
		if !strings.Contains(r.err.Message, s) {
			t.Fatalf("%s: the refusal does not say %q: %s", what, s, r.body)
		}
	}
	return refused.Fields
}

// TestTLSCertificateReload runs a 3-node cluster with cluster.tls (a CA and
// a certificate per node, made here) under a steady quorum write load and,
// with no restart: renews every node's certificate in place (same CA, new
// key, serial and expiry; two nodes reloaded by SIGHUP, one by POST
// /v1/admin/reload); keeps out bad reloads (a key that is not the
// certificate's, a missing certificate file); then moves the cluster to a
// new CA in three steps (CA bundle old+new, certificates from the new CA,
// new CA only). After each reload a fresh TLS dial to the node's MBP port
// presents the certificate in the files; the connections up are never
// dropped, no write fails, and at the end a peer with a certificate from
// the old CA alone is refused by every node, while a Lobe restarted with
// the new files reconnects to the reloaded nodes in both directions.
func TestTLSCertificateReload(t *testing.T) {
	const hb = 200
	c := newCluster(t, hb, 0)
	ns := c.addN(3)
	ca1 := newTestCA(t, "muninn e2e CA 1")
	var tns []*tlsNode
	for _, n := range ns {
		dir := filepath.Join(n.dir, "tls")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		tn := &tlsNode{node: n, certFile: filepath.Join(dir, "node.crt"), keyFile: filepath.Join(dir, "node.key"), caFile: filepath.Join(dir, "ca.pem")}
		tn.install(t, ca1.issue(t, n.id, 24*time.Hour))
		replaceFile(t, tn.caFile, ca1.pem)
		tn.setTLSEnv(t)
		n.start()
		tns = append(tns, tn)
	}
	c.waitCortex(ns, 60*time.Second)
	for _, n := range ns {
		if n.countMsg("mbp listening") == 0 || !strings.Contains(n.logText(), `"tls":true`) {
			t.Fatalf("%s does not log MBP listening with TLS", n.id)
		}
	}
	probe1 := ca1.issue(t, "e2e-probe-ca1", time.Hour).pair(t)
	roots1 := certPool(ca1)
	for _, tn := range tns {
		tn.presents(t, "at start", tn.cur, probe1, roots1)
	}

	cl := client.New(ns[0].url(), client.WithEndpoints(urls(ns)...))
	w := startWriter(t, cl, "tlsreload", "quorum", 10*time.Millisecond)
	c.waitAcks(w, 30, 30*time.Second)
	start := time.Now()
	how := []string{"SIGHUP", "POST", "SIGHUP"}

	// 1. Renewal in place: same CA, new key, serial and expiry.
	for i, tn := range tns {
		old := tn.cur
		tn.install(t, ca1.issue(t, tn.id, 48*time.Hour))
		// Before the reload the node still presents the old one.
		tn.presents(t, "renewed files, not yet reloaded", old, probe1, roots1)
		tn.reloadTLS(t, how[i], "cluster.tls.cert", "cluster.tls.key")
		tn.presents(t, "after the renewal", tn.cur, probe1, roots1)
		c.waitAcks(w, 10, 30*time.Second)
	}
	renewed := time.Since(start)

	// 2. Bad reloads are kept out: the node keeps its certificate.
	bad := tns[1]
	good := bad.cur
	stray := ca1.issue(t, bad.id, 48*time.Hour)
	replaceFile(t, bad.keyFile, stray.keyPEM)
	bad.refusedReload(t, "a key that is not the certificate's", "cluster.tls.key", bad.keyFile, "is it the private key of cluster.tls.cert")
	bad.reloadVia("SIGHUP", "configuration reload refused")
	bad.presents(t, "after a refused reload (mismatched key)", good, probe1, roots1)
	replaceFile(t, bad.keyFile, good.keyPEM)
	if err := os.Rename(bad.certFile, bad.certFile+".moved"); err != nil {
		t.Fatal(err)
	}
	fields := bad.refusedReload(t, "a missing certificate file", "cluster.tls.cert")
	if len(fields) != 1 || fields[0].Key != "cluster.tls.cert" || !strings.Contains(fields[0].Message, "cannot be read") {
		t.Fatalf("a missing certificate file: fields %+v, want one for cluster.tls.cert saying it cannot be read", fields)
	}
	bad.presents(t, "after a refused reload (missing file)", good, probe1, roots1)
	if err := os.Rename(bad.certFile+".moved", bad.certFile); err != nil {
		t.Fatal(err)
	}
	// The files are back as they were in force: nothing to apply.
	bad.reloadTLS(t, "POST")
	c.waitAcks(w, 10, 30*time.Second)

	// 3. A new CA, in three steps, each on every node.
	rotStart := time.Now()
	ca2 := newTestCA(t, "muninn e2e CA 2")
	bundle := append(slices.Clone(ca1.pem), ca2.pem...)
	probe2 := ca2.issue(t, "e2e-probe-ca2", time.Hour).pair(t)
	roots12 := certPool(ca1, ca2)
	for i, tn := range tns { // a: trust both CAs
		replaceFile(t, tn.caFile, bundle)
		tn.reloadTLS(t, how[i], "cluster.tls.ca")
		tn.presents(t, "CA bundle, certificate from CA 1", tn.cur, probe2, roots12)
		c.waitAcks(w, 5, 30*time.Second)
	}
	for i, tn := range tns { // b: certificates from the new CA
		tn.install(t, ca2.issue(t, tn.id, 24*time.Hour))
		tn.reloadTLS(t, how[i], "cluster.tls.cert", "cluster.tls.key")
		tn.presents(t, "CA bundle, certificate from CA 2", tn.cur, probe1, roots12)
		c.waitAcks(w, 5, 30*time.Second)
	}
	for i, tn := range tns { // c: trust the new CA only
		replaceFile(t, tn.caFile, ca2.pem)
		tn.reloadTLS(t, how[i], "cluster.tls.ca")
		tn.presents(t, "CA 2 only", tn.cur, probe2, certPool(ca2))
		c.waitAcks(w, 5, 30*time.Second)
	}
	rotated := time.Since(rotStart)
	// A peer with a certificate from the old CA alone is refused.
	for _, tn := range tns {
		const refusal = "the peer's certificate is not signed by cluster.tls.ca"
		before := strings.Count(tn.logText(), refusal)
		_, herr, err := probeTLS(tn.node, probe1, certPool(ca2))
		if err != nil {
			t.Fatalf("probing %s with a certificate from the old CA: %v", tn.id, err)
		}
		if herr == nil || errors.Is(herr, mbp.ErrAuth) || !strings.Contains(herr.Error(), "remote error: tls: unknown certificate authority") {
			t.Fatalf("%s with a certificate from the retired CA: %v, want a TLS alert refusing it", tn.id, herr)
		}
		c.waitFor(tn.id+" to log the refusal", 15*time.Second, func() (bool, string) {
			return strings.Count(tn.logText(), refusal) > before, "no \"mbp connection refused: TLS failed\" naming the CA yet"
		})
	}
	c.waitCortex(ns, 30*time.Second)
	c.waitAcks(w, 30, 30*time.Second)

	acks, fails := w.snapshot()
	var lat []time.Duration
	for _, a := range acks {
		if !a.start.Before(start) {
			lat = append(lat, a.end.Sub(a.start))
		}
	}
	stall, _ := longestStall(acks)
	disconnects := 0
	for _, n := range ns {
		_, k := n.peerGaps(start)
		disconnects += k
	}
	t.Logf("TLS reloads under load (heartbeat %d ms): renewal of 3 nodes in %s, CA rotation (3 steps × 3 nodes) in %s; %d writes acknowledged since the first reload (latency %s), %d failed; longest gap between acks %s; %d peer disconnections",
		hb, renewed.Round(time.Millisecond), rotated.Round(time.Millisecond), len(lat), stats(lat), len(fails), stall.Round(time.Millisecond), disconnects)
	if len(fails) > 0 {
		t.Fatalf("%d writes failed during the reloads, e.g. %v", len(fails), fails[0].err)
	}
	if disconnects > 0 {
		t.Fatalf("%d peer disconnections during the reloads: the connections up must keep their TLS session", disconnects)
	}

	// 4. The reloaded settings carry real peer connections: a Lobe
	// restarted with the new files (certificate and CA 2 only) is accepted
	// by, and accepts, the nodes that were only reloaded.
	cx := c.waitCortex(ns, 30*time.Second)
	lobe := tns[slices.IndexFunc(tns, func(tn *tlsNode) bool { return tn.node != cx })]
	lobe.signal(syscall.SIGTERM)
	lobe.waitExit(30 * time.Second)
	restarted := time.Now()
	lobe.setTLSEnv(t)
	lobe.start()
	c.waitFor(lobe.id+" to reconnect to both peers over TLS", 30*time.Second, func() (bool, string) {
		var missing []string
		for _, o := range others(ns, lobe.node) {
			if !o.connectedSince(lobe.id, restarted) {
				missing = append(missing, o.id+" to "+lobe.id)
			}
			if !lobe.connectedSince(o.id, restarted) {
				missing = append(missing, lobe.id+" to "+o.id)
			}
		}
		return len(missing) == 0, "not connected: " + strings.Join(missing, ", ")
	})
	c.waitCortex(ns, 30*time.Second)
	c.waitAcks(w, 30, 30*time.Second)
	w.stop()
	acks, fails = w.snapshot()
	if len(fails) > 0 {
		t.Fatalf("%d writes failed around the restart of %s, e.g. %v", len(fails), lobe.id, fails[0].err)
	}
	for _, n := range ns {
		c.waitHasAll(n, "tlsreload", ackIDs(acks), 30*time.Second)
		if strings.Contains(n.logText(), "PRIVATE KEY") {
			t.Fatalf("%s's log shows key material", n.id)
		}
	}
	t.Logf("%s restarted with the CA 2 files: connected to both reloaded peers within %s; %d writes acknowledged in all, 0 failed",
		lobe.id, time.Since(restarted).Round(time.Millisecond), len(acks))
}

// setTLSEnv points cluster.tls at the node's files for the next process
// started (the harness writes the config file; the environment is read
// when the process starts; the files again on every reload).
func (tn *tlsNode) setTLSEnv(t *testing.T) {
	t.Setenv("MUNINN_CLUSTER_TLS_CERT", tn.certFile)
	t.Setenv("MUNINN_CLUSTER_TLS_KEY", tn.keyFile)
	t.Setenv("MUNINN_CLUSTER_TLS_CA", tn.caFile)
}

// connectedSince reports whether the node logged "mbp peer connected" for
// peer at or after since.
func (n *node) connectedSince(peer string, since time.Time) bool {
	sc := bufio.NewScanner(strings.NewReader(n.logText()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
			Peer string    `json:"peer"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "mbp peer connected" && rec.Peer == peer && !rec.Time.Before(since) {
			return true
		}
	}
	return false
}
