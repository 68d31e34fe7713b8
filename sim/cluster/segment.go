package cluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Report is one segment: one topology under one nemesis.
type Report struct {
	Topology    string    `json:"topology"`
	Nemesis     string    `json:"nemesis"`
	Round       int       `json:"round"`
	Project     string    `json:"project"`
	HeartbeatMs int       `json:"heartbeat_ms"`
	Duration    string    `json:"duration"`
	Started     time.Time `json:"started"`
	// Wall is the segment's length, recovery and checks included.
	Wall   time.Duration `json:"wall_ns"`
	Faults []Fault       `json:"faults"`
	// Ops counts operations by kind and outcome; TotalOps all of them.
	Ops      OpCounts `json:"ops"`
	TotalOps int      `json:"total_ops"`
	Linear   Linear   `json:"linearizability"`
	Writes   Writes   `json:"writes"`
	// QuarantinedEntries counts this segment's quarantined entries on all
	// nodes.
	QuarantinedEntries int `json:"quarantined_entries"`
	// QuarantineByNode is the size of each node's whole quarantine.
	QuarantineByNode map[string]int `json:"quarantine_by_node"`
	// Failovers are the client-view failover times (fault → first write
	// acknowledged in a newer epoch) of faults that take the Cortex away.
	Failovers []time.Duration `json:"failovers_ns"`
	// Elections are the server's view: fault → a node logged "role
	// changed to cortex" in a newer epoch (during the fault only).
	Elections     []time.Duration `json:"elections_ns"`
	ElectedCortex string          `json:"elected_cortex,omitempty"`
	// NoFailover counts such faults with no acknowledged write in a newer
	// epoch before they healed.
	NoFailover int `json:"no_failover"`
	// Health are the /v1/cluster/health probes of cut-off nodes.
	Health []HealthProbe `json:"health_probes"`
	// RecoveredAfter is heal → every node healthy; ConvergedAfter is heal
	// → every data node identical.
	RecoveredAfter time.Duration `json:"recovered_after_ns"`
	// RecoveryWaitedOn is the last reason a node gave for not being
	// healthy before all were ("" if all were at once).
	RecoveryWaitedOn string        `json:"recovery_waited_on,omitempty"`
	ConvergedAfter   time.Duration `json:"converged_after_ns"`
	FinalCortex      string        `json:"final_cortex"`
	FinalEpoch       uint64        `json:"final_epoch"`
	Anomalies        []Anomaly     `json:"anomalies"`
	Warnings         []string      `json:"warnings,omitempty"`
	// Storage is what a storage nemesis did and saw (storage.go).
	Storage *Storage `json:"storage,omitempty"`
	// LobeDown is what the lobe-down nemesis did and saw (lobedown.go).
	LobeDown *LobeDown `json:"lobe_down,omitempty"`
	// Membership is what a membership nemesis (churn, rolling,
	// snapshot-kill) did, step by step (churn.go).
	Membership *Membership `json:"membership,omitempty"`
	// Events is what the event subscribers saw (events.go).
	Events *EventsView `json:"events,omitempty"`
	// Replay is the command that reruns this soak round alone ("" outside
	// a soak).
	Replay string `json:"replay,omitempty"`
	// Unrecovered: the cluster did not come back; later segments of the
	// topology are skipped.
	Unrecovered bool `json:"unrecovered,omitempty"`
}

// HealthProbe is one /v1/cluster/health answer of a cut-off node.
type HealthProbe struct {
	Node   string        `json:"node"`
	At     time.Duration `json:"at_ns"`
	Status int           `json:"status"`
	// ScopeNode is the status of ?scope=node (can this node serve?).
	ScopeNode int    `json:"scope_node_status"`
	Reason    string `json:"reason"`
}

