//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/muninndb/muninn/bench"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/status"
)

// etcdCluster is a 3-member etcd cluster on 127.0.0.1, spoken to through
// etcd's own Go client (go.etcd.io/etcd/client/v3: gRPC over HTTP/2), as
// an application would.
type etcdCluster struct {
	ps      *procs
	members []*proc
	client  []string // http://127.0.0.1:port
	// one holds a client per member, each with that member as its only
	// endpoint, so a caller picks the member (the leader for the load).
	one []*clientv3.Client
}

// newEtcdClient is a client of the one endpoint. Retries are cut to one
// short one, so that a put to a dead or leaderless member fails within
// its context instead of retrying on (the failover writer then moves on,
// as the muninn and Redis writers do).
func newEtcdClient(endpoint string, failFast bool) (*clientv3.Client, error) {
	cfg := clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	if failFast {
		cfg.MaxUnaryRetries = 1
		cfg.BackoffWaitBetween = 10 * time.Millisecond
	}
	return clientv3.New(cfg)
}

func startEtcd(ps *procs, n int) (*etcdCluster, error) {
	ec := &etcdCluster{ps: ps}
	var peers, initial []string
	var clientPorts []int
	for i := range n {
		cp, err := bench.FreePort()
		if err != nil {
			return nil, err
		}
		pp, err := bench.FreePort()
		if err != nil {
			return nil, err
		}
		clientPorts = append(clientPorts, cp)
		peers = append(peers, fmt.Sprintf("http://127.0.0.1:%d", pp))
		initial = append(initial, fmt.Sprintf("etcd%d=%s", i+1, peers[i]))
	}
	for i := range n {
		name := fmt.Sprintf("etcd%d", i+1)
		cu := fmt.Sprintf("http://127.0.0.1:%d", clientPorts[i])
		ec.client = append(ec.client, cu)
		// Heartbeat 600 ms, election timeout 3000 ms: a follower starts an
		// election after 3-6 s without the leader (etcd randomizes the
		// timeout up to twice), comparable to muninn's 3 missed 1 s
		// heartbeats and Redis's down-after-milliseconds 3000. etcd needs
		// the election timeout at least 5 heartbeats.
		p := ps.newProc(name, "etcd", "--name", name, "--data-dir", filepath.Join(ps.dir, name),
			"--listen-client-urls", cu, "--advertise-client-urls", cu,
			"--listen-peer-urls", peers[i], "--initial-advertise-peer-urls", peers[i],
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "muninn-bench", "--heartbeat-interval", "600", "--election-timeout", "3000",
			"--logger", "zap", "--log-level", "warn")
		ec.members = append(ec.members, p)
		if err := ps.start(p); err != nil {
			return nil, err
		}
	}
	// A client does not need its member up yet: it connects lazily.
	for _, cu := range ec.client {
		c, err := newEtcdClient(cu, true)
		if err != nil {
			ec.close()
			return nil, err
		}
		ec.one = append(ec.one, c)
	}
	return ec, ec.waitHealthy(60 * time.Second)
}

// close closes the clients (the processes are stopped by procs).
func (ec *etcdCluster) close() {
	for _, c := range ec.one {
		c.Close()
	}
	ec.one = nil
}

// etcdError gives an etcd client error a code for the report: etcd_ and
// the gRPC status code (etcd_Unavailable, etcd_DeadlineExceeded, ...).
type etcdError struct{ err error }

func (e etcdError) Error() string { return "etcd: " + e.err.Error() }
func (e etcdError) Unwrap() error { return e.err }
func (e etcdError) ErrorCode() string {
	if errors.Is(e.err, context.DeadlineExceeded) {
		return "timeout"
	}
	if errors.Is(e.err, context.Canceled) {
		return "canceled"
	}
	if st, ok := status.FromError(e.err); ok {
		return "etcd_" + st.Code().String()
	}
	return "etcd_other"
}

// put writes key=value through member i; it returns the raft term of the
// answer.
func (ec *etcdCluster) put(ctx context.Context, i int, key, value string) (uint64, error) {
	return putTerm(ctx, ec.one[i], key, value)
}

func putTerm(ctx context.Context, c *clientv3.Client, key, value string) (uint64, error) {
	res, err := c.Put(ctx, key, value)
	if err != nil {
		return 0, etcdError{err}
	}
	return res.Header.GetRaftTerm(), nil
}

