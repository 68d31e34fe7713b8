package main

import (
	"strings"
	"testing"
)

// TestBenchArgumentErrors: bad bench flags are usage errors (exit 2) that
// name the flag; an unreachable node is a failure (exit 1).
func TestBenchArgumentErrors(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"bench", "--writes", "2"}, 2, "--writes 2"},
		{[]string{"bench", "--clients", "0"}, 2, "--clients 0"},
		{[]string{"bench", "--durability", "all"}, 2, `--durability must be one of "local","quorum"`},
		{[]string{"bench", "--consistency", "bounded"}, 2, "needs --max-lag-ms"},
		{[]string{"bench", "--duration", "soon"}, 2, "--duration"},
		{[]string{"bench", "failover", "--nodes", "2"}, 2, "--nodes 2"},
		{[]string{"bench", "failover", "--kills", "0", "--graceful", "0"}, 2, "nothing to measure"},
		{[]string{"bench", "--addr", "http://127.0.0.1:1", "--duration", "1s"}, 1, "cannot reach http://127.0.0.1:1"},
	}
	for _, c := range cases {
		code, _, stderr := cli(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("muninn %s: exit %d (want %d), stderr:\n%s\nwant %q", strings.Join(c.args, " "), code, c.code, stderr, c.want)
		}
	}
}
