package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/api"
	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/config"
	"github.com/muninndb/muninn/shell/mbp"
	"github.com/muninndb/muninn/shell/node"
)

// StartCmd runs a node.
type StartCmd struct {
	Config   string   `help:"YAML config file (see docs/configuration.md)." env:"MUNINN_CONFIG" type:"path" placeholder:"FILE"`
	DataDir  string   `help:"Data directory (data_dir; default ./muninn-data)." placeholder:"DIR"`
	HTTPAddr string   `name:"http-addr" help:"REST API listen address (http_addr; default :8475)." placeholder:"HOST:PORT"`
	Set      []string `sep:"none" help:"Set any config key, e.g. --set cluster.node_id=muninn-01 (repeatable; highest precedence)." placeholder:"KEY=VALUE"`
}

// handoffTimeout bounds the Cortex's handoff at shutdown.
const handoffTimeout = 2 * time.Second

// flags maps the command line onto config keys (flags > env > file).
func (c *StartCmd) flags(g *Globals) (map[string]string, error) {
	f := map[string]string{}
	for _, kv := range c.Set {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageError{fmt.Errorf("--set %q: use KEY=VALUE, e.g. --set cluster.node_id=muninn-01", kv)}
		}
		f[k] = v
	}
	if c.DataDir != "" {
		f["data_dir"] = c.DataDir
	}
	if c.HTTPAddr != "" {
		f["http_addr"] = c.HTTPAddr
	}
	if g.cli.LogFormat != "" {
		f["log_format"] = g.cli.LogFormat
	}
	if g.cli.LogLevel != "" {
		f["log_level"] = g.cli.LogLevel
	}
	return f, nil
}

// nodeOptions maps a validated config onto the runner's options.
func nodeOptions(cfg config.Config, apiURL string, log *slog.Logger) node.Options {
	cl := cfg.Cluster
	o := node.Options{
		DataDir: cfg.DataDir, Cluster: cl.Enabled, APIAddr: apiURL, Logger: log,
		Heartbeat: cl.Heartbeat(), LeaseTTL: cl.LeaseTTL(), SnapshotRateMB: cl.SnapshotRateMB,
		ForwardWait: cl.ForwardWait(), DecayInterval: cl.DecayInterval(), DecayFactor: cl.DecayFactor,
		ArchiveDir: cfg.Backup.ArchiveDir, ArchiveInterval: cfg.Backup.ArchiveInterval(),
	}
	if cl.NodeID != "" {
		// A node keeps its id across mode switches: its data and
		// membership are recorded under it (standalone defaults to
		// "standalone").
		o.ID = core.NodeID(cl.NodeID)
	}
	if cl.Enabled {
		if cl.TLS.Enabled() {
			o.TLS = &mbp.TLSFiles{CertFile: cl.TLS.Cert, KeyFile: cl.TLS.Key, CAFile: cl.TLS.CA}
		}
		o.Kind = cl.Kind()
		o.Secret = []byte(cl.Secret)
		if cl.SecretPrevious != "" {
			o.SecretPrevious = []byte(cl.SecretPrevious)
		}
		o.BindAddr = cl.BindAddr
		o.AdvertiseAddr = cl.Advertise()
		o.Seeds = cl.PeerSeeds()
		o.Priority, o.NeverCortex = cl.Priority, cl.NeverCortex()
	}
	return o
}

// starting answers while the node opens its store and meets its seeds.
type starting struct{ h atomic.Pointer[api.Server] }