type segment struct {
	o       Options
	c       *Cluster
	api     *API
	nemesis string
	round   int
	index   int
	logf    func(string, ...any)
	// rng picks the storage nemeses' targets.
	rng *rand.Rand

	// stor is the storage nemesis's record; watchStop stops its
	// background watch of the node.
	stor      *Storage
	watchStop func()
	// lobe is the lobe-down nemesis's record.
	lobe *LobeDown
	// memb is a membership nemesis's record; retiring the nodes it
	// removed, running until the heal (churn.go); nemAnomalies what it
	// found itself.
	memb         *Membership
	retiring     []Node
	nemAnomalies []Anomaly
	// cutAt is when a long nemesis's partition was in force (0: when it
	// returned), so cut-off nodes are probed while it holds.
	cutAt time.Duration
	// recovered receives the recovery timed from the heal.
	recovered chan recovery

	w          *Workload
	ops        []*Op
	finalReads []*Op
	lin        Linear
}

func (s *segment) name() string {
	if r := s.o.soakRound; r != nil {
		return soakName(*r)
	}
	n := s.c.Topo.Name + "-" + s.nemesis
	if s.o.Rounds > 1 {
		n += fmt.Sprintf("-r%d", s.round)
	}
	return n
}

func (s *segment) run(ctx context.Context) (*Report, error) {
	o, c := s.o, s.c
	hb := time.Duration(o.HeartbeatMs) * time.Millisecond
	rep := &Report{Topology: c.Topo.Name, Nemesis: s.nemesis, Round: s.round, Project: c.Project, HeartbeatMs: o.HeartbeatMs,
		Duration: o.Duration.String(), Started: time.Now()}
	defer func() { rep.Wall = time.Since(rep.Started) }()
	defer s.stopWatch()
	if err := c.WaitHealthy(ctx, 60*time.Second+20*hb); err != nil {
		rep.Anomalies = append(rep.Anomalies, Anomaly{"recovery", "before the fault: " + err.Error()})
		rep.Unrecovered = true
		return rep, nil
	}
	tag := fmt.Sprintf("%s-%d-%d", s.nemesis, s.round, time.Now().Unix()%100000)
	wnodes := c.Topo.DataNodes()
	if needsSpare(s.nemesis) && len(c.Topo.Spares) > 0 {
		// Clients bound to the node being added: refused until it runs,
		// then its strong reads are in the history.
		wnodes = append(wnodes, c.Topo.Spares[0])
	}
	s.w = NewWorkload(o.Workload, s.api, wnodes, tag, time.Now())
	if err := s.w.Setup(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	s.logf("[%s] workload %s for %s: %d clients on %d data nodes", s.name(), tag, o.Duration, o.Workload.ClientsPerNode*len(c.Topo.DataNodes()), len(c.Topo.DataNodes()))

	// Event subscribers on two nodes, through the whole segment
	// (events.go).
	subs := subscribe(ctx, s.api, eventNodes(c.Topo))
	subsStopped := false
	defer func() {
		if !subsStopped {
			subs.stop()
		}
	}()
	s.w.start = time.Now()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.w.Run(ctx, o.Duration, s.api.Follower(c.Topo, 3*time.Second))
	}()
	fault, injectErr := s.nemesisRun(ctx, rep, hb)
	wg.Wait()
	if herr := c.HealAll(ctx); herr != nil && injectErr == nil {
		injectErr = fmt.Errorf("healing: %w", herr)
	}
	if injectErr != nil {
		return nil, fmt.Errorf("%s: %w", s.name(), injectErr)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: interrupted: %w", s.name(), err)
	}
	rep.Faults = []Fault{fault}
	rep.Membership = s.memb
	rep.Anomalies = append(rep.Anomalies, s.nemAnomalies...)

	// Recovery: every node healthy (timed from the heal, while the
	// workload ran on), still healthy now, then every data node identical.
	var rec recovery
	select {
	case rec = <-s.recovered:
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: interrupted: %w", s.name(), ctx.Err())
	}
	rep.RecoveryWaitedOn, rep.RecoveredAfter = rec.waited, rec.at-fault.End
	err := rec.err
	if err == nil {
		_, err = c.waitHealthy(ctx, 30*time.Second+20*hb)
	}
	if err != nil {
		rep.Anomalies = append(rep.Anomalies, Anomaly{"recovery", "after healing: " + err.Error()})
		rep.Unrecovered = true
	}
	if !rep.Unrecovered {
		_, why := c.converge(ctx, s.w, 20*time.Second)
		rep.ConvergedAfter = s.w.now() - fault.End
		if why != "" {
			rep.Anomalies = append(rep.Anomalies, Anomaly{"convergence", fmt.Sprintf("data nodes still differ %s after healing: %s", rep.ConvergedAfter.Round(time.Millisecond), why)})
		}
	}
	s.stopWatch()
	final, err := s.final(ctx)
	if st := s.stor; st != nil && st.LostStoreEpoch != 0 {
		final.StoreLostNode, final.StoreLostEpoch = st.Node, st.LostStoreEpoch
	}
	if err != nil {
		rep.Anomalies = append(rep.Anomalies, Anomaly{"final-read", err.Error()})
	}
	rep.FinalCortex, rep.FinalEpoch, rep.QuarantinedEntries, rep.QuarantineByNode = final.Cortex, final.Epoch, final.QuarantinedEntries, final.QuarantineByNode

	// Checks.
	streams, serrs := subs.stop()
	subsStopped = true
	replaced := map[string]bool{}
	if s.stor != nil {
		replaced[s.stor.Node] = true
	}
	if s.memb != nil && s.memb.Added != "" {
		replaced[s.memb.Added] = true
	}
	ev, evAn := checkEvents(streams, replaced)
	for i, e := range serrs {
		if e != "" {
			ev.Subscribers[i].Error = e
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("event subscriber on %s could not start: %s", streams[i].Node, e))
		}
	}
	rep.Events = ev
	rep.Anomalies = append(rep.Anomalies, evAn...)
	s.ops = append(s.w.Ops(), s.finalReads...)
	rep.Ops, rep.TotalOps = countOps(s.w.Ops()), len(s.w.Ops())
	if err == nil {
		var an []Anomaly
		rep.Writes, an = checkWrites(s.ops, final)
		rep.Anomalies = append(rep.Anomalies, an...)
	}
	rep.Anomalies = append(rep.Anomalies, s.checkStorage(ctx, rep, fault, final)...)
	rep.Storage = s.stor
	rep.Anomalies = append(rep.Anomalies, s.checkLobeDown(fault)...)
	rep.LobeDown = s.lobe
	lin, an, lerr := checkLinear(s.ops, 30*time.Second)
	if lerr != nil {
		return rep, lerr
	}
	s.lin, rep.Linear = lin, lin
	rep.Anomalies = append(rep.Anomalies, an...)
	if lin.Result == "timeout" {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("porcupine gave up after 30s on %d operations: linearizability not decided", lin.Ops))
	}
	rep.Anomalies = append(rep.Anomalies, checkBounded(s.ops, time.Duration(o.Workload.MaxLagMs)*time.Millisecond, 250*time.Millisecond)...)
	if d, who, ok := c.electedAfter(ctx, fault.WallStart, fault.Epoch); ok && d <= fault.End-fault.Start {
		rep.Elections = append(rep.Elections, d)
		rep.ElectedCortex = who
	}
	rep.Anomalies = append(rep.Anomalies, checkObserver(c.Topo, s.ops, rep.FinalCortex, rep.ElectedCortex)...)
	if fault.FailsOver {
		if d, ok := failover(s.ops, fault); ok {
			rep.Failovers = append(rep.Failovers, d)
		} else {
			rep.NoFailover++
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("no write was acknowledged in an epoch after %d during the %s fault (%s long)", fault.Epoch, s.nemesis, (fault.End-fault.Start).Round(time.Millisecond)))
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: interrupted: %w", s.name(), err)
	}
	if len(rep.Anomalies) > 0 {
		c.DumpLogs(ctx, 30)
	}
	return rep, nil
}

