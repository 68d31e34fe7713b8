package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/ident"
	"github.com/muninndb/muninn/shell/mbp"
	"github.com/muninndb/muninn/shell/node"
	"github.com/muninndb/muninn/shell/retry"
	"github.com/muninndb/muninn/shell/store"
)

// view is what the cluster endpoints compute from one published snapshot.
type view struct {
	snap   *node.Snapshot
	st     core.Status
	now    core.Time     // the node's clock now (not at publish)
	window time.Duration // the SDOWN window: 3 heartbeats, capped by lease_ttl
	cfg    core.Config   // the timing settings (heartbeat, lease_ttl), with defaults
	peers  map[core.NodeID]core.PeerStatus
	conn   map[core.NodeID]bool
	wall   time.Time
}

func (s *Server) view() view {
	snap := s.n.Status()
	o := s.n.Options()
	cfg := core.Config{Heartbeat: o.Heartbeat, LeaseTTL: o.LeaseTTL}.WithDefaults()
	v := view{
		snap: snap, st: snap.Core, wall: time.Now(),
		now:    core.Time(time.Since(snap.Started)),
		window: cfg.DownAfter(),
		cfg:    cfg,
		peers:  map[core.NodeID]core.PeerStatus{},
		conn:   map[core.NodeID]bool{},
	}
	if v.now < snap.Now {
		v.now = snap.Now
	}
	for _, p := range v.st.Peers {
		v.peers[p.ID] = p
	}
	for _, p := range snap.Peers {
		if p.Connected {
			v.conn[p.ID] = true
		}
	}
	return v
}

func (v view) self() core.NodeID { return v.st.ID }

func (v view) isCortex() bool { return v.st.Role == core.RoleCortex }

// heardAgo is how long ago this node last heard from a peer (an echo of
// its own heartbeat counts, on the Cortex), and whether it ever did.
func (v view) heardAgo(id core.NodeID) (time.Duration, bool) {
	p, ok := v.peers[id]
	if !ok {
		return 0, false
	}
	last := max(p.Seen, p.Echo)
	if last == 0 {
		return 0, false
	}
	return max(v.now.Sub(last), 0), true
}

// echoFresh reports whether, on the Cortex, a peer echoed a heartbeat sent
// within the SDOWN window.
func (v view) echoFresh(id core.NodeID) bool {
	p, ok := v.peers[id]
	return ok && p.Echo != 0 && v.now.Sub(p.Echo) <= v.window
}

// priority is a member's cluster.priority as this node knows it, or nil
// when it does not: Sentinels and Observers never run, a peer says its
// priority in its heartbeats (none yet: unknown), and a Cortex (which
// runs, so is not 0) reporting 0 is a version without priorities. A
// Lobe's 0 is what it said, or what a version without priorities says,
// and the core takes it for that.
func (v view) priority(m core.Member) *int {
	if m.Kind != core.KindAuto {
		return nil
	}
	if m.ID == v.self() {
		return ptr(int(v.st.Priority))
	}
	p, ok := v.peers[m.ID]
	if !ok || !p.PriorityKnown || (p.Priority == 0 && m.ID == v.st.Cortex) {
		return nil
	}
	return ptr(int(p.Priority))
}

// leaseWait is how long this Cortex, elected on crash hints, still waits
// out its predecessor's lease before committing (rule 18); 0 when it does
// not.
func (v view) leaseWait() time.Duration {
	if v.st.CommitFloor == 0 {
		return 0
	}
	return max(v.st.CommitFloor.Sub(v.now), 0)
}

// memberHealth is one member's health as this node sees it.
func (v view) memberHealth(m core.Member) string {
	if m.ID == v.self() {
		return apitypes.MemberHealthy
	}
	ago, heard := v.heardAgo(m.ID)
	up := heard && ago <= v.window
	if v.snap.Peers != nil || v.st.Members.Voters() > 1 {
		up = up && v.conn[m.ID]
	}
	switch {
	case m.Learner && up:
		return apitypes.MemberCatchingUp
	case up && !v.peers[m.ID].Counts:
		return apitypes.MemberRejoining
	case up:
		return apitypes.MemberHealthy
	case !heard:
		return apitypes.MemberUnknown
	}
	return apitypes.MemberUnreachable
}

