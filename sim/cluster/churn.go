package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/client"
)

// The membership nemeses: churn (a spare added as a learner, caught up
// and promoted, the Cortex handed off and removed) and rolling (each node
// SIGTERMed in turn and restarted: rolling.go). They take as long as the
// cluster takes, under the workload (Workload.holdUntil keeps the
// clients running until they are done), and what they did is the
// segment's Membership record.
//
// What must hold: the cluster keeps serving (the workload's writes are
// acknowledged again after each step), every checker stays clean, and
// strong reads through the nodes being added and removed are in the
// history: the workload binds clients to the spare (refused until it
// runs) and keeps the removed node running until the heal, so porcupine
// checks what they answered. A removed node must refuse strong reads or
// answer them linearizably.

// Membership is what a membership nemesis did, step by step.
type Membership struct {
	Steps []Step `json:"steps"`
	// Added is the spare added; Removed the node removed (the Cortex,
	// after a handoff).
	Added   string `json:"added,omitempty"`
	Removed string `json:"removed,omitempty"`
	// Promoted is how long the added learner took to become a voter.
	Promoted time.Duration `json:"promoted_ns,omitempty"`
	// KilledLearner (snapshot-kill): the kill landed while the added node
	// was still a learner in the Cortex's view.
	KilledLearner bool `json:"killed_learner,omitempty"`
}

// Step is one action of a membership nemesis.
type Step struct {
	What string        `json:"what"`
	At   time.Duration `json:"at_ns"`
	Took time.Duration `json:"took_ns"`
}

func (m *Membership) step(s *segment, start time.Duration, format string, args ...any) {
	st := Step{What: fmt.Sprintf(format, args...), At: start, Took: s.w.now() - start}
	m.Steps = append(m.Steps, st)
	s.logf("[%s] %s at %s (%s)", s.name(), st.What, ms(st.At), st.Took.Round(time.Millisecond))
}

func (m *Membership) lines() []string {
	if m == nil {
		return nil
	}
	var out []string
	for _, st := range m.Steps {
		out = append(out, fmt.Sprintf("  %s %s (took %s)", ms(st.At), st.What, st.Took.Round(time.Millisecond)))
	}
	return out
}

// membershipNemeses need spare nodes (the netns runtime).
func needsSpare(nemesis string) bool { return nemesis == "churn" || nemesis == "snapshot-kill" }

// longNemesis: the nemesis runs as long as it takes; the workload is
// held until it is done.
func longNemesis(nemesis string) bool {
	return nemesis == "churn" || nemesis == "rolling" || nemesis == "snapshot-kill" || opsNemesis(nemesis)
}

// notApplicable says why nemesis cannot run on topology t in runtime rt
// ("" when it can).
func notApplicable(nemesis string, t Topology, runtime string) string {
	if opsNemesis(nemesis) && runtime != "netns" {
		return nemesis + " needs --runtime netns: it runs the muninn binary against the nodes and rewrites their config files on the host"
	}
	if nemesis == "fill-disk" && t.Mixed() {
		// docs/reliability.md, "The mixed topology".
		return nemesis + " skips topology " + t.Name + ": the previous release, filled as the Cortex, answers requests only after about 3 s (fixed in this release, 2c49e48); fill-disk judges this release"
	}
	if needsSpare(nemesis) {
		if runtime != "netns" {
			return nemesis + " needs --runtime netns: the compose files define no spare node to add"
		}
		if len(t.Spares) == 0 {
			return nemesis + ": topology " + t.Name + " has no spare node"
		}
		for _, n := range t.Nodes {
			if n.Sentinel {
				// docs/clustering.md, "Adding and removing nodes".
				return nemesis + " skips topology " + t.Name + ": a Sentinel does not learn membership changes (a known limit, docs/clustering.md), so the product says to avoid them with a Sentinel"
			}
		}
	}
	return ""
}

