package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/muninndb/muninn/shell/mbp"
)

// The rotate-kill nemesis (netns runtime): kill -9 one node (the seed
// picks the Cortex or a data Lobe) and, while it is down, rotate
// cluster_secret on the others as docs/clustering.md ("Rotating
// cluster_secret") says, through the reload (docs/protocol.md, rule 20):
//
//  1. every node's config file gets cluster_secret NEW and
//     cluster_secret_previous OLD, and every running node is reloaded
//     (POST /v1/admin/reload); the killed node is started again with
//     that config;
//  2. once the cluster is healthy, cluster_secret_previous is removed
//     from every config and every node reloaded again.
//
// What must hold, else an anomaly named rotate-kill: every reload answers
// 200 with the secret keys among those changed and none of them under
// restart_required; each node then proves, in an MBP handshake the
// harness starts (and never completes), the secrets it should hold: new
// and old after step 1, new only after step 2; the restarted node rejoins
// and the cluster is healthy within 20 heartbeats + 10 s of each step;
// writes are acknowledged again after each step; the history checkers
// stay clean.
//
// The spares' config files are rewritten too, so a later membership
// nemesis on the same cluster starts them with the cluster's secret; the
// cluster keeps the new secret for its later segments. A topology brought
// up again (each soak round) gets fresh config files with the run's
// secret: nothing carries the rotated one over.

// secretKey and previousKey are the config keys rotated (under cluster:).
const (
	secretKey   = "cluster_secret"
	previousKey = "cluster_secret_previous"
)

// injectRotateKill runs the nemesis.
func (s *segment) injectRotateKill(ctx context.Context, cortex string, epoch uint64) (Fault, error) {
	c := s.c
	s.memb = &Membership{}
	f := Fault{Kind: s.nemesis, Cortex: cortex, Epoch: epoch}
	rt, err := s.opsRuntime()
	if err != nil {
		return f, err
	}
	victim := cortex
	if lobes := dataLobes(c.Topo, cortex); len(lobes) > 0 && s.rng.IntN(2) == 0 {
		victim = lobes[s.rng.IntN(len(lobes))]
	}
	f.Targets, f.FailsOver = []string{victim}, victim == cortex
	hb := time.Duration(s.o.HeartbeatMs) * time.Millisecond
	bound := 20*hb + 10*time.Second
	b, err := os.ReadFile(rt.confPath(victim))
	if err != nil {
		return f, err
	}
	old, _, err := secretsOf(string(b))
	if err != nil {
		return f, fmt.Errorf("%s: %w", rt.confPath(victim), err)
	}
	secret := randomHex(32)

	t0 := s.w.now()
	if err := c.rt.Do(ctx, "kill", victim); err != nil {
		return f, err
	}
	if _, ok, err := c.rt.WaitExited(ctx, victim, 10*time.Second); !ok {
		return f, fmt.Errorf("%s still running 10 s after SIGKILL (%v)", victim, err)
	}
	s.memb.step(s, t0, "kill -9 %s", victim)
	// Rotate only once the others have noticed: past the SDOWN window (3
	// heartbeats), and after the election when the Cortex was killed.
	if victim == cortex {
		if _, _, err := s.majorityNode(ctx, victim, epoch, bound); err != nil {
			return f, err
		}
	}
	sleepFor(ctx, 4*hb)

	// Step 1: both secrets everywhere; the running nodes reload.
	t1 := s.w.now()
	if err := s.writeSecrets(rt, secret, old); err != nil {
		return f, err
	}
	running := slices.DeleteFunc(slices.Clone(c.Topo.Nodes), func(n Node) bool { return n.ID == victim })
	s.reloadAll(ctx, running, []string{"cluster." + secretKey, "cluster." + previousKey})
	s.checkProofs(ctx, running, secret, old, true, "after step 1")
	s.memb.step(s, t1, "step 1: %s and %s in every config, %d running nodes reloaded", secretKey, previousKey, len(running))
	s.writesAgain(ctx, t1, bound, "step 1 (reload with both secrets)")

	t2 := s.w.now()
	if err := c.rt.Do(ctx, "start", victim); err != nil {
		return f, err
	}
	if err := c.WaitHealthy(ctx, bound); err != nil {
		return f, fmt.Errorf("%s restarted with both secrets: %w", victim, err)
	}
	if n, ok := c.Topo.Node(victim); ok {
		s.checkProofs(ctx, []Node{n}, secret, old, true, "restarted with both secrets")
	}
	s.memb.step(s, t2, "restarted %s with both secrets; cluster healthy", victim)
	s.writesAgain(ctx, t2, bound, "restarting "+victim)

	// Step 2: the new secret only.
	t3 := s.w.now()
	if err := s.writeSecrets(rt, secret, ""); err != nil {
		return f, err
	}
	s.reloadAll(ctx, c.Topo.Nodes, []string{"cluster." + previousKey})
	// The connections authenticated with the old secret are closed and
	// redialled (rule 20): healthy still once the SDOWN window has passed.
	sleepFor(ctx, 4*hb)
	if err := c.WaitHealthy(ctx, bound); err != nil {
		return f, fmt.Errorf("after step 2 (%s removed): %w", previousKey, err)
	}
	s.checkProofs(ctx, c.Topo.Nodes, secret, old, false, "after step 2")
	s.memb.step(s, t3, "step 2: %s removed from every config, %d nodes reloaded; cluster healthy", previousKey, len(c.Topo.Nodes))
	s.writesAgain(ctx, t3, bound, "step 2 (the old secret removed)")
	f.Note = fmt.Sprintf("kill -9 %s; cluster_secret rotated while it was down; restarted with both secrets; old secret removed", victim)
	return f, nil
}