// nemesisRun injects the fault a quarter into the segment, probes the
// health of cut-off nodes, and heals three quarters in.
func (s *segment) nemesisRun(ctx context.Context, rep *Report, hb time.Duration) (Fault, error) {
	o, c := s.o, s.c
	sleepUntil := func(t time.Duration) {
		select {
		case <-ctx.Done():
		case <-time.After(t - s.w.now()):
		}
	}
	if s.nemesis == "restore-old" {
		sleepUntil(o.Duration / 8)
		if err := s.copyEarly(ctx); err != nil {
			return Fault{Kind: s.nemesis}, err
		}
	}
	sleepUntil(o.Duration / 4)
	cortex, epoch, err := c.Cortex(ctx)
	if err != nil {
		return Fault{}, err
	}
	start, wall := s.w.now(), time.Now()
	long := longNemesis(s.nemesis)
	if long {
		// It takes as long as it takes: the clients run until it is
		// done and a quarter segment more.
		s.w.holdUntil(start + 10*time.Minute)
	}
	var f Fault
	switch {
	case s.nemesis == "churn":
		f, err = s.injectChurn(ctx, cortex, epoch)
	case s.nemesis == "combo":
		f, err = s.injectCombo(ctx, cortex, epoch)
	case s.nemesis == "snapshot-kill":
		f, err = s.injectSnapshotKill(ctx, cortex, epoch)
	case s.nemesis == "backup-partition":
		f, err = s.injectBackupPartition(ctx, cortex, epoch)
	case s.nemesis == "rotate-kill":
		f, err = s.injectRotateKill(ctx, cortex, epoch)
	case s.nemesis == "rolling":
		var an []Anomaly
		f, an, err = s.injectRolling(ctx, cortex, epoch)
		s.nemAnomalies = append(s.nemAnomalies, an...)
	case isStorage(s.nemesis):
		f, err = s.injectStorage(ctx, cortex, epoch)
	case s.nemesis == "lobe-down":
		f, err = s.injectLobeDown(ctx, cortex, epoch)
	default:
		f, err = c.Inject(ctx, s.nemesis, cortex, epoch)
	}
	f.Start, f.WallStart = start, wall
	injected := s.w.now()
	if s.cutAt > 0 {
		injected = s.cutAt
	}
	if err != nil && long && ctx.Err() == nil {
		// A membership step the cluster did not complete in its bound
		// (a join never promoted, a handoff or removal refused) is the
		// product's failure, not the harness's: an anomaly, and the
		// segment heals and checks as usual (a soak goes on).
		s.nemAnomalies = append(s.nemAnomalies, Anomaly{s.nemesis, err.Error()})
		f.Note = "did not complete: " + err.Error()
		err = nil
	}
	if err != nil {
		f.End = s.w.now()
		return f, err
	}
	note := f.Note
	if f.Sides != "" {
		note = f.Sides
	}
	s.logf("[%s] fault at %s: %s %s (Cortex %s, epoch %d) %s", s.name(), ms(f.Start), f.Kind, strings.Join(f.Targets, ","), cortex, epoch, note)
	heal := 3 * o.Duration / 4
	if long {
		heal = max(heal, s.w.now()+o.Duration/4)
		s.w.holdUntil(heal + o.Duration/4)
	}
	if s.lobe != nil {
		s.probeLobeDown(ctx, rep, f, heal)
	}
	if len(f.CutOff) > 0 {
		// A cut-off node must report 503 once the SDOWN window (3
		// heartbeats) has passed, plus a margin, counted from when the
		// cut is in force: injecting it (iptables in each container) can
		// take a second on a loaded machine.
		probe := max(f.Start, injected) + 3*hb + time.Second
		if probe < heal-100*time.Millisecond {
			sleepUntil(probe)
			for _, id := range f.CutOff {
				n, _ := c.Topo.Node(id)
				hp := HealthProbe{Node: id, At: s.w.now()}
				h, code, err := s.api.Health(ctx, n)
				hp.Status, hp.Reason = code, h.Reason
				if err != nil {
					hp.Reason = err.Error()
				}
				if r, err := s.api.Do(ctx, n, "GET", "/v1/cluster/health", url.Values{"scope": {"node"}}, nil, 3*time.Second); err == nil {
					hp.ScopeNode = r.Status
				}
				rep.Health = append(rep.Health, hp)
				if code == 200 || hp.ScopeNode == 200 {
					rep.Anomalies = append(rep.Anomalies, Anomaly{"health-below-quorum", fmt.Sprintf("%s is cut off from a quorum (%s) but /v1/cluster/health answered %d (scope=node %d) at %s",
						id, f.Sides, code, hp.ScopeNode, ms(hp.At))})
				}
			}
		} else {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("fault too short to probe health: need 3 heartbeats + 1s (%s), have %s; use a longer --duration", 3*hb+time.Second, heal-f.Start))
		}
	}
	sleepUntil(heal)
	if s.lobe != nil {
		s.lobe.HealAt = s.w.now()
	}
	err = s.retire(ctx)
	if herr := c.HealAll(ctx); err == nil {
		err = herr
	}
	f.End = s.w.now()
	s.logf("[%s] healed at %s", s.name(), ms(f.End))
	s.watchRecovery(ctx, hb)
	return f, err
}

