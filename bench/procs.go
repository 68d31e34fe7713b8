package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/client"
)

// FreePort returns a free TCP port on 127.0.0.1 (it is free now; nothing
// holds it).
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Proc is one muninn process of a ProcCluster.
type Proc struct {
	ID   string
	HTTP string // 127.0.0.1:port
	MBP  string // 127.0.0.1:port (cluster mode)
	Dir  string
	Log  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	// want is set while the process should be running (started and not
	// killed on purpose).
	want bool
}

// exited reports whether the process stopped without being killed.
func (p *Proc) exited() bool {
	p.mu.Lock()
	want := p.want
	p.mu.Unlock()
	return want && !p.Running()
}

// URL is the node's API base URL.
func (p *Proc) URL() string { return "http://" + p.HTTP }

// Pid is the running process's pid (0 when not running).
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	select {
	case <-p.done:
		return 0
	default:
		return p.cmd.Process.Pid
	}
}

// Running reports whether the process is alive.
func (p *Proc) Running() bool { return p.Pid() != 0 }

// ProcCluster is a cluster of muninn processes on 127.0.0.1 started from
// one binary, with temporary data directories. Stop kills every process
// it started by pid.
type ProcCluster struct {
	Exe         string
	Root        string
	Nodes       []*Proc
	Standalone  bool
	HeartbeatMs int
	secret      string
	// OnStart, when set, is told each started process's pid (compare.sh
	// keeps them in a pid file).
	OnStart func(pid int)
}

// NewProcCluster prepares (does not start) n nodes; n = 1 with standalone
// is a standalone node.
func NewProcCluster(exe string, n, heartbeatMs int, standalone bool) (*ProcCluster, error) {
	root, err := os.MkdirTemp("", "muninn-bench-")
	if err != nil {
		return nil, err
	}
	var sb [24]byte
	rand.Read(sb[:])
	pc := &ProcCluster{Exe: exe, Root: root, Standalone: standalone, HeartbeatMs: heartbeatMs, secret: hex.EncodeToString(sb[:])}
	for i := range n {
		hp, err := FreePort()
		if err != nil {
			return nil, err
		}
		p := &Proc{ID: fmt.Sprintf("bench-%02d", i+1), HTTP: fmt.Sprintf("127.0.0.1:%d", hp)}
		if standalone {
			p.ID = "standalone"
		} else {
			mp, err := FreePort()
			if err != nil {
				return nil, err
			}
			p.MBP = fmt.Sprintf("127.0.0.1:%d", mp)
		}
		p.Dir = filepath.Join(root, p.ID)
		p.Log = filepath.Join(root, p.ID+".log")
		pc.Nodes = append(pc.Nodes, p)
	}
	return pc, nil
}

// URLs lists the nodes' API URLs.
func (pc *ProcCluster) URLs() []string {
	var us []string
	for _, p := range pc.Nodes {
		us = append(us, p.URL())
	}
	return us
}

func (pc *ProcCluster) args(p *Proc) []string {
	a := []string{"start", "--data-dir", p.Dir, "--http-addr", p.HTTP, "--log-format", "json"}
	if pc.Standalone {
		return a
	}
	lease := max(10, (3*pc.HeartbeatMs+999)/1000)
	return append(a,
		"--set", "cluster.enabled=true",
		"--set", "cluster.node_id="+p.ID,
		"--set", "cluster.bind_addr="+p.MBP,
		"--set", fmt.Sprintf("cluster.heartbeat_ms=%d", pc.HeartbeatMs),
		"--set", fmt.Sprintf("cluster.lease_ttl=%d", lease))
}

// env is this process's environment without MUNINN_* (a node refuses
// unknown ones) plus the cluster secret (kept off the command line) and the
// seeds (`--set cluster.seeds=a,b` does not work: the CLI splits repeatable
// flag values on commas).
func (pc *ProcCluster) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MUNINN_") {
			env = append(env, kv)
		}
	}
	if !pc.Standalone {
		var seeds []string
		for _, q := range pc.Nodes {
			seeds = append(seeds, q.MBP)
		}
		env = append(env, "MUNINN_CLUSTER_SECRET="+pc.secret, "MUNINN_CLUSTER_SEEDS="+strings.Join(seeds, ","))
	}
	return env
}