// role is a member's role as this node knows it: the Cortex by the Cortex
// this node follows, learners as such, a candidate as reported, and the
// others by kind.
func (v view) role(m core.Member) string {
	switch {
	case m.ID == v.self():
		return v.st.Role.String()
	case m.ID == v.st.Cortex:
		return core.RoleCortex.String()
	case m.Learner:
		return "learner"
	}
	if p, ok := v.peers[m.ID]; ok && p.Seen != 0 && p.Role == core.RoleCandidate {
		return core.RoleCandidate.String()
	}
	switch m.Kind {
	case core.KindSentinel:
		return core.RoleSentinel.String()
	case core.KindObserver:
		return core.RoleObserver.String()
	}
	return core.RoleLobe.String()
}

func fmtAgo(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return d.Round(100 * time.Millisecond).String()
}

// health computes GET /v1/cluster/health: ok when the node has a Cortex,
// the quorum is reachable (the Cortex: a quorum of voters echoed a
// heartbeat within the SDOWN window; others: the Cortex was heard within
// it) and every member is healthy (learners catching up count as healthy).
// With nodeOnly the members' health is not required.
func (s *Server) health(v view, nodeOnly bool) apitypes.Health {
	st := v.st
	h := apitypes.Health{NodeID: string(st.ID), Role: st.Role.String(), Cortex: string(st.Cortex), Epoch: uint64(st.Epoch),
		Quorum: st.Quorum, Voters: st.Members.Voters(), Members: []apitypes.MemberHealth{}}
	// Protocol 3 on (every voter has it): versions in the answer.
	versions := v.snap.Protocol >= node.ProtocolHealthVersions
	if versions {
		h.ActiveProtocol = v.snap.Protocol
	}
	var unhealthy []string
	for _, m := range st.Members {
		mh := v.memberHealth(m)
		h.Members = append(h.Members, apitypes.MemberHealth{ID: string(m.ID), Health: mh})
		if versions {
			h.Members[len(h.Members)-1].Version, _ = v.version(m.ID)
		}
		if m.Voter() && (m.ID == v.self() || (v.isCortex() && v.echoFresh(m.ID)) || (!v.isCortex() && mh == apitypes.MemberHealthy)) {
			h.ReachableVoters++
		}
		if mh != apitypes.MemberHealthy && mh != apitypes.MemberCatchingUp {
			ago, heard := v.heardAgo(m.ID)
			why := "never heard from"
			if mh == apitypes.MemberRejoining {
				why = "its store changed: wiped, replaced or restored; it counts toward no quorum until it has caught up"
			} else if heard {
				why = "last heard " + fmtAgo(ago) + " ago"
			}
			unhealthy = append(unhealthy, fmt.Sprintf("member %s is %s (%s)", m.ID, mh, why))
		}
	}
	if v.isCortex() {
		unhealthy = append(unhealthy, v.unreachablePairs()...)
	}
	reason, waiting := "", false
	full, disk := s.n.Store().DiskFull()
	switch {
	case full:
		reason = disk
	case !st.StoreCounts && !v.snap.Joining:
		reason = fmt.Sprintf("this node's store %016x is not the one the membership records for %s (wiped, replaced or restored): it counts toward no quorum and does not run for Cortex until the Cortex has caught it up and recorded it", st.Store, st.ID)
	case v.snap.Joining:
		reason = fmt.Sprintf("this node (%s) is not a member yet: add it with `muninn cluster add-node --node %s` against the Cortex", st.ID, st.ID)
	case v.snap.QuorumWait().Waiting:
		// A restarted member alone or with too few peers (health.go).
		qw := v.snap.QuorumWait()
		reason, waiting, h.ReachableVoters = qw.Text(), true, qw.Connected
	case st.Cortex == "":
		reason = "no Cortex is known: an election is under way"
	case v.isCortex() && h.ReachableVoters < st.Quorum:
		reason = fmt.Sprintf("the Cortex hears from only %d of %d voters within %s (quorum is %d)", h.ReachableVoters, h.Voters, v.window, st.Quorum)
	case v.isCortex() && st.CommitBlocked != "" && !nodeOnly:
		reason = "the cluster cannot commit now: " + st.CommitBlocked
	case !v.isCortex() && st.SDown:
		reason = fmt.Sprintf("the Cortex %s is subjectively down: no heartbeat for %d beats", st.Cortex, core.MissedBeats)
	case !v.isCortex():
		if ago, heard := v.heardAgo(st.Cortex); !heard || ago > v.window {
			reason = fmt.Sprintf("no heartbeat from the Cortex %s within %s", st.Cortex, v.window)
		}
	}
	if reason == "" && !nodeOnly && len(unhealthy) > 0 {
		reason = unhealthy[0]
		if len(unhealthy) > 1 {
			reason += fmt.Sprintf(" (and %d more)", len(unhealthy)-1)
		}
	}
	h.Status = apitypes.HealthOK
	if reason != "" {
		h.Status, h.Reason = apitypes.HealthDegraded, reason
		if waiting {
			h.Status = HealthWaitingForQuorum
		}
	}
	return h
}

