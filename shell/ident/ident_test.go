package ident

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	good := []string{"muninn-01", "a", "n1.eu_west-2", "A.B", strings.Repeat("x", MaxNodeIDLen), "standalone"}
	bad := []string{"", ".", "..", "../x", "../../canary", ".hidden", "a b", "a/b", `a\b`, "a\x00b", "é", "a:b",
		strings.Repeat("x", MaxNodeIDLen+1), strings.Repeat("y", 128)}
	for _, s := range good {
		if err := CheckNodeID(s); err != nil {
			t.Errorf("%q refused: %v", s, err)
		}
	}
	for _, s := range bad {
		err := CheckNodeID(s)
		if err == nil || !errors.Is(err, ErrInvalid) {
			t.Errorf("%q accepted (%v)", s, err)
		}
	}
}

func TestJoin(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "snapshot-in")
	p, err := Join(parent, "0a1b2c")
	if err != nil || p != filepath.Join(parent, "0a1b2c") {
		t.Fatalf("%q %v", p, err)
	}
	for _, s := range []string{"", ".", "..", "../../canary", "a/../../b", "/etc", "a/b", ".x"} {
		if p, err := Join(parent, s); err == nil {
			t.Errorf("Join(%q) = %q, want an error", s, p)
		}
	}
}
