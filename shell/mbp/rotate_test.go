package mbp

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
)

const (
	oldSecret = "old-cluster-secret-0123456789"
	newSecret = "new-cluster-secret-9876543210"
)

type rotResult struct {
	used []byte
	err  error
}

// runRotHandshake runs both sides with the unexported handshakes, which
// also return the secret each side authenticated the connection with.
func runRotHandshake(t *testing.T, dc, ac HandshakeConfig) (rotResult, rotResult) {
	t.Helper()
	d, a := tcpPair(t)
	ch := make(chan rotResult, 1)
	go func() {
		_, used, err := acceptHandshake(a, ac)
		ch <- rotResult{used, err}
	}()
	_, used, err := dialHandshake(d, dc)
	return rotResult{used, err}, <-ch
}

func rotConfig(id core.NodeID, cur, prev string, cluster uint64) HandshakeConfig {
	hc := hsConfig(id, cur)
	if prev != "" {
		hc.Previous = []byte(prev)
	}
	hc.Local.ClusterID = cluster
	return hc
}

// During a rotation a node holding (new, previous=old) and one still on the
// old secret, or already on the new one only, authenticate each other in
// both directions, with the secret both hold; nodes sharing no secret do
// not.
func TestHandshakePreviousSecret(t *testing.T) {
	const other = "some-other-secret-000000000"
	for _, c := range []struct {
		name                     string
		dCur, dPrev, lCur, lPrev string
		want                     string // "" = refused
	}{
		{"step 1: rotated dialer, old listener", newSecret, oldSecret, oldSecret, "", oldSecret},
		{"step 1: old dialer, rotated listener", oldSecret, "", newSecret, oldSecret, oldSecret},
		{"between steps: both rotated use the new secret", newSecret, oldSecret, newSecret, oldSecret, newSecret},
		{"step 2: new-only dialer, rotated listener", newSecret, "", newSecret, oldSecret, newSecret},
		{"step 2: rotated dialer, new-only listener", newSecret, oldSecret, newSecret, "", newSecret},
		{"after step 2: old dialer refused", oldSecret, "", newSecret, "", ""},
		{"after step 2: old listener refused", newSecret, "", oldSecret, "", ""},
		{"no shared secret, both rotating", other, oldSecret + "x", newSecret, oldSecret, ""},
		{"previous equal to current", newSecret, newSecret, newSecret, "", newSecret},
	} {
		for _, cluster := range []uint64{0, 0x1234} { // with and without the hello's cluster id trailer
			t.Run(c.name, func(t *testing.T) {
				rd, ra := runRotHandshake(t, rotConfig("node-a", c.dCur, c.dPrev, cluster), rotConfig("node-b", c.lCur, c.lPrev, cluster))
				if c.want == "" {
					if !errors.Is(rd.err, ErrAuth) || !errors.Is(ra.err, ErrAuth) {
						t.Fatalf("want ErrAuth on both ends, got dialer %v, listener %v", rd.err, ra.err)
					}
					return
				}
				if rd.err != nil || ra.err != nil {
					t.Fatalf("dialer %v, listener %v", rd.err, ra.err)
				}
				if string(rd.used) != c.want || string(ra.used) != c.want {
					t.Fatalf("authenticated with dialer %q, listener %q; want %q on both", rd.used, ra.used, c.want)
				}
			})
		}
	}
}

// peerSecret is the secret tr's control connection to id authenticated with.
func peerSecret(tr *Transport, id core.NodeID) []byte {
	tr.mu.RLock()
	defer tr.mu.RUnlock()
	if p := tr.peers[id]; p != nil && p.conn != nil {
		return p.conn.secret
	}
	return nil
}