// unreachablePairs lists, on the Cortex, voters that report not hearing
// another voter: if the Cortex failed, those two could not elect together,
// a failover risk the Cortex's own view would not show.
func (v view) unreachablePairs() []string {
	var out []string
	for _, m := range v.st.Members {
		p, ok := v.peers[m.ID]
		if !ok || !m.Voter() || !v.echoFresh(m.ID) {
			continue
		}
		for _, u := range p.Unheard {
			if u == v.self() {
				continue
			}
			if um, ok := v.st.Members.Get(u); ok && um.Voter() && (m.ID < u || !slices.Contains(v.peers[u].Unheard, m.ID)) {
				out = append(out, fmt.Sprintf("voters %s and %s cannot reach each other (%s reports no word from %s within %s): if the Cortex fails they cannot elect together; check that each can dial the other's MBP address", m.ID, u, m.ID, u, v.window))
			}
		}
	}
	return out
}

// GET /v1/cluster/health[?scope=node]
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) error {
	scope := r.URL.Query().Get("scope")
	if scope != "" && scope != "cluster" && scope != "node" {
		return badRequest("scope: %q: use cluster (default) or node", scope)
	}
	h := s.health(s.view(), scope == "node")
	status := http.StatusOK
	if h.Status != apitypes.HealthOK {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, h)
	return nil
}

func (s *Server) members(v view) []apitypes.Member {
	out := []apitypes.Member{}
	mbp := map[core.NodeID]string{}
	for _, p := range v.snap.Peers {
		mbp[p.ID] = p.MBPAddr
	}
	if o := s.n.Options(); o.Cluster {
		mbp[v.self()] = o.AdvertiseAddr
	}
	for _, m := range v.st.Members {
		am := apitypes.Member{ID: string(m.ID), Kind: m.Kind.String(), Learner: m.Learner,
			Role: v.role(m), API: v.snap.APIAddrs[m.ID], MBP: mbp[m.ID], Priority: v.priority(m)}
		am.Version, am.Protocol = v.version(m.ID)
		if m.Addr != "" {
			am.MBP = m.Addr
		}
		if m.Store != 0 {
			am.Store = fmt.Sprintf("%016x", m.Store)
		}
		if m.ID == v.self() {
			am.Rejoining = !v.st.StoreCounts
		} else if p, ok := v.peers[m.ID]; ok && p.Seen != 0 {
			am.Rejoining = !p.Counts
		}
		out = append(out, am)
	}
	return out
}