// Start (re)starts node i; its log is appended to p.Log.
func (pc *ProcCluster) Start(i int) error {
	p := pc.Nodes[i]
	if p.Running() {
		return fmt.Errorf("%s is already running (pid %d)", p.ID, p.Pid())
	}
	lf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(pc.Exe, pc.args(p)...)
	cmd.Env = pc.env()
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("starting %s: %w", p.ID, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		lf.Close()
		close(done)
	}()
	p.mu.Lock()
	p.cmd, p.done, p.want = cmd, done, true
	p.mu.Unlock()
	if pc.OnStart != nil {
		pc.OnStart(cmd.Process.Pid)
	}
	return nil
}

// StartAll starts every node.
func (pc *ProcCluster) StartAll() error {
	for i := range pc.Nodes {
		if err := pc.Start(i); err != nil {
			return err
		}
	}
	return nil
}

// Kill sends SIGKILL to node i by pid and waits for it to exit. It
// returns when the signal was sent.
func (pc *ProcCluster) Kill(i int) (time.Time, error) {
	p := pc.Nodes[i]
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.want = false
	p.mu.Unlock()
	if cmd == nil {
		return time.Time{}, fmt.Errorf("%s is not running", p.ID)
	}
	at := time.Now()
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return at, err
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		return at, fmt.Errorf("%s (pid %d) did not exit within 10 s of SIGKILL", p.ID, cmd.Process.Pid)
	}
	return at, nil
}

// Stop kills every running node by pid and removes the data directories
// unless keep is set.
func (pc *ProcCluster) Stop(keep bool) {
	for i, p := range pc.Nodes {
		if p.Running() {
			pc.Kill(i)
		}
	}
	if !keep {
		os.RemoveAll(pc.Root)
	}
}

// TailLog returns the last n bytes of node i's log (for error messages).
func (pc *ProcCluster) TailLog(i, n int) string {
	b, err := os.ReadFile(pc.Nodes[i].Log)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

var probe = &http.Client{Timeout: time.Second}

// healthOK reports whether the node at url answers GET /v1/cluster/health
// with 200 (a Cortex, a quorum, every member healthy). A standalone node
// answers 200 as soon as it serves.
func healthOK(ctx context.Context, url string) bool {
	req, err := http.NewRequestWithContext(ctx, "GET", url+"/v1/cluster/health", nil)
	if err != nil {
		return false
	}
	res, err := probe.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

// WaitHealthy waits until every running node reports a healthy cluster.
func (pc *ProcCluster) WaitHealthy(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		for i, p := range pc.Nodes {
			if p.exited() {
				return fmt.Errorf("%s exited; its log ends with:\n%s", p.ID, pc.TailLog(i, 2000))
			}
			if !p.Running() {
				continue
			}
			if !healthOK(ctx, p.URL()) {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			var bad []string
			for i, p := range pc.Nodes {
				if p.Running() && !healthOK(ctx, p.URL()) {
					bad = append(bad, fmt.Sprintf("%s (%s): log tail:\n%s", p.ID, p.URL(), pc.TailLog(i, 1500)))
				}
			}
			return fmt.Errorf("the cluster was not healthy within %s: %s", timeout, strings.Join(bad, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Cortex asks the running nodes which one is the Cortex: the node whose
// own info says it is the Cortex, at the highest epoch.
func (pc *ProcCluster) Cortex(ctx context.Context) (int, apitypes.Info, error) {
	best, bestInfo := -1, apitypes.Info{}
	for i, p := range pc.Nodes {
		if !p.Running() {
			continue
		}
		ictx, cancel := context.WithTimeout(ctx, time.Second)
		info, err := client.New(p.URL()).Info(ictx)
		cancel()
		if err != nil || info.Role != "cortex" {
			continue
		}
		if best < 0 || info.Epoch > bestInfo.Epoch {
			best, bestInfo = i, info
		}
	}
	if best < 0 {
		return -1, bestInfo, errors.New("no running node says it is the Cortex")
	}
	return best, bestInfo, nil
}

// NewCortexSince reports whether a running node other than skip is the
// Cortex of an epoch after epoch.
func (pc *ProcCluster) NewCortexSince(ctx context.Context, skip int, epoch uint64) bool {
	for i, p := range pc.Nodes {
		if i == skip || !p.Running() {
			continue
		}
		ictx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		info, err := client.New(p.URL(), client.WithHTTPClient(probe)).Info(ictx)
		cancel()
		if err == nil && info.Cortex != "" && info.Epoch > epoch && info.FencingToken > epoch {
			return true
		}
	}
	return false
}