// leader returns the index of the leader and its raft term, from the
// members' Status (maintenance API).
func (ec *etcdCluster) leader(ctx context.Context) (int, uint64, error) {
	ids := make([]uint64, len(ec.members))
	var leader, term uint64
	for i, m := range ec.members {
		if !m.running() {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := ec.one[i].Status(sctx, ec.client[i])
		cancel()
		if err != nil {
			continue
		}
		ids[i] = st.Header.GetMemberId()
		if st.Leader != 0 && st.RaftTerm >= term {
			leader, term = st.Leader, st.RaftTerm
		}
	}
	for i, id := range ids {
		if leader != 0 && id == leader {
			return i, term, nil
		}
	}
	return -1, 0, fmt.Errorf("etcd: no leader found")
}

func (ec *etcdCluster) waitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ok := true
		for i, m := range ec.members {
			if !m.running() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := ec.put(ctx, i, "health", "x")
			cancel()
			if err != nil {
				ok = false
				break
			}
		}
		if ok {
			if _, _, err := ec.leader(context.Background()); err == nil {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("etcd: not healthy within %s (logs in %s)", timeout, ec.ps.dir)
}

// load runs the throughput workload: every worker puts to the leader (like
// a muninn client, which sends writes to the Cortex), all through one
// client with the default retry policy, the way an application shares
// one etcd client: one gRPC connection (HTTP/2) carries the workers'
// concurrent puts.
func (ec *etcdCluster) load(ctx context.Context, o loadShape) (bench.LoadResult, error) {
	li, _, err := ec.leader(ctx)
	if err != nil {
		return bench.LoadResult{}, err
	}
	c, err := newEtcdClient(ec.client[li], false)
	if err != nil {
		return bench.LoadResult{}, err
	}
	defer c.Close()
	value := bench.Value(o.valueSize, 3)
	seq := make([]int, o.clients)
	return bench.RunLoad(ctx, bench.LoadOptions{Clients: o.clients, Duration: o.duration},
		func(ctx context.Context, w int) (bench.OpKind, error) {
			seq[w]++
			_, err := putTerm(ctx, c, fmt.Sprintf("bench/%d/%d", w, seq[w]), value)
			return bench.OpWrite, err
		}), nil
}

// etcdFailoverPutTimeout bounds one put of the failover writer. A put to a
// follower whose leader is gone is not refused: it waits (the follower
// forwards it to the dead leader, and raft drops it), so the writer gives
// up after this and moves to the next member. With 2 s, as before, the
// measured failover came out in steps of 2 s (4.01 s, 6.01 s): the wait,
// not the election. 250 ms bounds that error to 250 ms; an unloaded put
// here takes a few ms.
const etcdFailoverPutTimeout = 250 * time.Millisecond

// failover kills the leader by pid while a writer puts every 10 ms
// (rotating over the members after an error) and returns kill → the first
// put acknowledged in a later raft term. The member is restarted after.
// Puts carry clientv3.WithRequireLeader, etcd's way for a client to be
// refused at once by a member that knows it has no leader.
func (ec *etcdCluster) failover(ctx context.Context) (time.Duration, error) {
	if err := ec.waitHealthy(60 * time.Second); err != nil {
		return 0, err
	}
	li, term, err := ec.leader(ctx)
	if err != nil {
		return 0, err
	}
	value := bench.Value(256, 4)
	ack := make(chan time.Time, 1)
	wctx, stop := context.WithTimeout(ctx, 60*time.Second)
	defer stop()
	killed := make(chan struct{})
	wdone := make(chan struct{})
	defer func() { stop(); <-wdone }()
	go func() {
		defer close(wdone)
		target := (li + 1) % len(ec.members)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-wctx.Done():
				return
			case <-tick.C:
			}
			pctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(wctx), etcdFailoverPutTimeout)
			tm, err := ec.put(pctx, target, fmt.Sprintf("failover/%d", n), value)
			cancel()
			if err != nil {
				target = (target + 1) % len(ec.members)
				continue
			}
			select {
			case <-killed:
				if tm > term {
					ack <- time.Now()
					return
				}
			default:
			}
		}
	}()
	time.Sleep(500 * time.Millisecond)
	t0, err := ec.members[li].kill(9)
	close(killed)
	if err != nil {
		return 0, err
	}
	var d time.Duration
	select {
	case at := <-ack:
		d = at.Sub(t0)
	case <-wctx.Done():
		return 0, fmt.Errorf("etcd: no write acknowledged within 60 s of killing the leader")
	}
	stop()
	return d, ec.ps.start(ec.members[li])
}
