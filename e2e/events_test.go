//go:build unix

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/client"
)

// TestEventsFailover: two Lobes' event streams across a graceful failover
// (`muninn cluster failover --yes --to`). The target, through the Go
// client, and the other Lobe, through `muninn cluster watch --json`, each
// announce the new Cortex exactly once for its epoch (cortex_changed, with
// its API), and the target says it was elected, once.
func TestEventsFailover(t *testing.T) {
	c := newCluster(t, fastHB, fastLease)
	ns := c.addN(3)
	c.startAll()
	cx := c.waitCortex(ns, 20*time.Second)
	lobes := others(ns, cx)
	target, other := lobes[0], lobes[1]

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// A node's event hub sees a change once the Ready that holds it is
	// carried out, a step after its status shows it: wait until both
	// Lobes' hellos name the Cortex before asserting on the first one.
	for _, n := range lobes {
		c.waitFor(n.id+"'s hello to name "+cx.id, 10*time.Second, func() (bool, string) {
			x, stop := context.WithTimeout(ctx, 2*time.Second)
			defer stop()
			ch, err := client.New(n.url()).Events(x)
			if err != nil {
				return false, err.Error()
			}
			h := <-ch
			return h.Cortex == cx.id, fmt.Sprintf("hello %+v", h.ClusterEvent)
		})
	}
	// The target, through the Go client.
	ch, err := client.New(target.url()).Events(ctx)
	if err != nil {
		t.Fatalf("events of %s: %v", target.id, err)
	}
	if h := <-ch; h.Type != "hello" || h.Role != "lobe" || h.Cortex != cx.id {
		t.Fatalf("hello of %s: %+v; want a Lobe following %s", target.id, h.ClusterEvent, cx.id)
	}
	// The other Lobe, through the CLI (stopped by Ctrl-C below).
	watch := exec.CommandContext(ctx, binPath, "cluster", "watch", "--json", "--addr", other.url())
	watch.Env = os.Environ()
	var werr strings.Builder
	watch.Stderr = &werr
	pipe, err := watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan apitypes.ClusterEvent, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			var e apitypes.ClusterEvent
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Errorf("muninn cluster watch printed a line that is not JSON: %q", sc.Text())
				continue
			}
			lines <- e
		}
	}()
	select {
	case h := <-lines:
		if h.Type != "hello" || h.Cortex != cx.id || h.Source != other.id {
			t.Fatalf("hello from the CLI on %s: %+v", other.id, h)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("muninn cluster watch printed nothing in 10 s; stderr: %s", werr.String())
	}

	if out, e, code := cli(t, "cluster", "failover", "--yes", "--to", target.id, "--addr", cx.url()); code != 0 {
		t.Fatalf("muninn cluster failover --yes --to %s: exit %d\n%s%s", target.id, code, out, e)
	}
	c.waitCortex(ns, 10*time.Second)

	// Read both until each announced the target, then a second more for
	// any duplicate.
	collect := func(next func(time.Duration) (apitypes.ClusterEvent, bool)) []apitypes.ClusterEvent {
		var got []apitypes.ClusterEvent
		deadline := time.Now().Add(15 * time.Second)
		var quiet time.Time
		for {
			wait := time.Until(deadline)
			if !quiet.IsZero() {
				wait = time.Until(quiet)
			}
			e, ok := next(max(wait, 0))
			if !ok {
				return got
			}
			got = append(got, e)
			if quiet.IsZero() && e.Type == "cortex_changed" && e.Cortex == target.id {
				quiet = time.Now().Add(time.Second)
			}
		}
	}
	fromClient := collect(func(d time.Duration) (apitypes.ClusterEvent, bool) {
		select {
		case e, ok := <-ch:
			return e.ClusterEvent, ok
		case <-time.After(d):
			return apitypes.ClusterEvent{}, false
		}
	})
	fromCLI := collect(func(d time.Duration) (apitypes.ClusterEvent, bool) {
		select {
		case e, ok := <-lines:
			return e, ok
		case <-time.After(d):
			return apitypes.ClusterEvent{}, false
		}
	})
	if err := watch.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := watch.Wait(); err != nil {
		t.Errorf("muninn cluster watch after Ctrl-C: %v; stderr: %s", err, werr.String())
	}

	check := func(who string, got []apitypes.ClusterEvent, elected bool) {
		t.Helper()
		var seen []string
		perEpoch := map[uint64]int{}
		electedIn := map[uint64]int{}
		var announced *apitypes.ClusterEvent
		for i, e := range got {
			seen = append(seen, e.Type)
			switch e.Type {
			case "cortex_changed":
				perEpoch[e.Epoch]++
				if e.Cortex == target.id {
					announced = &got[i]
				}
			case "elected":
				electedIn[e.Epoch]++
			case client.EventDisconnected:
				t.Errorf("%s: the stream dropped: %s", who, e.Reason)
			}
		}
		if announced == nil {
			t.Fatalf("%s: no cortex_changed naming %s; events: %v", who, target.id, seen)
		}
		if announced.CortexAPI != target.url() || announced.PrevCortex != cx.id {
			t.Errorf("%s: cortex_changed %+v; want %s's API %s, after %s", who, *announced, target.id, target.url(), cx.id)
		}
		for ep, k := range perEpoch {
			if k != 1 {
				t.Errorf("%s: %d cortex_changed in epoch %d; want one; events: %v", who, k, ep, seen)
			}
		}
		if elected && electedIn[announced.Epoch] != 1 {
			t.Errorf("%s: %d elected in epoch %d; want one; events: %v", who, electedIn[announced.Epoch], announced.Epoch, seen)
		}
		t.Logf("%s saw: %s", who, strings.Join(seen, " "))
	}
	check(target.id+" (Go client)", fromClient, true)
	check(other.id+" (muninn cluster watch)", fromCLI, false)
}