func (s *starting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := s.h.Load(); h != nil {
		h.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Retry-After", "1")
	w.WriteHeader(http.StatusServiceUnavailable)
	fmt.Fprintf(w, `{"error":{"code":%q,"message":"the node is starting (opening its store, meeting its seeds); retry shortly"}}`+"\n", apitypes.CodeStarting)
}

func (c *StartCmd) Run(g *Globals) error {
	flags, err := c.flags(g)
	if err != nil {
		return err
	}
	// The mode recorded by cluster enable/disable wins over the config's
	// (enable.go; docs/configuration.md).
	cfg, modeLines, err := recordedMode(c.Config, g.Env, flags)
	if err != nil {
		return fmt.Errorf("configuration:\n%v", indent(err.Error()))
	}
	// log_level can change on reload: the handler filters by logLevel.
	logLevel := new(slog.LevelVar)
	logLevel.Set(cfg.SlogLevel())
	log := slog.New(config.LevelHandler(newLogger(g.Err, cfg.LogFormat, slog.LevelDebug).Handler(), logLevel))
	// SIGHUP reloads the configuration (below); caught from now on so that
	// one sent while the node starts does not kill it.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
	for _, l := range modeLines {
		log.Warn(l)
	}

	// Listen first: a port in use fails at once, and peers meeting this
	// node during discovery get a clear "starting" answer.
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http_addr %s: %w (pick a free port with --http-addr)", cfg.HTTPAddr, err)
	}
	apiURL := cfg.AdvertiseURL()
	if apiURL == "" {
		host, _, _ := net.SplitHostPort(cfg.HTTPAddr)
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		actual := cfg
		actual.HTTPAddr = net.JoinHostPort(host, port)
		if apiURL = actual.AdvertiseURL(); apiURL == "" {
			apiURL = "http://" + net.JoinHostPort("localhost", port)
		}
	}
	gate := &starting{}
	// Header, body and idle timeouts and a bound on open connections, so
	// slow or idle clients cannot hold the node (docs/api.md, Connection limits).
	sg := &switchGate{next: gate}
	srv := api.NewHTTPServer(sg, api.Limits{}, log)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(api.LimitListener(ln, api.DefaultMaxConns)) }()

	opts := nodeOptions(cfg, apiURL, log)
	stop := g.stop
	if stop == nil {
		sig := make(chan os.Signal, 2)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		defer signal.Stop(sig)
		ch := make(chan struct{})
		go func() {
			s := <-sig
			log.Info("received " + s.String() + ", shutting down")
			close(ch)
		}()
		stop = ch
	}

	type started struct {
		n   *node.Node
		err error
	}
	startc := make(chan started, 1)
	go func() {
		n, err := node.Start(opts)
		startc <- started{n, err}
	}()
	var n *node.Node
	select {
	case s := <-startc:
		if s.err != nil {
			srv.Close()
			return s.err
		}
		n = s.n
	case <-stop:
		srv.Close()
		// The store is crash-safe; a node interrupted while meeting its
		// seeds has written nothing that needs a clean close.
		return errors.New("interrupted while starting")
	}
	apiOpts := api.Options{AdminToken: cfg.AdminToken, Logger: log}
	a := api.New(n, apiOpts)
	gate.h.Store(a)
	// cluster enable/disable switch the running node (enable.go).
	ms := &modeSwitcher{gate: sg, api: gate, apiURL: apiURL, apiOpts: apiOpts, log: log, n: n, a: a,
		changed: make(chan struct{}, 1), fatal: make(chan error, 1),
		load: func(over map[string]string) (config.Config, error) {
			return config.Load(c.Config, g.Env, withFlags(flags, over))
		}}
	n.SetSwitcher(ms.switchMode)
	// SIGHUP and POST /v1/admin/reload re-read the configuration and apply
	// what can change live (docs/configuration.md, "Reloading without a
	// restart").
	rl := config.NewReloader(cfg, func() (config.Config, error) {
		cfg, _, err := recordedMode(c.Config, g.Env, flags)
		return cfg, err
	}, func(old, next config.Config, live []string) ([]string, error) {
		n, a := ms.current()
		return node.ApplyReload(n, old, next, live, logLevel, a.SetAdminToken)
	}, log)
	a.SetReload(rl.Reload)
	// A mode switch's new API handler gets the same hooks and the admin
	// token as last reloaded.
	ms.setup = func(n *node.Node, a *api.Server) {
		cur := rl.Current()
		a.SetReload(rl.Reload)
		a.SetAdminToken(cur.AdminToken)
		if p := cur.Cluster.SecretPrevious; p != "" {
			if _, err := n.SetSecrets([]byte(cur.Cluster.Secret), []byte(p)); err != nil {
				log.Error("cluster.cluster_secret_previous not applied", "err", err)
			}
		}
	}
	mode := "standalone"
	if opts.Cluster {
		mode = "cluster"
	}
	log.Info(fmt.Sprintf("serving the REST API on %s (%s)", ln.Addr(), apiURL), "mode", mode, "node_id", n.ID(), "data_dir", cfg.DataDir)

	var runErr error
	for running := true; running; {
		n, _ := ms.current()
		select {
		case <-stop:
			running = false
		case err := <-serveErr:
			runErr, running = fmt.Errorf("http server: %w", err), false
		case err := <-n.Fatal():
			runErr, running = fmt.Errorf("the node stopped: %w (check the disk and the data directory %s, then restart)", err, cfg.DataDir), false
		case err := <-ms.fatal:
			runErr, running = err, false
		case <-hup:
			_, _ = rl.Reload("SIGHUP") // logs what it applied, or why not
		case <-ms.changed:
			// A mode switch: watch the new node.
		}
	}
	ms.mu.Lock() // no switch from here on
	n, a = ms.current()
	shutdown(n, a, srv, log)
	return runErr
}

// dataVoterConnected reports whether another data voter (a possible
// Cortex to hand off to) is connected to this node.
func dataVoterConnected(snap *node.Snapshot) bool {
	for _, m := range snap.Members {
		if !m.DataVoter() || m.ID == snap.Core.ID {
			continue
		}
		for _, p := range snap.Peers {
			if p.ID == m.ID && p.Connected {
				return true
			}
		}
	}
	return false
}

// shutdown stops the node cleanly: a Cortex with another data voter hands
// off first (bounded by handoffTimeout), then the API drains and the node
// closes.
func shutdown(n *node.Node, a *api.Server, srv *http.Server, log *slog.Logger) {
	snap := n.Status()
	st := snap.Core
	if st.Role == core.RoleCortex && n.Options().Cluster && st.Members.DataVoters() > 1 && !dataVoterConnected(snap) {
		// The last node of a full stop: nobody to hand off to.
		log.Info("this node is the Cortex and no other data voter is connected: shutting down without a handoff")
	} else if st.Role == core.RoleCortex && n.Options().Cluster && st.Members.DataVoters() > 1 {
		log.Info("this node is the Cortex: handing off before shutting down")
		ctx, cancel := context.WithTimeout(context.Background(), handoffTimeout)
		err := n.Transfer(ctx, "")
		cancel()
		if err != nil {
			log.Warn("handoff before shutdown failed; the cluster will elect a new Cortex after the SDOWN window", "err", err)
		} else {
			to := n.Status().Core.Cortex
			for deadline := time.Now().Add(500 * time.Millisecond); (to == "" || to == n.ID()) && time.Now().Before(deadline); to = n.Status().Core.Cortex {
				time.Sleep(10 * time.Millisecond)
			}
			log.Info(fmt.Sprintf("handed off the Cortex role to %s", orDash(string(to))))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		srv.Close()
	}
	a.Close()
	n.Close()
	log.Info("stopped")
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}
