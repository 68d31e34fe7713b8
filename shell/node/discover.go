package node

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/muninndb/muninn/core"
)

// discover decides a fresh node's first membership (rule 15). It waits
// until every seed is connected (their ids and kinds come from the
// authenticated handshake). If a seed already runs a cluster, this node does
// not bootstrap: it waits to be added (muninn cluster add-node) and learns
// the membership from the log. Otherwise the voters met form the first voter
// set, the same on every node that lists the same seeds.
func (n *Node) discover() (core.Members, error) {
	want := 0
	for _, s := range n.opts.Seeds {
		if s != n.opts.BindAddr && s != n.opts.AdvertiseAddr {
			want++
		}
	}
	if want == 0 {
		// No seeds: the first node of a new cluster, alone until others
		// are added.
		return core.Members{{ID: n.opts.ID, Kind: n.opts.Kind}}, nil
	}
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		peers := n.tr.Peers()
		var connected []core.Member
		for _, p := range peers {
			if !p.Connected {
				continue
			}
			connected = append(connected, core.Member{ID: p.ID, Kind: p.Kind})
		}
		for _, p := range peers {
			if p.Connected {
				if running, members := clusterRunning(client, p.APIAddr); running {
					if _, ok := members.Get(n.opts.ID); ok {
						return storesForgotten(members, n.opts.Kind), nil
					}
					n.log.Info(fmt.Sprintf("a cluster is already running (seen via %s); waiting to be added: run `muninn cluster add-node --node %s --kind %s` against the Cortex", p.ID, n.opts.ID, n.opts.Kind))
					return nil, nil
				}
			}
		}
		if len(connected) >= want {
			ms := append(connected, core.Member{ID: n.opts.ID, Kind: n.opts.Kind})
			slices.SortFunc(ms, func(a, b core.Member) int { return strings.Compare(string(a.ID), string(b.ID)) })
			return ms, nil
		}
		select {
		case <-n.stop:
			return nil, ErrStopped
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// clusterRunning asks a peer's API whether it already has a Cortex.
func clusterRunning(c *http.Client, api string) (bool, core.Members) {
	if api == "" {
		return false, nil
	}
	resp, err := c.Get(strings.TrimSuffix(api, "/") + "/v1/cluster/info")
	if err != nil {
		return false, nil
	}
	defer resp.Body.Close()
	var info struct {
		Epoch   uint64 `json:"epoch"`
		Members []struct {
			ID      string `json:"id"`
			Kind    string `json:"kind"`
			Learner bool   `json:"learner"`
			Store   string `json:"store"`
		} `json:"members"`
	}
	if json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 1<<20)).Decode(&info) != nil || info.Epoch == 0 {
		return false, nil
	}
	var ms core.Members
	for _, m := range info.Members {
		k, err := core.ParseKind(m.Kind)
		if err != nil {
			continue
		}
		// Keep the store each member is recorded with (rule 16): without it
		// every member, this node's own wiped store included, would look
		// unrecorded and count whatever store it reports.
		var store uint64
		if m.Store != "" {
			if store, err = strconv.ParseUint(m.Store, 16, 64); err != nil {
				continue
			}
		}
		ms = append(ms, core.Member{ID: core.NodeID(m.ID), Kind: k, Learner: m.Learner, Store: store})
	}
	return true, ms
}

// logSeeds logs the seed's "connecting to seed ADDR... connected" line the
// first time each configured seed's node connects (whichever side dialed).
func (n *Node) logSeeds() {
	logged := map[string]bool{}
	for ev := range n.tr.Events() {
		if !ev.Up {
			continue
		}
		for _, seed := range n.opts.Seeds {
			if (seed == ev.Peer.MBPAddr || seed == ev.Peer.Addr) && !logged[seed] {
				logged[seed] = true
				n.log.Info(fmt.Sprintf("connecting to seed %s... connected", seed))
			}
		}
	}
}

// storesForgotten: a Sentinel is sent no entries, so it never learns a
// membership entry that records a store (its own new one, or a wiped
// member's): with the stores discovered it would report itself, or that
// member, uncounted forever. The records say nothing it acts on (it never
// runs, and candidates, which do learn them, decide whether its vote
// counts: rule 16), so it keeps none, as before stores were recorded. A data
// node keeps them: it must not run until the Cortex has caught it up, and
// it learns every later record.
func storesForgotten(ms core.Members, kind core.Kind) core.Members {
	if kind != core.KindSentinel {
		return ms
	}
	for i := range ms {
		ms[i].Store = 0
	}
	return ms
}
