package mbp

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/muninndb/muninn/core"
)

// withClusterID gives a test transport a cluster id, counting how often
// the handshake asks for it (once per connection).
func withClusterID(id uint64, asked *atomic.Int64) func(*Config) {
	return func(c *Config) {
		c.ClusterID = func() uint64 {
			if asked != nil {
				asked.Add(1)
			}
			return id
		}
	}
}

// Two transports of different clusters never connect: both ends refuse,
// each logging both ids once however often the dialer retries, and
// nothing crosses.
func TestTransportClusterIDMismatch(t *testing.T) {
	leakCheck(t)
	var asked atomic.Int64
	a, la := newTestTransport(t, "node-a", testSecret, withClusterID(0x0123456789abcdef, nil))
	b, lb := newTestTransport(t, "node-b", testSecret, withClusterID(0xfedcba9876543210, &asked))
	if err := a.Connect(b.Addr()); err != nil {
		t.Fatal(err)
	}
	// Several handshakes (b's id is asked once each), all refused.
	waitFor(t, "four refused handshakes", func() bool { return asked.Load() >= 4 })
	for who, l := range map[string]*logBuf{"dialer": la, "listener": lb} {
		s := l.String()
		if n := strings.Count(s, "belongs to another cluster"); n != 1 {
			t.Fatalf("%s logged %d cluster refusals, want 1 (rate-limited):\n%s", who, n, s)
		}
		for _, want := range []string{"0123456789abcdef", "fedcba9876543210", "fresh data directory"} {
			if !strings.Contains(s, want) {
				t.Fatalf("%s's log does not name %q:\n%s", who, want, s)
			}
		}
	}
	if len(a.Peers()) != 0 || len(b.Peers()) != 0 {
		t.Fatalf("peers after refusals: %v / %v", a.Peers(), b.Peers())
	}
	if a.Send("node-b", core.Message{Type: core.MsgHeartbeat}) {
		t.Fatal("a message was queued to a refused peer")
	}
}

// A transport without a cluster id takes its peer's through
// AdoptClusterID (a fresh node), or refuses when that fails (a node
// holding data of a cluster without an id).
func TestTransportClusterIDAdopt(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		name := "adopts"
		if refuse {
			name = "refuses"
		}
		t.Run(name, func(t *testing.T) {
			leakCheck(t)
			var mu sync.Mutex
			var adopted []uint64
			fresh, lf := newTestTransport(t, "node-a", testSecret, func(c *Config) {
				c.AdoptClusterID = func(peer Hello) error {
					mu.Lock()
					defer mu.Unlock()
					if refuse {
						return errors.New("the store is not empty")
					}
					adopted = append(adopted, peer.ClusterID)
					return nil
				}
			})
			old, lo := newTestTransport(t, "node-b", testSecret, withClusterID(77, nil))
			if err := fresh.Connect(old.Addr()); err != nil {
				t.Fatal(err)
			}
			if refuse {
				waitFor(t, "refusals logged", func() bool {
					return strings.Contains(lf.String(), "the store is not empty") && strings.Contains(lo.String(), "refused by peer node-a")
				})
				if len(fresh.Peers()) != 0 || len(old.Peers()) != 0 {
					t.Fatalf("peers after refusals: %v / %v", fresh.Peers(), old.Peers())
				}
				return
			}
			waitFor(t, "connected", func() bool { return connected(fresh, "node-b") && connected(old, "node-a") })
			mu.Lock()
			defer mu.Unlock()
			if len(adopted) != 1 || adopted[0] != 77 {
				t.Fatalf("adopted %v, want [77]", adopted)
			}
		})
	}
}
