package node

import (
	"fmt"
	"slices"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/apitypes"
)

// The hub's events come from two places, both on the node's loop: what the
// core reports (core.Event, fromCore) and what changed in the status the
// loop publishes after each step (observe). The core reports no event when
// a Lobe starts following a new Cortex, when the epoch moves or when a
// membership entry is undone, so those are found by comparing.

// hubState is what the hub last saw.
type hubState struct {
	based  bool // observe has run once: changes from here are events
	role   string
	epoch  uint64
	cur    string // the Cortex followed now ("" during an election)
	curAPI string
	// cortex and cortexEpoch are what the last cortex_changed announced.
	cortex      string
	cortexEpoch uint64
	members     core.Members
}

// observe compares the status the loop publishes with what the hub saw
// last: epoch_changed, cortex_changed (once per epoch: another Cortex, or
// the same one in a new epoch) and the membership's changes. The first
// call records the state the node starts in, which is no event.
func (h *EventHub) observe(st core.Status, apiAddrs map[core.NodeID]string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	epoch, cortex := uint64(st.Epoch), string(st.Cortex)
	if !h.st.based {
		h.st = hubState{based: true, role: st.Role.String(), epoch: epoch, cur: cortex, curAPI: apiAddrs[st.Cortex],
			members: slices.Clone(st.Members)}
		if cortex != "" {
			h.st.cortex, h.st.cortexEpoch = cortex, epoch
		}
		return
	}
	h.epochLocked(epoch)
	h.st.role = st.Role.String()
	h.membersLocked(st.Members)
	h.st.cur, h.st.curAPI = cortex, apiAddrs[st.Cortex]
	if cortex != "" && (cortex != h.st.cortex || epoch != h.st.cortexEpoch) {
		h.emitLocked(apitypes.ClusterEvent{Type: apitypes.EventCortexChanged, Epoch: epoch,
			Cortex: cortex, CortexAPI: h.st.curAPI, PrevCortex: h.st.cortex})
		h.st.cortex, h.st.cortexEpoch = cortex, epoch
	}
}

// epochLocked announces a higher epoch.
func (h *EventHub) epochLocked(epoch uint64) {
	if epoch <= h.st.epoch {
		return
	}
	prev := h.st.epoch
	h.st.epoch = epoch
	if h.st.based {
		h.emitLocked(apitypes.ClusterEvent{Type: apitypes.EventEpochChanged, Epoch: epoch, PrevEpoch: prev})
	}
}

// membersLocked announces the difference between the membership the hub
// saw and after: members added, promoted (learner to voter) and removed.
func (h *EventHub) membersLocked(after core.Members) {
	before := h.st.members
	if slices.Equal(before, after) {
		return
	}
	for _, m := range after {
		old, ok := before.Get(m.ID)
		switch {
		case !ok:
			h.emitLocked(apitypes.ClusterEvent{Type: apitypes.EventMemberAdded, Epoch: h.st.epoch,
				Node: string(m.ID), Kind: m.Kind.String(), Learner: m.Learner})
		case old.Learner && !m.Learner:
			h.emitLocked(apitypes.ClusterEvent{Type: apitypes.EventMemberPromoted, Epoch: h.st.epoch,
				Node: string(m.ID), Kind: m.Kind.String()})
		}
	}
	for _, m := range before {
		if _, ok := after.Get(m.ID); !ok {
			h.emitLocked(apitypes.ClusterEvent{Type: apitypes.EventMemberRemoved, Epoch: h.st.epoch,
				Node: string(m.ID), Kind: m.Kind.String()})
		}
	}
	h.st.members = slices.Clone(after)
}

// fromCore maps an event the core reported. selfAPI is this node's API
// URL (an elected node names itself); members is the membership now, read
// only for a membership change.
func (h *EventHub) fromCore(e core.Event, selfAPI string, members func() core.Members) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.epochLocked(uint64(e.Epoch))
	ce := apitypes.ClusterEvent{Epoch: uint64(e.Epoch)}
	switch e.Kind {
	case core.EventRoleChanged:
		ce.Type, ce.Node, ce.Role, ce.Cortex = apitypes.EventRoleChanged, h.source, e.Role.String(), string(e.Node)
		if e.Role == core.RoleCortex {
			ce.CortexAPI = selfAPI
		}
		h.st.role = ce.Role
	case core.EventSDown:
		ce.Type, ce.Cortex, ce.Reason = apitypes.EventSDown, string(e.Node), sdownReason(e)
	case core.EventSDownCleared:
		ce.Type, ce.Cortex = apitypes.EventSDownCleared, string(e.Node)
	case core.EventODown:
		ce.Type, ce.Cortex, ce.Votes, ce.Voters = apitypes.EventODown, string(e.Node), e.Votes, e.Voters
	case core.EventElectionStarted:
		ce.Type, ce.Node = apitypes.EventElectionStarted, string(e.Node)
	case core.EventElected:
		ce.Type, ce.Node, ce.Votes, ce.Voters = apitypes.EventElected, string(e.Node), e.Votes, e.Voters
		if string(e.Node) == h.source {
			ce.Cortex, ce.CortexAPI = string(e.Node), selfAPI
		}
	case core.EventSteppedDown:
		ce.Type, ce.Reason = apitypes.EventSteppedDown, e.Detail
	case core.EventDemoted:
		ce.Type, ce.Reason = apitypes.EventDemoted, e.Detail
	case core.EventHandoffStarted:
		ce.Type, ce.Node = apitypes.EventHandoffStarted, string(e.Node)
	case core.EventHandoffAborted:
		ce.Type, ce.Node, ce.Reason = apitypes.EventHandoffAborted, string(e.Node), e.Detail
	case core.EventMembershipChanged:
		if members != nil {
			h.membersLocked(members())
		}
		return
	default:
		return
	}
	h.emitLocked(ce)
}

// sdownReason is why the Cortex is SDOWN: the core's detail (a crash
// hint) or the missed heartbeats.
func sdownReason(e core.Event) string {
	if e.Detail != "" {
		return e.Detail
	}
	return fmt.Sprintf("no heartbeat for %d beats", core.MissedBeats)
}

// quarantined announces entries moved to this node's quarantine: undone by
// a truncation, or not held by a snapshot this node installed.
func (h *EventHub) quarantined(ps []core.Pos, reason string) {
	if len(ps) == 0 {
		return
	}
	lo, hi := ps[0], ps[0]
	minE, maxE := ps[0].Epoch, ps[0].Epoch
	for _, p := range ps[1:] {
		if p.Seq < lo.Seq {
			lo = p
		}
		if p.Seq > hi.Seq {
			hi = p
		}
		minE, maxE = min(minE, p.Epoch), max(maxE, p.Epoch)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.emitLocked(apitypes.ClusterEvent{Type: apitypes.EventQuarantined, Epoch: h.st.epoch, Count: len(ps),
		From: lo.String(), To: hi.String(), FromEpoch: uint64(minE), ToEpoch: uint64(maxE), Reason: reason})
}
