// Package ident validates identifiers that arrive from the network, the
// admin API or the configuration (node ids, snapshot ids) before they are
// used, and joins them onto directories so that the result always stays
// inside the parent. One rule for every entry point: config's
// cluster.node_id, the admin API's add-node, the MBP handshake's hello and
// the snapshot manifest all call it.
package ident

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// MaxNodeIDLen bounds a node id (cluster.node_id).
const MaxNodeIDLen = 64

// MaxSnapshotIDLen bounds a snapshot id.
const MaxSnapshotIDLen = 64

// NodeIDRule describes the node id rule for messages.
var NodeIDRule = fmt.Sprintf("1 to %d letters, digits, '.', '_' or '-', not starting with '.'", MaxNodeIDLen)

// ErrInvalid is wrapped by every error of this package.
var ErrInvalid = errors.New("invalid identifier")

// Check reports whether s is a safe name of at most max bytes: only ASCII
// letters, digits, '.', '_' and '-', not empty and not starting with '.'
// (so never "." or ".."), with no separator, so that it can name a file.
func Check(s string, max int) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty", ErrInvalid)
	case len(s) > max:
		return fmt.Errorf("%w: %d bytes, over %d", ErrInvalid, len(s), max)
	case s[0] == '.':
		return fmt.Errorf("%w: starts with '.'", ErrInvalid)
	}
	for i := 0; i < len(s); i++ {
		if !allowed(s[i]) {
			return fmt.Errorf("%w: byte %d is %q; only letters, digits, '.', '_' and '-' are allowed", ErrInvalid, i, s[i])
		}
	}
	return nil
}

func allowed(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// CheckNodeID checks a node id: NodeIDRule.
func CheckNodeID(id string) error { return Check(id, MaxNodeIDLen) }

// CheckSnapshotID checks a snapshot id, which names a staging directory.
func CheckSnapshotID(id string) error { return Check(id, MaxSnapshotIDLen) }

// Join returns parent/name after checking that name is a safe name (Check,
// at most 255 bytes) and that the joined path is a direct child of parent:
// an identifier never becomes a path outside its directory.
func Join(parent, name string) (string, error) {
	if err := Check(name, 255); err != nil {
		return "", fmt.Errorf("%q cannot name a directory under %s: %w", name, parent, err)
	}
	p := filepath.Join(parent, name)
	rel, err := filepath.Rel(parent, p)
	if err != nil || rel != name || !filepath.IsLocal(rel) || strings.ContainsRune(rel, filepath.Separator) {
		return "", fmt.Errorf("%w: %q escapes %s", ErrInvalid, name, parent)
	}
	return p, nil
}
