package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/client"
)

// TestReplayIsConditional is issue 19 item 2 with real processes: a local
// PATCH on a cut-off Cortex is quarantined when it rejoins; a newer quorum
// PATCH of the same engram was acknowledged meanwhile, so replaying the
// quarantined one is refused (409) and the engram keeps the newer value.
// A quarantined create that nobody touched replays, and two concurrent
// replays of it apply it once.
func TestReplayIsConditional(t *testing.T) {
	c := newCluster(t, fastHB, fastLease)
	ns := c.addN(3)
	c.startAll()
	a := c.waitCortex(ns, 20*time.Second)
	x := client.NewID()
	if r, err := a.raw("POST", "/api/engrams?durability=quorum", apitypes.WriteRequest{ID: x, Content: "base"}); err != nil || r.status != http.StatusCreated {
		t.Fatalf("create %s: %v %d %s", x, err, r.status, r.body)
	}
	lobes := others(ns, a)
	c.waitHasAll(lobes[0], "default", []string{x}, 10*time.Second)
	c.waitHasAll(lobes[1], "default", []string{x}, 10*time.Second)

	// Cut a off: its Lobes die, it takes local writes alone.
	for _, n := range lobes {
		n.kill9()
	}
	old := "old (local, on the cut-off Cortex)"
	if r, err := a.raw("PATCH", "/api/engrams/"+x+"?durability=local", map[string]string{"content": old}); err != nil || r.status != http.StatusOK {
		t.Fatalf("local PATCH on the cut-off Cortex: %v %d %s", err, r.status, r.body)
	}
	y := client.NewID()
	if r, err := a.raw("POST", "/api/engrams?durability=local", apitypes.WriteRequest{ID: y, Content: "only on the cut-off Cortex"}); err != nil || r.status != http.StatusCreated {
		t.Fatalf("local create on the cut-off Cortex: %v %d %s", err, r.status, r.body)
	}
	a.kill9()
	for _, n := range lobes {
		n.start()
	}
	b := c.waitCortex(lobes, 20*time.Second)
	newer := "new (quorum, on the new Cortex)"
	if r, err := b.raw("PATCH", "/api/engrams/"+x+"?durability=quorum", map[string]string{"content": newer}); err != nil || r.status != http.StatusOK {
		t.Fatalf("quorum PATCH on the new Cortex: %v %d %s", err, r.status, r.body)
	}
	a.start()
	var fl apitypes.QuarantineList
	c.waitFor(a.id+" to quarantine its two cut-off writes", 20*time.Second, func() (bool, string) {
		r, err := a.raw("GET", "/v1/cluster/quarantine", nil)
		if err != nil {
			return false, err.Error()
		}
		fl = apitypes.QuarantineList{}
		json.Unmarshal(r.body, &fl)
		return len(fl.Entries) == 2, string(r.body)
	})
	ref := func(id string) apitypes.QuarantineRef {
		for _, e := range fl.Entries {
			if e.ID == id {
				return apitypes.QuarantineRef{Epoch: e.Epoch, Seq: e.Seq}
			}
		}
		t.Fatalf("no quarantined entry for %s in %+v", id, fl.Entries)
		return apitypes.QuarantineRef{}
	}

	r, err := a.raw("POST", "/v1/cluster/quarantine/replay", ref(x))
	if err != nil || r.status != http.StatusConflict {
		t.Fatalf("replaying the stale PATCH over a newer quorum write: %v HTTP %d %s; want 409", err, r.status, r.body)
	}
	t.Logf("stale replay refused: %s", r.body)
	cx := c.cortexNow(ns)
	if st, content := strongContent(t, cx, x); st != http.StatusOK || content != newer {
		t.Fatalf("after the refused replay %s is %d %q, want %q", x, st, content, newer)
	}

	// Two concurrent replays of the untouched create: applied once. One
	// goes through the deprecated path, which must behave the same.
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i, path := range []string{"/v1/cluster/quarantine/replay", "/v1/cluster/fenced/replay"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r, err := a.raw("POST", path, ref(y)); err == nil {
				codes[i] = r.status
			}
		}()
	}
	wg.Wait()
	ok := 0
	for _, code := range codes {
		switch code {
		case http.StatusOK:
			ok++
		case http.StatusConflict, http.StatusNotFound:
		default:
			t.Fatalf("concurrent replays answered %v", codes)
		}
	}
	if ok != 1 {
		t.Fatalf("concurrent replays of one entry: %v, want exactly one 200", codes)
	}
	if st, content := strongContent(t, c.cortexNow(ns), y); st != http.StatusOK || content != "only on the cut-off Cortex" {
		t.Fatalf("replayed create %s: %d %q", y, st, content)
	}
	c.waitFor("the replayed entry to leave "+a.id+"'s quarantine", 10*time.Second, func() (bool, string) {
		r, err := a.raw("GET", "/v1/cluster/quarantine", nil)
		if err != nil {
			return false, err.Error()
		}
		var fl apitypes.QuarantineList
		json.Unmarshal(r.body, &fl)
		return len(fl.Entries) == 1 && fl.Entries[0].ID == x, fmt.Sprint(fl.Entries)
	})
}
