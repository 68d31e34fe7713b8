package node

import (
	"errors"
	"log/slog"
	"slices"

	"github.com/muninndb/muninn/shell/config"
	"github.com/muninndb/muninn/shell/mbp"
)

// SetSecrets applies reloaded cluster secrets (cluster.cluster_secret and
// cluster.cluster_secret_previous, nil when none): new MBP handshakes
// prove with current and accept either, and connections authenticated
// with a secret no longer accepted are closed (mbp.Transport.SetSecrets).
// It returns how many were closed. A standalone node has no transport:
// nothing to do.
func (n *Node) SetSecrets(current, previous []byte) (int, error) {
	if n.tr == nil {
		return 0, nil
	}
	return n.tr.SetSecrets(current, previous)
}

// Secrets returns the cluster secrets in force: the current one (which
// signs) and the previous one during a rotation (nil otherwise). A
// standalone node returns Options.Secret.
func (n *Node) Secrets() (current, previous []byte) {
	if n.tr == nil {
		return n.opts.Secret, nil
	}
	return n.tr.Secrets()
}

// SetTLS reloads cluster.tls for new MBP handshakes and returns the keys
// whose files changed (mbp.Transport.SetTLS). It fails, changing nothing,
// when the files do not load or TLS was off at start.
func (n *Node) SetTLS(f mbp.TLSFiles) ([]string, error) {
	if n.tr == nil {
		return nil, errors.New("cluster.tls applies in cluster mode only; this node runs standalone")
	}
	return n.tr.SetTLS(f)
}

// ApplyReload applies the live keys of a reloaded configuration to n
// (config.ApplyFunc; muninn start wires it to SIGHUP and POST
// /v1/admin/reload): the cluster.tls files first (re-read even when their
// paths did not change, so a certificate renewed in place is picked up; a
// failure there applies nothing), then the cluster secrets, the log level
// (lv) and the admin token (setToken). It returns the cluster.tls keys
// whose content changed.
func ApplyReload(n *Node, old, next config.Config, live []string, lv *slog.LevelVar, setToken func(string)) ([]string, error) {
	var content []string
	cl := next.Cluster
	if n.opts.Cluster && cl.TLS.Enabled() && old.Cluster.TLS.Enabled() {
		changed, err := n.SetTLS(mbp.TLSFiles{CertFile: cl.TLS.Cert, KeyFile: cl.TLS.Key, CAFile: cl.TLS.CA})
		if ke := (*mbp.KeyError)(nil); errors.As(err, &ke) {
			// Named in the refusal's fields, like a validation error.
			return nil, &config.FieldError{Key: ke.Key, Msg: err.Error()}
		}
		if err != nil {
			return nil, err
		}
		content = changed
	}
	if n.opts.Cluster && (slices.Contains(live, "cluster.cluster_secret") || slices.Contains(live, "cluster.cluster_secret_previous")) {
		var prev []byte
		if cl.SecretPrevious != "" {
			prev = []byte(cl.SecretPrevious)
		}
		closed, err := n.SetSecrets([]byte(cl.Secret), prev)
		if err != nil {
			return nil, err
		}
		n.log.Info("cluster secrets reloaded", "previous_accepted", prev != nil, "connections_closed", closed)
	}
	if lv != nil {
		lv.Set(next.SlogLevel())
	}
	if setToken != nil && slices.Contains(live, "admin_token") {
		setToken(next.AdminToken)
	}
	return content, nil
}