// writeSecrets rewrites the config file of every node and spare with the
// secrets given (previous "" removes cluster_secret_previous).
func (s *segment) writeSecrets(rt opsRuntime, secret, previous string) error {
	for _, n := range append(append(slices.Clone(s.c.Topo.Nodes), s.c.Topo.Spares...), s.retiring...) {
		p := rt.confPath(n.ID)
		b, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return err
		}
		conf, err := setSecrets(string(b), secret, previous)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if err := writeFileSync(p, []byte(conf), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// reloadAll reloads each node in turn; a reload that fails or does not
// apply the keys want is an anomaly.
func (s *segment) reloadAll(ctx context.Context, nodes []Node, want []string) {
	for _, n := range nodes {
		r, err := s.api.Do(ctx, n, "POST", "/v1/admin/reload", nil, nil, 10*time.Second)
		why := ""
		if err != nil {
			why = err.Error()
		} else {
			why = checkReload(r.Status, r.Body, want)
		}
		if why != "" {
			s.nemAnomalies = append(s.nemAnomalies, Anomaly{s.nemesis, fmt.Sprintf("reload of %s (%s): %s", n.ID, strings.Join(want, ", "), why)})
		}
	}
}

// checkProofs checks that each node proves the new secret in an MBP
// handshake, and the old one exactly when wantOld; else an anomaly.
func (s *segment) checkProofs(ctx context.Context, nodes []Node, secret, old string, wantOld bool, when string) {
	for _, n := range nodes {
		for _, c := range []struct {
			name, secret string
			want         bool
		}{{"the new secret", secret, true}, {"the old secret", old, wantOld}} {
			got, err := provesSecret(ctx, net.JoinHostPort(n.IP, "8474"), c.secret)
			switch {
			case err != nil:
				s.nemAnomalies = append(s.nemAnomalies, Anomaly{s.nemesis, fmt.Sprintf("%s: MBP handshake with %s to learn whether it proves %s: %v", when, n.ID, c.name, err)})
			case got != c.want:
				s.nemAnomalies = append(s.nemAnomalies, Anomaly{s.nemesis, fmt.Sprintf("%s: %s proves %s: %v, want %v (docs/protocol.md, rule 20)", when, n.ID, c.name, got, c.want)})
			}
		}
	}
}

// errProbeStop ends a handshake probe before it proves anything.
var errProbeStop = errors.New("rotate-kill probe: stopped before proving")

// provesSecret dials a node's MBP address (bind_addr) as a dialer holding
// secret alone and reports whether the node's challenge proves it (rule
// 20: a listener proves every secret it accepts). The probe never sends
// a proof of its own (probeConn refuses to write one), so no connection
// is ever authenticated and the node sees a dialer that gave up.
func provesSecret(ctx context.Context, addr, secret string) (bool, error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	pc := &probeConn{Conn: conn}
	_, err = mbp.DialHandshake(pc, mbp.HandshakeConfig{
		Local:  mbp.Hello{ID: "rotate-kill-probe", Purpose: mbp.PurposeControl},
		Secret: []byte(secret),
	})
	switch {
	case pc.stopped:
		return true, nil
	case errors.Is(err, mbp.ErrAuth):
		return false, nil
	case err == nil:
		return false, errors.New("the handshake completed although the probe sent no proof")
	}
	return false, err
}

// probeConn refuses to write a proof frame's header: the dialer writes it
// only once the listener's challenge proved a secret it holds.
type probeConn struct {
	net.Conn
	stopped bool
}

func (c *probeConn) Write(b []byte) (int, error) {
	if len(b) == mbp.HeaderLen && mbp.FrameType(b[1]) == mbp.FrameProof {
		c.stopped = true
		return 0, errProbeStop
	}
	return c.Conn.Write(b)
}

// reloadAnswer is the answer of POST /v1/admin/reload (docs/api.md).
type reloadAnswer struct {
	Changed         []string `json:"changed"`
	RestartRequired []string `json:"restart_required"`
	Warnings        []string `json:"warnings"`
}

// checkReload says what is wrong with a reload's answer ("" if nothing):
// it must be 200, list every key of want as changed, and list no secret
// key under restart_required.
func checkReload(status int, body []byte, want []string) string {
	if status != 200 {
		return fmt.Sprintf("HTTP %d %s", status, truncate(string(body), 300))
	}
	var a reloadAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return fmt.Sprintf("undecodable answer %q: %v", truncate(string(body), 300), err)
	}
	var problems []string
	for _, k := range want {
		if !slices.Contains(a.Changed, k) {
			problems = append(problems, fmt.Sprintf("%s not among the changed keys %v", k, a.Changed))
		}
	}
	for _, k := range a.RestartRequired {
		if strings.Contains(k, secretKey) {
			problems = append(problems, fmt.Sprintf("%s needs a restart (restart_required %v)", k, a.RestartRequired))
		}
	}
	return strings.Join(problems, "; ")
}

// writesAgain checks that a write is acknowledged after since (a step
// began), within bound; else an anomaly.
func (s *segment) writesAgain(ctx context.Context, since, bound time.Duration, after string) {
	deadline := time.Now().Add(bound)
	for {
		if ackedWriteAfter(s.w.Ops(), since) {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.nemAnomalies = append(s.nemAnomalies, Anomaly{s.nemesis, fmt.Sprintf("no write acknowledged within %s after %s (at %s)", bound, after, ms(since))})
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func sleepFor(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// ackedWriteAfter reports whether a write invoked at or after since was
// acknowledged.
func ackedWriteAfter(ops []*Op, since time.Duration) bool {
	return slices.ContainsFunc(ops, func(op *Op) bool { return op.Kind.Write() && op.Outcome == OK && op.Call >= since })
}

// setSecrets returns the config file conf (YAML, as nodeConfig writes it:
// cluster_secret on a line of its own under cluster:) with cluster_secret
// set to secret and cluster_secret_previous to previous, or removed when
// previous is "". Every other line is kept as it is.
func setSecrets(conf, secret, previous string) (string, error) {
	lines := strings.SplitAfter(conf, "\n")
	var out []string
	found := false
	for _, l := range lines {
		key, indent, ok := yamlKey(l)
		switch {
		case ok && key == previousKey:
			continue
		case ok && key == secretKey && indent != "":
			if found {
				return "", fmt.Errorf("%s appears twice", secretKey)
			}
			found = true
			out = append(out, indent+secretKey+": "+strconv.Quote(secret)+"\n")
			if previous != "" {
				out = append(out, indent+previousKey+": "+strconv.Quote(previous)+"\n")
			}
			continue
		}
		out = append(out, l)
	}
	if !found {
		return "", fmt.Errorf("no cluster.%s line to rotate", secretKey)
	}
	return strings.Join(out, ""), nil
}

// secretsOf returns the cluster_secret and cluster_secret_previous of a
// config file written by nodeConfig or setSecrets.
func secretsOf(conf string) (secret, previous string, err error) {
	for _, l := range strings.SplitAfter(conf, "\n") {
		key, indent, ok := yamlKey(l)
		if !ok || indent == "" || (key != secretKey && key != previousKey) {
			continue
		}
		_, v, _ := strings.Cut(l, ":")
		v = strings.TrimSpace(v)
		if u, uerr := strconv.Unquote(v); uerr == nil {
			v = u
		}
		if key == secretKey {
			secret = v
		} else {
			previous = v
		}
	}
	if secret == "" {
		return "", "", fmt.Errorf("no cluster.%s", secretKey)
	}
	return secret, previous, nil
}

// yamlKey returns the key of a "  key: value" line and its indentation.
func yamlKey(l string) (key, indent string, ok bool) {
	t := strings.TrimLeft(l, " ")
	k, _, found := strings.Cut(t, ":")
	if !found || k == "" || strings.ContainsAny(k, " #-\"'") {
		return "", "", false
	}
	return k, l[:len(l)-len(t)], true
}