// The three-step rotation on live transports: step 1 closes nothing and
// new connections work in every mixed pair; step 2 closes the connections
// authenticated with the retired secret, which come back with the new one;
// at the end a handshake with the old secret is refused.
func TestTransportSecretRotation(t *testing.T) {
	leakCheck(t)
	a, la := newTestTransport(t, "node-a", oldSecret)
	b, _ := newTestTransport(t, "node-b", oldSecret)
	c, _ := newTestTransport(t, "node-c", oldSecret)
	_ = a.Connect(b.Addr())
	_ = a.Connect(c.Addr())
	_ = b.Connect(c.Addr())
	all := []*Transport{a, b, c}
	meshUp := func(want string) func() bool {
		return func() bool {
			for _, x := range all {
				for _, y := range all {
					if x != y && (!connected(x, y.cfg.ID) || (want != "" && string(peerSecret(x, y.cfg.ID)) != want)) {
						return false
					}
				}
			}
			return true
		}
	}
	waitFor(t, "mesh up on the old secret", meshUp(oldSecret))

	// Step 1, one node at a time: nothing is closed.
	for _, x := range all {
		n, err := x.SetSecrets([]byte(newSecret), []byte(oldSecret))
		if err != nil || n != 0 {
			t.Fatalf("step 1 on %s: closed %d, %v", x.cfg.ID, n, err)
		}
		if cur, prev := x.Secrets(); string(cur) != newSecret || string(prev) != oldSecret {
			t.Fatalf("Secrets() = %q, %q", cur, prev)
		}
		if !meshUp(oldSecret)() {
			t.Fatalf("a connection dropped in step 1 on %s", x.cfg.ID)
		}
	}
	// A node joining mid-rotation on the old secret only, and one on the
	// new secret only, are both accepted.
	d, _ := newTestTransport(t, "node-d", oldSecret)
	e, _ := newTestTransport(t, "node-e", newSecret)
	_ = d.Connect(a.Addr())
	_ = a.Connect(e.Addr())
	waitFor(t, "old-only and new-only joiners connected", func() bool {
		return connected(a, "node-d") && connected(a, "node-e") &&
			string(peerSecret(a, "node-d")) == oldSecret && string(peerSecret(a, "node-e")) == newSecret
	})
	d.Close()
	e.Close()

	// Step 2 on a: its connections on the old secret are closed; they come
	// back on the new one.
	n, err := a.SetSecrets([]byte(newSecret), nil)
	if err != nil || n < 2 {
		t.Fatalf("step 2 on node-a: closed %d (want at least the 2 to node-b and node-c), %v", n, err)
	}
	waitFor(t, "node-a's connections back on the new secret", func() bool {
		return string(peerSecret(a, "node-b")) == newSecret && string(peerSecret(a, "node-c")) == newSecret &&
			string(peerSecret(b, "node-a")) == newSecret && string(peerSecret(c, "node-a")) == newSecret
	})
	if !strings.Contains(la.String(), "retired cluster secret") {
		t.Fatalf("node-a did not log the closed connections:\n%s", la.String())
	}
	for _, x := range []*Transport{b, c} {
		if _, err := x.SetSecrets([]byte(newSecret), nil); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "mesh up on the new secret", meshUp(newSecret))

	// The old secret is refused by every node.
	for _, x := range all {
		nc := rawDial(t, x.Addr())
		_, err := DialHandshake(nc, hsConfig("node-old", oldSecret))
		nc.Close()
		if !errors.Is(err, ErrAuth) {
			t.Fatalf("old secret against %s: %v, want ErrAuth", x.cfg.ID, err)
		}
	}
	// An invalid secret changes nothing.
	if _, err := a.SetSecrets([]byte("short"), nil); err == nil {
		t.Fatal("a short secret was accepted")
	}
	if _, err := a.SetSecrets([]byte(newSecret), []byte("short")); err == nil || !strings.Contains(err.Error(), "cluster_secret_previous") {
		t.Fatalf("a short previous secret: %v", err)
	}
	if cur, prev := a.Secrets(); string(cur) != newSecret || prev != nil {
		t.Fatalf("a refused SetSecrets changed the secrets to %q, %q", cur, prev)
	}
}

// peerCertSerial is the serial of the certificate tr's peer id presented.
func peerCertSerial(t *testing.T, tr *Transport, id core.NodeID) string {
	t.Helper()
	st := tlsState(t, tr, id)
	return st.PeerCertificates[0].SerialNumber.String()
}

func certSerial(t *testing.T, certPEM []byte) string {
	t.Helper()
	blk, _ := pem.Decode(certPEM)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.String()
}