// recovery is when every node was healthy again after the heal, and the
// last reason one gave before.
type recovery struct {
	at     time.Duration
	waited string
	err    error
}

// watchRecovery times, from the heal on and while the workload runs on,
// how long until every node is healthy; the result arrives on s.recovered.
func (s *segment) watchRecovery(ctx context.Context, hb time.Duration) {
	s.recovered = make(chan recovery, 1)
	go func() {
		waited, err := s.c.waitHealthy(ctx, 30*time.Second+20*hb)
		s.recovered <- recovery{at: s.w.now(), waited: waited, err: err}
	}()
}

// final reads the registers (strong, through the Cortex: recorded as
// operations so porcupine checks them), the unique vault (strong list on
// the Cortex) and every node's quarantine.
func (s *segment) final(ctx context.Context) (Final, error) {
	c := s.c
	f := Final{Present: map[string]bool{}, Quarantined: map[string]string{}, QuarantineByNode: map[string]int{}}
	cortex, epoch, err := c.Cortex(ctx)
	if err != nil {
		return f, err
	}
	f.Cortex, f.Epoch = cortex, epoch
	n, ok := c.Topo.Node(cortex)
	if !ok {
		return f, fmt.Errorf("the Cortex %s is not a node of %s", cortex, c.Topo.Name)
	}
	for k, id := range s.w.RegIDs {
		op := &Op{Client: 1000 + k, Node: n.ID, Kind: OpRegRead, Key: k, ID: id}
		s.w.do(ctx, n, op)
		s.finalReads = append(s.finalReads, op)
		if op.Outcome != OK {
			return f, fmt.Errorf("final strong read of register %d on the Cortex %s: %s", k, cortex, op.Code)
		}
	}
	es, err := s.api.ListAll(ctx, n, s.w.UniVault, "strong")
	if err != nil {
		return f, err
	}
	for _, e := range es {
		f.Present[e.ID] = true
	}
	for _, n := range c.Topo.Nodes {
		fl, err := s.api.Quarantine(ctx, n)
		if err != nil {
			if n.Sentinel {
				continue
			}
			return f, fmt.Errorf("quarantine of %s: %w", n.ID, err)
		}
		f.QuarantineByNode[n.ID] = len(fl.Entries)
		for _, e := range fl.Entries {
			if e.Vault != s.w.UniVault && e.Vault != s.w.RegVault {
				continue
			}
			f.QuarantinedEntries++
			if e.Vault == s.w.UniVault && e.ID != "" {
				f.Quarantined[e.ID] = n.ID
			}
		}
	}
	return f, nil
}