// adminRetry calls fn until it succeeds, at most within; an error of one
// of the codes in done ends it as success (the change was already made).
func adminRetry(ctx context.Context, within time.Duration, what string, fn func(context.Context) error) error {
	deadline := time.Now().Add(within)
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, 8*time.Second)
		err := fn(cctx)
		cancel()
		if err == nil {
			return nil
		}
		last = err
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s: not done within %s: %w", what, within, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// apiCode is the API error code of err ("" if none).
func apiCode(err error) string {
	var e *client.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// member returns node's entry in the membership as node `at` knows it.
func (s *segment) member(ctx context.Context, at Node, node string) (apitypes.Member, bool, error) {
	info, err := s.api.Info(ctx, at)
	if err != nil {
		return apitypes.Member{}, false, err
	}
	i := slices.IndexFunc(info.Members, func(m apitypes.Member) bool { return m.ID == node })
	if i < 0 {
		return apitypes.Member{}, false, nil
	}
	return info.Members[i], true, nil
}

// cortexNode returns the current Cortex as a node of the topology.
func (s *segment) cortexNode(ctx context.Context) (Node, uint64, error) {
	id, epoch, err := s.c.Cortex(ctx)
	if err != nil {
		return Node{}, 0, err
	}
	n, ok := s.c.Topo.Node(id)
	if !ok {
		return Node{}, 0, fmt.Errorf("the Cortex %s is not a node of %s", id, s.c.Topo.Name)
	}
	return n, epoch, nil
}

// addSpare starts the first spare on a wiped store, adds it through the
// Cortex and waits until it is a voter; it is then a node of the
// topology. A store that is not fresh would be refused (or rejoin): a
// spare always starts empty.
func (s *segment) addSpare(ctx context.Context, m *Membership, kill func(time.Duration) error) (Node, error) {
	c := s.c
	if len(c.Topo.Spares) == 0 {
		return Node{}, fmt.Errorf("topology %s has no spare node left", c.Topo.Name)
	}
	sp := c.Topo.Spares[0]
	t0 := s.w.now()
	if err := wipeDir(c.data.dir(sp.ID)); err != nil {
		return sp, fmt.Errorf("wiping the spare %s's store: %w", sp.ID, err)
	}
	if err := c.rt.Do(ctx, "start", sp.ID); err != nil {
		return sp, err
	}
	m.step(s, t0, "started spare %s on an empty store", sp.ID)
	t1 := s.w.now()
	err := adminRetry(ctx, 30*time.Second, "adding "+sp.ID, func(ctx context.Context) error {
		cn, _, err := s.cortexNode(ctx)
		if err != nil {
			return err
		}
		_, err = s.api.Client(cn).AddMember(ctx, sp.ID, "auto")
		if err != nil && apiCode(err) == apitypes.CodeBadRequest && strings.Contains(err.Error(), "already") {
			return nil // an earlier attempt whose answer was lost
		}
		return err
	})
	if err != nil {
		return sp, err
	}
	m.Added = sp.ID
	m.step(s, t1, "added %s as a learner", sp.ID)
	// It is a member now: a node of the topology (health, heal, final
	// reads and quarantines include it).
	c.Topo.Spares = c.Topo.Spares[1:]
	c.Topo.Nodes = append(c.Topo.Nodes, sp)
	if kill != nil {
		if err := kill(s.w.now() - t1); err != nil {
			return sp, err
		}
	}
	t2 := s.w.now()
	deadline := time.Now().Add(90 * time.Second)
	for {
		cn, _, err := s.cortexNode(ctx)
		if err == nil {
			mb, ok, merr := s.member(ctx, cn, sp.ID)
			if merr == nil && ok && !mb.Learner {
				break
			}
		}
		if time.Now().After(deadline) {
			e, _ := c.rt.Inspect(ctx, sp.ID)
			return sp, fmt.Errorf("%s still a learner (or not a member) 90 s after it was added; its process is %s (exit code %d); the end of its log: %s",
				sp.ID, e.Status, e.Code, strings.TrimSpace(c.rt.Logs(ctx, sp.ID, 8)))
		}
		select {
		case <-ctx.Done():
			return sp, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	m.Promoted = s.w.now() - t1
	m.step(s, t2, "%s promoted to voter (%s after it was added)", sp.ID, m.Promoted.Round(time.Millisecond))
	return sp, nil
}

// handOffAndRemove hands the Cortex role off (POST /v1/cluster/failover)
// and removes the old Cortex through the new one. The removed node keeps
// running (its clients' strong reads are checked) until retire.
func (s *segment) handOffAndRemove(ctx context.Context, m *Membership, old Node) error {
	c := s.c
	t0 := s.w.now()
	handed := false
	err := adminRetry(ctx, 30*time.Second, "handing off from "+old.ID, func(ctx context.Context) error {
		id, _, err := c.Cortex(ctx)
		if err != nil {
			return err
		}
		if id != old.ID {
			return nil
		}
		handed = true
		_, err = s.api.Client(old).Failover(ctx, "")
		return err
	})
	if err != nil {
		return err
	}
	var now string
	deadline := time.Now().Add(30 * time.Second)
	for {
		id, _, err := c.Cortex(ctx)
		if err == nil && id != "" && id != old.ID {
			now = id
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no Cortex but %s 30 s after the handoff", old.ID)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if handed {
		m.step(s, t0, "handed off %s -> %s", old.ID, now)
	}
	t1 := s.w.now()
	err = adminRetry(ctx, 30*time.Second, "removing "+old.ID, func(ctx context.Context) error {
		cn, _, err := s.cortexNode(ctx)
		if err != nil {
			return err
		}
		if cn.ID == old.ID {
			return fmt.Errorf("%s is the Cortex again: it cannot remove itself", old.ID)
		}
		_, err = s.api.Client(cn).RemoveMember(ctx, old.ID)
		if err != nil && strings.Contains(err.Error(), "not a member") {
			return nil // an earlier attempt whose answer was lost
		}
		return err
	})
	if err != nil {
		return err
	}
	m.Removed = old.ID
	m.step(s, t1, "removed %s", old.ID)
	// No longer a node of the topology: health, heal and final reads
	// leave it out; it is stopped and wiped at the heal (retire).
	c.Topo.Nodes = slices.DeleteFunc(c.Topo.Nodes, func(n Node) bool { return n.ID == old.ID })
	s.retiring = append(s.retiring, old)
	return nil
}

// retire stops the removed nodes, wipes their stores and makes them the
// spares of the next membership nemesis.
func (s *segment) retire(ctx context.Context) error {
	var errs []error
	for _, n := range s.retiring {
		if st, _ := s.c.rt.State(ctx, n.ID); st == "running" || st == "paused" {
			if err := s.c.rt.Do(ctx, "stop", n.ID); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if err := wipeDir(s.c.data.dir(n.ID)); err != nil {
			errs = append(errs, fmt.Errorf("wiping removed %s: %w", n.ID, err))
		}
		s.c.Topo.Spares = append(s.c.Topo.Spares, n)
	}
	s.retiring = nil
	// A spare a failed step left running outside the membership.
	for _, n := range s.c.Topo.Spares {
		if st, err := s.c.rt.State(ctx, n.ID); err == nil && (st == "running" || st == "paused") {
			if err := s.c.rt.Do(ctx, "stop", n.ID); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// injectChurn adds the spare, lets it catch up and be promoted, hands the
// Cortex off and removes it.
func (s *segment) injectChurn(ctx context.Context, cortex string, epoch uint64) (Fault, error) {
	s.memb = &Membership{}
	f := Fault{Kind: "churn", Cortex: cortex, Epoch: epoch, FailsOver: true}
	old, ok := s.c.Topo.Node(cortex)
	if !ok {
		return f, fmt.Errorf("the Cortex %s is not a node of %s", cortex, s.c.Topo.Name)
	}
	sp, err := s.addSpare(ctx, s.memb, nil)
	f.Targets = []string{sp.ID, cortex}
	if err != nil {
		return f, err
	}
	if err := s.handOffAndRemove(ctx, s.memb, old); err != nil {
		return f, err
	}
	f.Note = fmt.Sprintf("added %s (voter after %s), handed off and removed the Cortex %s", sp.ID, s.memb.Promoted.Round(time.Millisecond), cortex)
	return f, nil
}