// A certificate renewed in place and a CA bundle replaced are picked up by
// new handshakes; connections up keep working; a bad reload keeps the
// configuration in force.
func TestTransportTLSReload(t *testing.T) {
	leakCheck(t)
	ca := newTestCA(t, "cluster CA")
	files := tlsFiles(t, ca, "node-a")
	firstPEM, _ := readPair(t, files)
	a, _ := newTestTransport(t, "node-a", testSecret, withTLS(files))
	b, _ := newTestTransport(t, "node-b", testSecret, withTLS(tlsFiles(t, ca, "node-b")))
	_ = b.Connect(a.Addr())
	waitFor(t, "b connected", func() bool { return connected(b, "node-a") })
	if got, want := peerCertSerial(t, b, "node-a"), certSerial(t, firstPEM); got != want {
		t.Fatalf("node-a presented serial %s, want %s", got, want)
	}

	// Nothing changed: nothing reported.
	if changed, err := a.SetTLS(*files); err != nil || len(changed) != 0 {
		t.Fatalf("reload of the same files: %v, %v", changed, err)
	}

	// Renew node-a's certificate and key in place.
	certPEM, keyPEM := ca.issue(t, "node-a", leafOpts{})
	writeOver(t, files.CertFile, certPEM)
	writeOver(t, files.KeyFile, keyPEM)
	changed, err := a.SetTLS(*files)
	if err != nil || !slices.Equal(changed, []string{"cluster.tls.cert", "cluster.tls.key"}) {
		t.Fatalf("renewal: changed %v, %v", changed, err)
	}
	// A new handshake sees the new certificate; the old connection is up.
	c, _ := newTestTransport(t, "node-c", testSecret, withTLS(tlsFiles(t, ca, "node-c")))
	_ = c.Connect(a.Addr())
	waitFor(t, "c connected", func() bool { return connected(c, "node-a") })
	if got, want := peerCertSerial(t, c, "node-a"), certSerial(t, certPEM); got != want {
		t.Fatalf("after the reload node-a presented serial %s, want the renewed %s", got, want)
	}
	if !connected(b, "node-a") || peerCertSerial(t, b, "node-a") != certSerial(t, firstPEM) {
		t.Fatal("the connection up before the reload did not survive it")
	}

	// A key that does not match the certificate: refused, nothing changes.
	_, otherKey := ca.issue(t, "node-a", leafOpts{})
	writeOver(t, files.KeyFile, otherKey)
	if _, err := a.SetTLS(*files); err == nil || !strings.Contains(err.Error(), "cluster.tls.key") {
		t.Fatalf("mismatched key: %v", err)
	}
	writeOver(t, files.KeyFile, keyPEM)

	// A new CA: node-a moves to a certificate of CA2 and trusts both; the
	// nodes trusting only CA1 now refuse new handshakes with it, which
	// shows the CA and certificate in use are the reloaded ones.
	ca2 := newTestCA(t, "cluster CA 2")
	c2, k2 := ca2.issue(t, "node-a", leafOpts{})
	writeOver(t, files.CertFile, c2)
	writeOver(t, files.KeyFile, k2)
	writeOver(t, files.CAFile, append(append([]byte{}, ca.pem...), ca2.pem...))
	if changed, err := a.SetTLS(*files); err != nil || len(changed) != 3 {
		t.Fatalf("CA change: %v, %v", changed, err)
	}
	dd, dlog := newTestTransport(t, "node-d", testSecret, withTLS(tlsFiles(t, ca, "node-d")))
	_ = dd.Connect(a.Addr())
	waitFor(t, "node-d refuses node-a's CA2 certificate", func() bool {
		return strings.Contains(dlog.String(), "not signed by cluster.tls.ca")
	})
	// A node of CA2 is accepted by node-a (it trusts CA2 now).
	e, _ := newTestTransport(t, "node-e", testSecret, withTLS(tlsFiles(t, ca2, "node-e")))
	_ = a.Connect(e.Addr())
	waitFor(t, "node-a connected to a node of CA2", func() bool { return connected(a, "node-e") })

	// Turning TLS on by reload is refused.
	plain, _ := newTestTransport(t, "node-p", testSecret)
	if _, err := plain.SetTLS(*files); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("SetTLS on a plaintext transport: %v", err)
	}
}

func readPair(t *testing.T, f *TLSFiles) ([]byte, []byte) {
	t.Helper()
	c, err := os.ReadFile(f.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	k, err := os.ReadFile(f.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

func writeOver(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// rawDial opens a plain TCP connection to addr, bounded by a deadline.
func rawDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	return nc
}

// A connection whose handshake completed with a secret retired meanwhile
// is closed when it attaches, and an authenticated snapshot connection
// (not owned by a peer) is closed by the retirement.
func TestTransportRetiredSecretRaces(t *testing.T) {
	leakCheck(t)
	a, _ := newTestTransport(t, "node-a", oldSecret)
	if _, err := a.SetSecrets([]byte(newSecret), []byte(oldSecret)); err != nil {
		t.Fatal(err)
	}

	// A snapshot-like connection authenticated with the old secret.
	d1, a1 := tcpPair(t)
	if !a.track(a1) {
		t.Fatal("not tracked")
	}
	if err := a.authenticated(a1, []byte(oldSecret)); err != nil {
		t.Fatal(err)
	}
	// One authenticated with the new secret stays.
	d2, a2 := tcpPair(t)
	a.track(a2)
	if err := a.authenticated(a2, []byte(newSecret)); err != nil {
		t.Fatal(err)
	}
	n, err := a.SetSecrets([]byte(newSecret), nil)
	if err != nil || n != 1 {
		t.Fatalf("retirement closed %d connections (%v), want the 1 on the old secret", n, err)
	}
	expectClosed(t, d1)
	_ = d2.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := d2.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the connection on the new secret was closed: %v", err)
	}
	a.untrack(a2)

	// A handshake that completed with the old secret after its retirement.
	if err := a.authenticated(a2, []byte(oldSecret)); !errors.Is(err, errRetired) {
		t.Fatalf("authenticated with a retired secret: %v", err)
	}
	d3, a3 := tcpPair(t)
	if c := a.attach(a3, Hello{ID: "node-x", Kind: core.KindAuto, Purpose: PurposeControl}, false, []byte(oldSecret)); c != nil {
		t.Fatal("a connection on a retired secret was attached")
	}
	expectClosed(t, d3)
	if connected(a, "node-x") {
		t.Fatal("node-x connected")
	}
}
