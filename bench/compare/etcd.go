//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/muninndb/muninn/bench"
)

// etcdCluster is a 3-member etcd cluster on 127.0.0.1, spoken to through
// its v3 JSON gateway (POST /v3/kv/put with base64 key and value).
type etcdCluster struct {
	ps      *procs
	members []*proc
	client  []string // http://127.0.0.1:port
	hc      *http.Client
}

func startEtcd(ps *procs, n int) (*etcdCluster, error) {
	ec := &etcdCluster{ps: ps, hc: bench.HTTPClient(64)}
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
	return ec, ec.waitHealthy(60 * time.Second)
}

func (ec *etcdCluster) post(ctx context.Context, url string, body any, out any) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := ec.hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return etcdError{status: res.StatusCode, body: strings.TrimSpace(string(rb))}
	}
	if out != nil {
		return json.Unmarshal(rb, out)
	}
	return nil
}

type etcdError struct {
	status int
	body   string
}

func (e etcdError) Error() string     { return fmt.Sprintf("etcd: HTTP %d: %s", e.status, e.body) }
func (e etcdError) ErrorCode() string { return "etcd_http_" + strconv.Itoa(e.status) }

type etcdHeader struct {
	MemberID string `json:"member_id"`
	RaftTerm string `json:"raft_term"`
	Revision string `json:"revision"`
}

// put writes key=value through member i; it returns the raft term of the
// answer.
func (ec *etcdCluster) put(ctx context.Context, i int, key, value string) (uint64, error) {
	var res struct {
		Header etcdHeader `json:"header"`
	}
	err := ec.post(ctx, ec.client[i]+"/v3/kv/put", map[string]string{
		"key": base64.StdEncoding.EncodeToString([]byte(key)), "value": base64.StdEncoding.EncodeToString([]byte(value)),
	}, &res)
	if err != nil {
		return 0, err
	}
	term, _ := strconv.ParseUint(res.Header.RaftTerm, 10, 64)
	return term, nil
}

// leader returns the index of the leader and its raft term.
func (ec *etcdCluster) leader(ctx context.Context) (int, uint64, error) {
	for i, m := range ec.members {
		if !m.running() {
			continue
		}
		var st struct {
			Header   etcdHeader `json:"header"`
			Leader   string     `json:"leader"`
			RaftTerm string     `json:"raftTerm"`
		}
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		err := ec.post(sctx, ec.client[i]+"/v3/maintenance/status", map[string]string{}, &st)
		cancel()
		if err != nil || st.Leader == "" || st.Leader == "0" {
			continue
		}
		term, _ := strconv.ParseUint(st.RaftTerm, 10, 64)
		// Find the member whose id is the leader's.
		for j, m2 := range ec.members {
			if !m2.running() {
				continue
			}
			var s2 struct {
				Header etcdHeader `json:"header"`
			}
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			err := ec.post(sctx, ec.client[j]+"/v3/maintenance/status", map[string]string{}, &s2)
			cancel()
			if err == nil && s2.Header.MemberID == st.Leader {
				return j, term, nil
			}
		}
		_ = i
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

// load runs the throughput workload: every client writes to the leader
// (like a muninn client, which sends writes to the Cortex).
func (ec *etcdCluster) load(ctx context.Context, o loadShape) (bench.LoadResult, error) {
	li, _, err := ec.leader(ctx)
	if err != nil {
		return bench.LoadResult{}, err
	}
	value := bench.Value(o.valueSize, 3)
	seq := make([]int, o.clients)
	return bench.RunLoad(ctx, bench.LoadOptions{Clients: o.clients, Duration: o.duration},
		func(ctx context.Context, w int) (bench.OpKind, error) {
			seq[w]++
			_, err := ec.put(ctx, li, fmt.Sprintf("bench/%d/%d", w, seq[w]), value)
			return bench.OpWrite, err
		}), nil
}

// failover kills the leader by pid while a writer puts every 10 ms
// (rotating over the members after an error) and returns kill → the first
// put acknowledged in a later raft term. The member is restarted after.
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
			pctx, cancel := context.WithTimeout(wctx, 2*time.Second)
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
