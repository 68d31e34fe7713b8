package node

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/muninndb/muninn/shell/config"
	"github.com/muninndb/muninn/shell/mbp"
)

// ApplyReload sets the log level and, when it changed, the admin token;
// on a standalone node the cluster keys have nothing to apply, and a TLS
// reload is refused.
func TestApplyReloadStandalone(t *testing.T) {
	n, err := Start(Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	old := config.Default()
	next := old
	next.LogLevel = "debug"
	next.AdminToken = "reloaded-token-0123456789"
	next.Cluster.Secret = "new-secret-0123456789abc"
	lv := new(slog.LevelVar)
	var token []string
	content, err := ApplyReload(n, old, next, []string{"log_level", "cluster.cluster_secret"}, lv, func(s string) { token = append(token, s) })
	if err != nil || len(content) != 0 {
		t.Fatalf("ApplyReload: %v, %v", content, err)
	}
	if lv.Level() != slog.LevelDebug {
		t.Fatalf("log level %v, want debug", lv.Level())
	}
	if len(token) != 0 {
		t.Fatalf("admin token set although admin_token did not change: %v", token)
	}
	if _, err := ApplyReload(n, old, next, []string{"admin_token"}, lv, func(s string) { token = append(token, s) }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(token, []string{"reloaded-token-0123456789"}) {
		t.Fatalf("admin token set to %v", token)
	}
	if closed, err := n.SetSecrets([]byte("x"), nil); err != nil || closed != 0 {
		t.Fatalf("SetSecrets on a standalone node: %d, %v", closed, err)
	}
	if _, err := n.SetTLS(mbp.TLSFiles{}); err == nil || !strings.Contains(err.Error(), "standalone") {
		t.Fatalf("SetTLS on a standalone node: %v", err)
	}
}

// writeTLS writes a CA and a node certificate and key signed by it.
func writeTLS(t *testing.T) mbp.TLSFiles {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "n1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	f := mbp.TLSFiles{CertFile: filepath.Join(dir, "n.crt"), KeyFile: filepath.Join(dir, "n.key"), CAFile: filepath.Join(dir, "ca.crt")}
	for name, b := range map[string][]byte{
		f.CertFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		f.KeyFile:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
		f.CAFile:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
	} {
		if err := os.WriteFile(name, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// In cluster mode: a TLS reload that fails applies nothing else (secrets
// and log level stay); a good one applies the secrets.
func TestApplyReloadClusterAllOrNothing(t *testing.T) {
	files := writeTLS(t)
	const oldS, newS = "old-secret-0123456789abc", "new-secret-0123456789abc"
	n, err := Start(Options{ID: "n1", Cluster: true, DataDir: t.TempDir(), Secret: []byte(oldS), BindAddr: freePort(t), TLS: &files})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	old := config.Default()
	old.Cluster.Enabled, old.Cluster.Secret = true, oldS
	old.Cluster.TLS = config.TLS{Cert: files.CertFile, Key: files.KeyFile, CA: files.CAFile}
	next := old
	next.LogLevel = "debug"
	next.Cluster.Secret, next.Cluster.SecretPrevious = newS, oldS
	live := []string{"log_level", "cluster.cluster_secret", "cluster.cluster_secret_previous"}
	lv := new(slog.LevelVar)

	// A key file that is not a key: the whole reload is refused.
	good, _ := os.ReadFile(files.KeyFile)
	if err := os.WriteFile(files.KeyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ApplyReload(n, old, next, live, lv, nil); err == nil || !strings.Contains(err.Error(), "cluster.tls.key") {
		t.Fatalf("bad key: %v", err)
	}
	if cur, prev := n.Secrets(); string(cur) != oldS || prev != nil || lv.Level() != slog.LevelInfo {
		t.Fatalf("a refused reload applied something: secrets %q/%q, level %v", cur, prev, lv.Level())
	}
	if err := os.WriteFile(files.KeyFile, good, 0o600); err != nil {
		t.Fatal(err)
	}
	content, err := ApplyReload(n, old, next, live, lv, nil)
	if err != nil || len(content) != 0 {
		t.Fatalf("good reload: %v, %v", content, err)
	}
	if cur, prev := n.Secrets(); string(cur) != newS || string(prev) != oldS || lv.Level() != slog.LevelDebug {
		t.Fatalf("after the reload: secrets %q/%q, level %v", cur, prev, lv.Level())
	}
}