// GET /v1/cluster/info
func (s *Server) handleInfo(w http.ResponseWriter, r *http.Request) error {
	v := s.view()
	st := v.st
	info := apitypes.Info{
		NodeID: string(st.ID), Role: st.Role.String(), Kind: st.Kind.String(), ClusterEnabled: s.n.Options().Cluster,
		Cortex: string(st.Cortex), CortexAPI: v.snap.APIAddrs[st.Cortex], Epoch: uint64(st.Epoch),
		LastSeq: uint64(st.Last.Seq), LastEpoch: uint64(st.Last.Epoch), CommitSeq: uint64(st.Commit.Seq),
		Quorum: st.Quorum, WriteQuorum: st.WriteQ, Joining: v.snap.Joining, Handoff: string(st.Handoff),
		Members: s.members(v), UptimeMs: time.Since(v.snap.Started).Milliseconds(),
		HeartbeatMs: v.cfg.Heartbeat.Milliseconds(), DownAfterMs: v.window.Milliseconds(),
		LeaseMs: v.cfg.Lease().Milliseconds(), LeaseWaitMs: msCeil(v.leaseWait()),
		ClusterID: store.FormatClusterID(s.n.Store().ClusterID()),
		Version:   mbp.BinaryVersion(), Protocol: protocolRange(mbp.ProtocolMin, mbp.ProtocolMax), ActiveProtocol: v.snap.Protocol,
		Features: node.Features(v.snap.Protocol),
	}
	if st.Cortex != "" {
		// The Cortex's epoch is its fencing token; a follower knows it as
		// the epoch it follows.
		info.FencingToken = uint64(st.Epoch)
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

func ptr[T any](v T) *T { return &v }

// msCeil rounds up to a millisecond, so a wait still under way never
// reads 0.
func msCeil(d time.Duration) int64 { return int64((d + time.Millisecond - 1) / time.Millisecond) }

// status computes GET /v1/cluster/status from this node's view. On the
// Cortex every data member's last seq is its match and its lag comes from
// the lag tracker; elsewhere only this node's own lag is known (its
// staleness bound).
func (s *Server) status(v view) apitypes.Status {
	st := v.st
	h := s.health(v, false)
	out := apitypes.Status{
		NodeID: string(st.ID), View: "local", Cortex: string(st.Cortex), Epoch: uint64(st.Epoch),
		LastSeq: uint64(st.Last.Seq), CommitSeq: uint64(st.Commit.Seq), Quorum: st.Quorum,
		Health: h.Status, Reason: h.Reason, Members: []apitypes.MemberStatus{},
		LeaseWaitMs: msCeil(v.leaseWait()), ActiveProtocol: v.snap.Protocol,
	}
	if st.Cortex != "" {
		out.FencingToken = uint64(st.Epoch)
	}
	if v.isCortex() {
		out.View = "cortex"
	}
	for _, m := range st.Members {
		ms := apitypes.MemberStatus{ID: string(m.ID), Role: v.role(m), Kind: m.Kind.String(), Learner: m.Learner,
			Health: v.memberHealth(m), API: v.snap.APIAddrs[m.ID]}
		ms.Version, ms.Protocol = v.version(m.ID)
		p, known := v.peers[m.ID]
		switch {
		case m.ID == v.self():
			ms.Connected = true
			if m.Kind != core.KindSentinel {
				ms.LastSeq = ptr(uint64(st.Last.Seq))
			}
			if !v.isCortex() && m.Kind != core.KindSentinel && st.Staleness != core.Never {
				ms.LagMs = ptr(time.Duration(st.Staleness).Milliseconds())
			}
		default:
			ms.Connected = v.conn[m.ID]
			if ago, heard := v.heardAgo(m.ID); heard {
				ms.LastHeardMs = ptr(ago.Milliseconds())
			}
			if m.Kind == core.KindSentinel || !known {
				break
			}
			if v.isCortex() {
				last := p.Match
				if last == 0 {
					// Nothing acknowledged to this Cortex yet (a new
					// epoch, or the member is down): its last report.
					last = p.Last.Seq
				}
				ms.LastSeq = ptr(uint64(last))
				if p.Echo != 0 || p.Match != 0 {
					if lag, ok := s.lag.lag(p.Match, st.Last.Seq, v.wall); ok {
						ms.LagMs = ptr(lag)
					}
				}
				if m.Learner {
					pct := 100.0
					if st.Last.Seq > 0 {
						pct = float64(p.Match) / float64(st.Last.Seq) * 100
					}
					ms.CatchUp = &apitypes.CatchUp{MatchSeq: uint64(p.Match), TargetSeq: uint64(st.Last.Seq), Percent: min(pct, 100)}
				}
			} else if p.Seen != 0 {
				ms.LastSeq = ptr(uint64(p.Last.Seq))
			}
		}
		out.Members = append(out.Members, ms)
	}
	return out
}

// GET /v1/cluster/status[?local=true]: a non-Cortex node forwards to the
// Cortex (whose view has every member's lag) unless local=true; if that
// fails it answers with its own view.
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) error {
	v := s.view()
	local := r.URL.Query().Get("local")
	if local != "" && local != "true" && local != "false" {
		return badRequest("local: %q: use true or false", local)
	}
	if !v.isCortex() && local != "true" && v.st.Cortex != "" && v.st.Cortex != v.self() &&
		r.Header.Get(apitypes.HeaderForwardedBy) == "" && v.snap.APIAddrs[v.st.Cortex] != "" {
		if err := s.forward(w, r, nil, v.st.Cortex); err == nil {
			return nil
		}
		// Fall through: the Cortex is unreachable; answer locally.
	}
	writeJSON(w, http.StatusOK, s.status(v))
	return nil
}

// POST /v1/cluster/failover
func (s *Server) handleFailover(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	if err := s.checkAdmin(r, body); err != nil {
		return err
	}
	var req apitypes.FailoverRequest
	if len(body) > 0 {
		if err := decodeJSON(body, &req); err != nil {
			return err
		}
	}
	if err := s.needCluster("hand the Cortex role off to"); err != nil {
		return err
	}
	from := s.n.ID()
	if err := s.retryAdmin(r.Context(), func(ctx context.Context) error { return s.n.Transfer(ctx, core.NodeID(req.To)) }); err != nil {
		return s.fail(w, r, body, err)
	}
	s.log.Info(fmt.Sprintf("manual failover: handed the Cortex role off (requested %s)", orAny(req.To)))
	res := apitypes.FailoverResult{From: string(from)}
	deadline := time.Now().Add(s.opts.FailoverWait)
	for time.Now().Before(deadline) {
		st := s.n.Status().Core
		if st.Cortex != "" && st.Cortex != from {
			res.To, res.Epoch = string(st.Cortex), uint64(st.Epoch)
			break
		}
		select {
		case <-r.Context().Done():
			deadline = time.Now()
		case <-time.After(10 * time.Millisecond):
		}
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// retryAdmin runs an admin call, retrying it for up to 5 s
// (retry.Admin) while the refusal is transient and nothing was done: no
// Cortex known (an election), a handoff or another membership change
// under way. It returns the last attempt's error.
func (s *Server) retryAdmin(ctx context.Context, call func(context.Context) error) error {
	return retry.Do(ctx, retry.Admin(), func() error {
		err := call(ctx)
		var ce *core.Error
		if err == nil || !errors.As(err, &ce) {
			return retry.Permanent(err)
		}
		switch {
		case ce.Code == core.CodeNotCortex && ce.Cortex == "", ce.Code == core.CodeNoCortex,
			ce.Code == core.CodeTransferring, ce.Code == core.CodeBusy:
			return err
		}
		return retry.Permanent(err)
	})
}

func orAny(to string) string {
	if to == "" {
		return "the most caught-up lobe"
	}
	return to
}

func (s *Server) needCluster(what string) error {
	if s.n.Options().Cluster {
		return nil
	}
	return &apiError{status: http.StatusConflict, code: apitypes.CodeStandalone,
		msg: fmt.Sprintf("this node runs standalone, so it has no members to %s: enable cluster mode first (see muninn cluster enable)", what)}
}

// POST /v1/cluster/members
func (s *Server) handleAddMember(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	if err := s.checkAdmin(r, body); err != nil {
		return err
	}
	var req apitypes.MemberRequest
	if err := decodeJSON(body, &req); err != nil {
		return err
	}
	// A member id travels in handshakes and names directories
	// (snapshot-out/<id>): the cluster.node_id rule, the same as config's.
	if req.ID == "" {
		return badRequest("id: required: the new node's cluster.node_id (%s)", ident.NodeIDRule)
	}
	if err := ident.CheckNodeID(req.ID); err != nil {
		return badRequest("id: %s is not a valid node id (%v): use %s, the rule of cluster.node_id", quoteID(req.ID), strings.TrimPrefix(err.Error(), ident.ErrInvalid.Error()+": "), ident.NodeIDRule)
	}
	kind, err := core.ParseKind(req.Kind)
	if err != nil {
		return badRequest("kind: %v", err)
	}
	if err := s.needCluster("add"); err != nil {
		return err
	}
	if err := s.retryAdmin(r.Context(), func(ctx context.Context) error {
		return s.n.AddMember(ctx, core.Member{ID: core.NodeID(req.ID), Kind: kind})
	}); err != nil {
		return s.fail(w, r, body, err)
	}
	s.log.Info(fmt.Sprintf("added %s (%s) to the cluster", req.ID, kind))
	writeJSON(w, http.StatusCreated, apitypes.MemberResult{ID: req.ID, Action: "added", Members: s.membersAfter(core.NodeID(req.ID), true)})
	return nil
}

// quoteID quotes an id for a message, cut short.
func quoteID(id string) string {
	if len(id) > 80 {
		return strconv.Quote(id[:80]) + "..."
	}
	return strconv.Quote(id)
}

// DELETE /v1/cluster/members/{id}
func (s *Server) handleRemoveMember(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	if err := s.checkAdmin(r, body); err != nil {
		return err
	}
	id := r.PathValue("id")
	if id == "" || len(id) > core.MaxNodeIDLen {
		return badRequest("id: required, 1 to %d bytes", core.MaxNodeIDLen)
	}
	if err := s.needCluster("remove"); err != nil {
		return err
	}
	if err := s.retryAdmin(r.Context(), func(ctx context.Context) error { return s.n.RemoveMember(ctx, core.NodeID(id)) }); err != nil {
		return s.fail(w, r, body, err)
	}
	s.log.Info(fmt.Sprintf("removed %s from the cluster", id))
	writeJSON(w, http.StatusOK, apitypes.MemberResult{ID: id, Action: "removed", Members: s.membersAfter(core.NodeID(id), false)})
	return nil
}

// membersAfter waits briefly until the published membership shows the
// committed change, then returns it.
func (s *Server) membersAfter(id core.NodeID, present bool) []apitypes.Member {
	deadline := time.Now().Add(time.Second)
	for {
		v := s.view()
		if slices.ContainsFunc(v.st.Members, func(m core.Member) bool { return m.ID == id }) == present || time.Now().After(deadline) {
			return s.members(v)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// version is a member's binary version and protocol range: this node's
// own, or from the member's last hello ("", "" when never heard from; a
// hello without a range is protocol 1).
func (v view) version(id core.NodeID) (string, string) {
	if id == v.self() {
		return mbp.BinaryVersion(), protocolRange(mbp.ProtocolMin, mbp.ProtocolMax)
	}
	for _, p := range v.snap.Peers {
		if p.ID == id {
			if p.ProtoMax == 0 {
				return p.Version, protocolRange(mbp.ProtocolPreNegotiation, mbp.ProtocolPreNegotiation)
			}
			return p.Version, protocolRange(p.ProtoMin, p.ProtoMax)
		}
	}
	return "", ""
}

// protocolRange shows a range as "2" or "2..3".
func protocolRange(lo, hi uint16) string {
	if lo == hi {
		return strconv.Itoa(int(lo))
	}
	return strconv.Itoa(int(lo)) + ".." + strconv.Itoa(int(hi))
}
