//go:build unix

package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/muninndb/muninn/shell/client"
)

// TestCrashHintFailover: rule 18 at the default heartbeat (1000 ms, an
// SDOWN window of 3 s) under a quorum writer.
//
// A Cortex frozen for 2 s (SIGSTOP: its sockets stay open, nothing is
// reset) is no crash: no hint, no election, the epoch is unchanged after
// SIGCONT. A Cortex killed with kill -9 is: its kernel closes its
// connections and nothing listens on its port, so each survivor takes it
// for SDOWN at once (the log says why), and a new Cortex is known long
// before the 3 s window would have allowed. The bounds are generous (a
// loaded 2-core machine): what is asserted is the mechanism.
func TestCrashHintFailover(t *testing.T) {
	c := newCluster(t, 0, 0)
	ns := c.addN(3)
	c.startAll()
	cx := c.waitCortex(ns, 30*time.Second)
	cl := client.New(cx.url(), client.WithEndpoints(urls(ns)...))
	w := startWriter(t, cl, "hint", "quorum", 10*time.Millisecond)
	c.waitAcks(w, 20, 15*time.Second)

	// A frozen Cortex: silence, never a hint.
	cx = c.cortexNow(ns)
	epoch := cx.mustInfo().Epoch
	cx.signal(syscall.SIGSTOP)
	time.Sleep(2 * time.Second)
	cx.signal(syscall.SIGCONT)
	c.waitAcks(w, 20, 15*time.Second)
	time.Sleep(time.Second) // a late election would show by now
	for _, n := range ns {
		i := n.mustInfo()
		if i.Epoch != epoch || i.Cortex != cx.id {
			t.Fatalf("after a 2 s SIGSTOP of the Cortex %s (epoch %d), %s is at epoch %d following %q: an election took place", cx.id, epoch, n.id, i.Epoch, i.Cortex)
		}
		if k := n.countMsg("crash hint"); k > 0 {
			t.Fatalf("%s logged %d crash hints for a stopped, not crashed, Cortex", n.id, k)
		}
	}

	// A crashed Cortex: both survivors hint, elect at once.
	survivors := others(ns, cx)
	killed := time.Now()
	cx.kill9()
	var nc string
	c.waitFor("a new Cortex known to the survivors", 20*time.Second, func() (bool, string) {
		for _, n := range survivors {
			if i, err := n.info(); err == nil && i.Epoch > epoch && i.Cortex != "" && i.Cortex != cx.id {
				nc = i.Cortex
				return true, ""
			}
		}
		return false, "no survivor names a later Cortex"
	})
	elected := time.Since(killed)
	var first ack
	c.waitFor("a quorum write acknowledged after the kill", 20*time.Second, func() (bool, string) {
		acks, _ := w.snapshot()
		for _, a := range acks {
			if a.end.After(killed) && (a.epoch > epoch || a.epoch == 0) {
				first = a
				return true, ""
			}
		}
		return false, ""
	})
	wrote := first.end.Sub(killed)
	t.Logf("kill -9 %s (epoch %d): %s named Cortex after %s, first quorum write acknowledged after %s (epoch %d)",
		cx.id, epoch, nc, elected.Round(time.Millisecond), wrote.Round(time.Millisecond), first.epoch)

	for _, n := range survivors {
		var lines []string
		for _, m := range n.logMsgs() {
			if strings.Contains(m, "crash hint") {
				lines = append(lines, m)
			}
		}
		t.Logf("%s: %s", n.id, strings.Join(lines, " | "))
		if n.countMsg(fmt.Sprintf("cortex %s is SDOWN: crash hint: its connection closed", cx.id)) == 0 {
			t.Errorf("%s did not log the Cortex SDOWN on a crash hint", n.id)
		}
	}
	// Without the hint the survivors hear the Cortex's last append and
	// wait 3 s from it: nothing is elected before.
	if elected > 2500*time.Millisecond {
		t.Errorf("a new Cortex was known %s after the kill; with the crash hint it should be well under the 3 s SDOWN window", elected.Round(time.Millisecond))
	}
	if wrote > 3*time.Second {
		t.Errorf("the first quorum write after the kill was acknowledged after %s; with the crash hint it should come before the 3 s SDOWN window ends", wrote.Round(time.Millisecond))
	}

	// Nothing acknowledged was lost (the new Cortex waited out the old
	// one's lease before committing).
	c.waitAcks(w, 20, 15*time.Second)
	w.stop()
	acks, fails := w.snapshot()
	got, err := c.node(nc).listIDs("hint", "strong")
	if err != nil {
		t.Fatal(err)
	}
	checkAcked(t, "the new Cortex "+nc, acks, got)
	checkRefused(t, "the new Cortex "+nc, fails, got)
}
