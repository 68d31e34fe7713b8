package config

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const (
	reloadOld = "old-secret-0123456789abcdef"
	reloadNew = "new-secret-fedcba9876543210"
)

func reloadYAML(extra string) string {
	return "data_dir: /tmp/muninn-reload-test\ncluster:\n  enabled: true\n  node_id: n1\n  bind_addr: 127.0.0.1:8474\n" + extra
}

func TestDiffLiveAndRestart(t *testing.T) {
	old, err := Parse("f.yaml", []byte(reloadYAML("  cluster_secret: "+reloadOld+"\n")), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	next, err := Parse("f.yaml", []byte("log_level: debug\nadmin_token: "+reloadNew+"\n"+
		strings.Replace(reloadYAML("  cluster_secret: "+reloadNew+"\n  cluster_secret_previous: "+reloadOld+"\n"), "127.0.0.1:8474", "127.0.0.1:9474", 1)), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ch := Diff(old, next)
	if want := []string{"log_level", "admin_token", "cluster.cluster_secret", "cluster.cluster_secret_previous"}; !slices.Equal(ch.Live, want) {
		t.Errorf("live %v, want %v", ch.Live, want)
	}
	// advertise_addr is derived from bind_addr, so it changes with it.
	if want := []string{"cluster.bind_addr", "cluster.advertise_addr"}; !slices.Equal(ch.Restart, want) {
		t.Errorf("restart %v, want %v", ch.Restart, want)
	}
	if d := Diff(old, old); len(d.Live)+len(d.Restart) != 0 {
		t.Errorf("no change reported as %+v", d)
	}

	// TLS paths change live; turning TLS on takes a restart.
	dir := t.TempDir()
	for _, f := range []string{"a.crt", "a.key", "ca.crt", "b.crt"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tlsOn := func(cert string) Config {
		c := old
		c.Cluster.TLS = TLS{Cert: filepath.Join(dir, cert), Key: filepath.Join(dir, "a.key"), CA: filepath.Join(dir, "ca.crt")}
		return c
	}
	if ch := Diff(old, tlsOn("a.crt")); len(ch.Live) != 0 || !slices.Equal(ch.Restart, []string{"cluster.tls.cert", "cluster.tls.key", "cluster.tls.ca"}) {
		t.Errorf("TLS turned on: %+v", ch)
	}
	if ch := Diff(tlsOn("a.crt"), tlsOn("b.crt")); !slices.Equal(ch.Live, []string{"cluster.tls.cert"}) || len(ch.Restart) != 0 {
		t.Errorf("TLS certificate path changed: %+v", ch)
	}
}

// reloadRig is a Reloader over a file the test rewrites.
type reloadRig struct {
	path    string
	r       *Reloader
	log     *bytes.Buffer
	applied [][]string // live keys of each apply call
	fail    error      // returned by the next apply
}

func newReloadRig(t *testing.T, content string) *reloadRig {
	t.Helper()
	rg := &reloadRig{path: filepath.Join(t.TempDir(), "muninn.yaml"), log: &bytes.Buffer{}}
	rg.write(t, content)
	cur, err := Load(rg.path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rg.r = NewReloader(cur, func() (Config, error) { return Load(rg.path, nil, nil) },
		func(old, next Config, live []string) ([]string, error) {
			if rg.fail != nil {
				return nil, rg.fail
			}
			rg.applied = append(rg.applied, live)
			return nil, nil
		}, slog.New(slog.NewTextHandler(rg.log, nil)))
	return rg
}

func (rg *reloadRig) write(t *testing.T, content string) {
	t.Helper()
	if err := os.WriteFile(rg.path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestReloaderAppliesLiveKeysOnly(t *testing.T) {
	rg := newReloadRig(t, reloadYAML("  cluster_secret: "+reloadOld+"\n"))
	rg.write(t, "log_level: warn\n"+strings.Replace(reloadYAML("  cluster_secret: "+reloadNew+"\n  cluster_secret_previous: "+reloadOld+"\n"), "127.0.0.1:8474", "127.0.0.1:9474", 1))
	res, err := rg.r.Reload("test")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"log_level", "cluster.cluster_secret", "cluster.cluster_secret_previous"}; !slices.Equal(res.Changed, want) {
		t.Errorf("changed %v, want %v", res.Changed, want)
	}
	if want := []string{"cluster.bind_addr", "cluster.advertise_addr"}; !slices.Equal(res.Restart, want) {
		t.Errorf("restart %v, want %v", res.Restart, want)
	}
	cur := rg.r.Current()
	if cur.LogLevel != "warn" || cur.Cluster.Secret != reloadNew || cur.Cluster.SecretPrevious != reloadOld {
		t.Errorf("live keys not in force: %s", cur)
	}
	if cur.Cluster.BindAddr != "127.0.0.1:8474" {
		t.Errorf("cluster.bind_addr applied without a restart: %s", cur.Cluster.BindAddr)
	}
	if !strings.Contains(rg.log.String(), "restart to apply: cluster.bind_addr, cluster.advertise_addr") {
		t.Errorf("log does not say what needs a restart:\n%s", rg.log)
	}
	// Step 2 of the rotation: removing the previous secret is a change.
	rg.write(t, "log_level: warn\n"+reloadYAML("  cluster_secret: "+reloadNew+"\n"))
	res, err = rg.r.Reload("test")
	if err != nil || !slices.Equal(res.Changed, []string{"cluster.cluster_secret_previous"}) || len(res.Restart) != 0 {
		t.Fatalf("step 2: %+v, %v", res, err)
	}
	for _, s := range []string{reloadOld, reloadNew} {
		if strings.Contains(rg.log.String(), s) {
			t.Fatalf("the log shows a secret:\n%s", rg.log)
		}
	}
}

// A reload that does not load, validate or apply changes nothing and says
// why, naming the key and the fix.
func TestReloaderKeepsSettingsOnBadReload(t *testing.T) {
	rg := newReloadRig(t, reloadYAML("  cluster_secret: "+reloadOld+"\n"))
	before := rg.r.Current()
	for _, c := range []struct {
		name, content string
		want          []string
	}{
		{"invalid YAML", "log_level: debug\ncluster: [\n", []string{"is not valid YAML"}},
		{"invalid value", "log_level: debug\n" + reloadYAML("  cluster_secret: "+reloadNew+"\n  heartbeat_ms: 1\n"), []string{"cluster.heartbeat_ms", "between 10 and 60000"}},
		{"short previous secret", reloadYAML("  cluster_secret: " + reloadNew + "\n  cluster_secret_previous: short\n"), []string{"cluster.cluster_secret_previous", "too short"}},
		{"unknown key", "log_levle: debug\n" + reloadYAML("  cluster_secret: "+reloadOld+"\n"), []string{"did you mean log_level?"}},
	} {
		rg.write(t, c.content)
		_, err := rg.r.Reload("test")
		if !errors.Is(err, ErrReload) {
			t.Fatalf("%s: %v, want ErrReload", c.name, err)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) || !strings.Contains(rg.log.String(), w) {
				t.Errorf("%s: %q missing from the error or the log:\n%v\n%s", c.name, w, err, rg.log)
			}
		}
		if cur := rg.r.Current(); cur.String() != before.String() || cur.Cluster.Secret != before.Cluster.Secret {
			t.Fatalf("%s: settings changed by a refused reload", c.name)
		}
	}
	if len(rg.applied) != 0 {
		t.Fatalf("apply called on refused reloads: %v", rg.applied)
	}
	// An apply that fails keeps the settings too.
	rg.write(t, "log_level: debug\n"+reloadYAML("  cluster_secret: "+reloadOld+"\n"))
	rg.fail = errors.New("cluster.tls.key: not the key of cluster.tls.cert")
	if _, err := rg.r.Reload("test"); !errors.Is(err, ErrReload) || !strings.Contains(err.Error(), "cluster.tls.key") {
		t.Fatalf("failed apply: %v", err)
	}
	if rg.r.Current().LogLevel != before.LogLevel {
		t.Fatal("a failed apply changed the settings in force")
	}
	rg.fail = nil
	if res, err := rg.r.Reload("test"); err != nil || !slices.Equal(res.Changed, []string{"log_level"}) {
		t.Fatalf("fixed reload: %+v, %v", res, err)
	}
	if strings.Contains(rg.log.String(), reloadNew) || strings.Contains(rg.log.String(), reloadOld) {
		t.Fatalf("the log shows a secret:\n%s", rg.log)
	}
}
