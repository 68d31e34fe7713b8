//go:build unix

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/client"
)

// binPath is the muninn binary TestMain built ("" when the package is
// skipped with -short outside CI).
var binPath string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() && os.Getenv("CI") != "true" {
		// Every test skips itself (needBinary).
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "muninn-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		root, err := moduleRoot()
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		goTool, err := exec.LookPath("go")
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e: the go tool is not on PATH:", err)
			return 1
		}
		binPath = filepath.Join(dir, "muninn")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goTool, "build", "-o", binPath, "./cmd/muninn")
		cmd.Dir = root
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: go build ./cmd/muninn:", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "e2e: built %s in %s\n", binPath, time.Since(start).Round(time.Millisecond))
		return m.Run()
	}()
	os.Exit(code)
}

// moduleRoot walks up from the working directory to the directory holding
// go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

func needBinary(t *testing.T) {
	t.Helper()
	if binPath == "" {
		t.Skip("end-to-end tests skipped with -short (they never are when CI=true)")
	}
}

// ---------------------------------------------------------------- ports

var (
	portMu   sync.Mutex
	usedPort = map[int]bool{}
)

// freePort returns a port on 127.0.0.1 that was free a moment ago and that
// no other node of this test binary got.
func freePort(t *testing.T) int {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("finding a free port: %v", err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !usedPort[p] {
			usedPort[p] = true
			return p
		}
	}
	t.Fatal("no free port found")
	return 0
}

// ---------------------------------------------------------------- nodes

// cluster is a set of nodes of one test. hbMs and leaseTTL 0 keep the
// product's defaults (1000 ms, 10 s).
type cluster struct {
	t        *testing.T
	dir      string
	secret   string
	hbMs     int
	leaseTTL int
	nodes    []*node
}

type node struct {
	c  *cluster
	id string
	// bin is the muninn binary this node runs ("": binPath, this build).
	bin  string
	role string // cluster.role; "" is auto
	// standalone: no cluster section at all (a plain `muninn start`).
	standalone bool
	secret     string
	httpPort   int
	mbpPort    int
	seeds      []*node
	dir        string
	cfgPath    string
	logPath    string

	mu       sync.Mutex
	proc     *os.Process
	done     chan struct{} // closed when the current process has exited
	state    *os.ProcessState
	expected bool // the test stopped it (an exit is not a failure)
	starts   int
}

func newCluster(t *testing.T, hbMs, leaseTTL int) *cluster {
	t.Helper()
	needBinary(t)
	c := &cluster{t: t, dir: t.TempDir(), secret: "e2e-cluster-secret-0123456789abcdef", hbMs: hbMs, leaseTTL: leaseTTL}
	// Registered first, so it runs last: after every node was killed.
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs(60)
		}
	})
	return c
}

// add creates a data node (not started). Seeds are set by seedAll or by
// the caller.
func (c *cluster) add(id string) *node {
	n := &node{c: c, id: id, secret: c.secret, httpPort: freePort(c.t), mbpPort: freePort(c.t)}
	n.dir = filepath.Join(c.dir, id)
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		c.t.Fatal(err)
	}
	n.cfgPath = filepath.Join(n.dir, "muninn.yaml")
	n.logPath = filepath.Join(n.dir, "muninn.log")
	c.nodes = append(c.nodes, n)
	return n
}

// addN adds nodes muninn-01..muninn-0n, each listing all the others as
// seeds, as the seed's walkthrough does.
func (c *cluster) addN(count int) []*node {
	var ns []*node
	for i := 1; i <= count; i++ {
		ns = append(ns, c.add(fmt.Sprintf("muninn-%02d", i)))
	}
	for _, n := range ns {
		for _, o := range ns {
			if o != n {
				n.seeds = append(n.seeds, o)
			}
		}
	}
	return ns
}

func (n *node) url() string     { return fmt.Sprintf("http://127.0.0.1:%d", n.httpPort) }
func (n *node) mbpAddr() string { return fmt.Sprintf("127.0.0.1:%d", n.mbpPort) }

func (n *node) writeConfig() {
	var b strings.Builder
	fmt.Fprintf(&b, "# e2e node %s\n", n.id)
	fmt.Fprintf(&b, "data_dir: %q\n", filepath.Join(n.dir, "data"))
	fmt.Fprintf(&b, "http_addr: %q\n", fmt.Sprintf("127.0.0.1:%d", n.httpPort))
	if n.standalone {
		if err := os.WriteFile(n.cfgPath, []byte(b.String()), 0o600); err != nil {
			n.c.t.Fatal(err)
		}
		return
	}
	b.WriteString("cluster:\n  enabled: true\n")
	fmt.Fprintf(&b, "  node_id: %q\n", n.id)
	fmt.Fprintf(&b, "  bind_addr: %q\n", n.mbpAddr())
	if len(n.seeds) > 0 {
		b.WriteString("  seeds:\n")
		for _, s := range n.seeds {
			fmt.Fprintf(&b, "    - %q\n", s.mbpAddr())
		}
	}
	fmt.Fprintf(&b, "  cluster_secret: %q\n", n.secret)
	if n.c.hbMs > 0 {
		fmt.Fprintf(&b, "  heartbeat_ms: %d\n", n.c.hbMs)
	}
	if n.c.leaseTTL > 0 {
		fmt.Fprintf(&b, "  lease_ttl: %d\n", n.c.leaseTTL)
	}
	if n.role != "" {
		fmt.Fprintf(&b, "  role: %s\n", n.role)
	}
	if err := os.WriteFile(n.cfgPath, []byte(b.String()), 0o600); err != nil {
		n.c.t.Fatal(err)
	}
}

// start runs `muninn start --config F`, appending its output to the node's
// log. The process is killed in t.Cleanup.
func (n *node) start() {
	t := n.c.t
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil && !isClosed(n.done) {
		t.Fatalf("%s is already running", n.id)
	}
	n.writeConfig()
	f, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n.starts++
	fmt.Fprintf(f, "=== e2e: start #%d of %s at %s\n", n.starts, n.id, time.Now().Format(time.RFC3339Nano))
	bin := binPath
	if n.bin != "" {
		bin = n.bin // the release installed on this node (upgrade_test.go)
	}
	cmd := exec.Command(bin, "start", "--config", n.cfgPath)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), "MUNINN_LOG_FORMAT=json")
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", n.id, err)
	}
	done := make(chan struct{})
	n.proc, n.done, n.state, n.expected = cmd.Process, done, nil, false
	go func() {
		cmd.Wait()
		n.mu.Lock()
		n.state = cmd.ProcessState
		n.mu.Unlock()
		close(done)
	}()
	if n.starts == 1 {
		t.Cleanup(n.cleanup)
	}
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// cleanup kills the node's process (SIGCONT first, in case it is stopped).
func (n *node) cleanup() {
	n.mu.Lock()
	p, done := n.proc, n.done
	n.expected = true
	n.mu.Unlock()
	if p == nil || isClosed(done) {
		return
	}
	p.Signal(syscall.SIGCONT)
	p.Kill()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		n.c.t.Errorf("%s (pid %d) did not exit within 10s of SIGKILL", n.id, p.Pid)
	}
}

func (n *node) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc != nil && !isClosed(n.done)
}

func (n *node) pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return 0
	}
	return n.proc.Pid
}

func (n *node) signal(sig os.Signal) {
	n.c.t.Helper()
	n.mu.Lock()
	p := n.proc
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM {
		n.expected = true
	}
	n.mu.Unlock()
	if p == nil {
		n.c.t.Fatalf("%s was never started", n.id)
	}
	if err := p.Signal(sig); err != nil {
		n.c.t.Fatalf("signal %v to %s (pid %d): %v", sig, n.id, p.Pid, err)
	}
}

// kill9 sends SIGKILL and waits for the process to be gone.
func (n *node) kill9() {
	n.c.t.Helper()
	n.signal(syscall.SIGKILL)
	n.waitExit(10 * time.Second)
}

// waitExit waits (bounded) for the process to exit and returns its state.
func (n *node) waitExit(d time.Duration) *os.ProcessState {
	n.c.t.Helper()
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	select {
	case <-done:
	case <-time.After(d):
		n.c.t.Fatalf("%s (pid %d) did not exit within %s", n.id, n.pid(), d)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.state
}

// unexpectedExit reports a node that exited while the test did not stop it.
func (c *cluster) unexpectedExit() string {
	for _, n := range c.nodes {
		n.mu.Lock()
		exited := n.proc != nil && isClosed(n.done) && !n.expected
		st := n.state
		n.mu.Unlock()
		if exited {
			return fmt.Sprintf("%s exited unexpectedly (%v); see its log", n.id, st)
		}
	}
	return ""
}

func (c *cluster) startAll() {
	for _, n := range c.nodes {
		n.start()
	}
}

// ---------------------------------------------------------------- logs

func (n *node) logText() string {
	b, _ := os.ReadFile(n.logPath)
	return string(b)
}

// logMsgs returns the "msg" of every JSON log line (and other lines as
// they are).
func (n *node) logMsgs() []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(n.logText()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var rec struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg != "" {
			out = append(out, rec.Msg)
		} else {
			out = append(out, line)
		}
	}
	return out
}

// countMsg counts log messages containing s.
func (n *node) countMsg(s string) int {
	k := 0
	for _, m := range n.logMsgs() {
		if strings.Contains(m, s) {
			k++
		}
	}
	return k
}

func (c *cluster) dumpLogs(lines int) {
	for _, n := range c.nodes {
		all := strings.Split(strings.TrimRight(n.logText(), "\n"), "\n")
		if len(all) > lines {
			all = all[len(all)-lines:]
		}
		var b strings.Builder
		for _, l := range all {
			if len(l) > 400 {
				l = l[:400] + "..."
			}
			b.WriteString("    " + l + "\n")
		}
		c.t.Logf("---- last %d lines of %s's log (%s):\n%s", len(all), n.id, n.logPath, b.String())
	}
}

// ---------------------------------------------------------------- waiting

// waitFor polls cond every 10 ms until it holds or d passes (then the test
// fails with cond's last description). It fails at once if a node exits
// unexpectedly.
func (c *cluster) waitFor(what string, d time.Duration, cond func() (bool, string)) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	last := ""
	for {
		ok, desc := cond()
		if ok {
			return
		}
		if desc != "" {
			last = desc
		}
		if msg := c.unexpectedExit(); msg != "" {
			c.t.Fatalf("waiting for %s: %s", what, msg)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("waiting for %s: not within %s (last: %s)", what, d, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var shortHTTP = &http.Client{Timeout: 2 * time.Second}

// api is a client for the node's own answers (info, status, health): one
// attempt, no retries.
func (n *node) api() *client.Client {
	return client.New(n.url(), client.WithHTTPClient(shortHTTP), client.WithRetryBudget(0))
}

func (n *node) info() (apitypes.Info, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return n.api().Info(ctx)
}

func (n *node) mustInfo() apitypes.Info {
	n.c.t.Helper()
	i, err := n.info()
	if err != nil {
		n.c.t.Fatalf("info of %s: %v", n.id, err)
	}
	return i
}

func (c *cluster) node(id string) *node {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	return nil
}

// cortexOf returns the Cortex all of ns agree on (each following it, the
// Cortex itself saying it is the Cortex), or nil and why not.
func (c *cluster) cortexOf(ns []*node) (*node, string) {
	cortex := ""
	for _, n := range ns {
		i, err := n.info()
		if err != nil {
			return nil, fmt.Sprintf("%s: %v", n.id, err)
		}
		if i.Cortex == "" {
			return nil, fmt.Sprintf("%s knows no Cortex (role %s, epoch %d)", n.id, i.Role, i.Epoch)
		}
		if cortex == "" {
			cortex = i.Cortex
		} else if i.Cortex != cortex {
			return nil, fmt.Sprintf("%s follows %s, another node follows %s", n.id, i.Cortex, cortex)
		}
		if i.NodeID == cortex && i.Role != "cortex" {
			return nil, fmt.Sprintf("%s is named Cortex but says role %s", n.id, i.Role)
		}
	}
	cx := c.node(cortex)
	if cx == nil || !slices.Contains(ns, cx) {
		return nil, fmt.Sprintf("the nodes follow %s, which is not among the nodes asked", cortex)
	}
	return cx, ""
}

// waitCortex waits until every node of ns follows the same Cortex (one of
// ns) and returns it.
func (c *cluster) waitCortex(ns []*node, d time.Duration) *node {
	c.t.Helper()
	var cx *node
	c.waitFor("one Cortex followed by "+ids(ns), d, func() (bool, string) {
		var why string
		cx, why = c.cortexOf(ns)
		return cx != nil, why
	})
	return cx
}

func ids(ns []*node) string {
	var s []string
	for _, n := range ns {
		s = append(s, n.id)
	}
	return strings.Join(s, ",")
}

func others(ns []*node, not ...*node) []*node {
	var out []*node
	for _, n := range ns {
		if !slices.Contains(not, n) {
			out = append(out, n)
		}
	}
	return out
}

func urls(ns []*node) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.url())
	}
	return out
}

// ---------------------------------------------------------------- raw HTTP

type rawResp struct {
	status int
	node   string
	body   []byte
	err    apitypes.ErrorDetail
}

// raw makes one request to the node (no client logic: no following, no
// retries).
func (n *node) raw(method, path string, body any) (rawResp, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return rawResp{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, n.url()+path, rd)
	if err != nil {
		return rawResp{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	res, err := hc.Do(req)
	if err != nil {
		return rawResp{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return rawResp{}, err
	}
	r := rawResp{status: res.StatusCode, node: res.Header.Get(apitypes.HeaderNode), body: b}
	if res.StatusCode/100 != 2 {
		var eb apitypes.ErrorBody
		if json.Unmarshal(b, &eb) == nil {
			r.err = eb.Error
		}
	}
	return r, nil
}

// listIDs lists a vault on the node itself (all pages) and returns the ids.
func (n *node) listIDs(vault, consistency string) (map[string]bool, error) {
	got := map[string]bool{}
	cursor := ""
	for range 1000 {
		q := url.Values{"vault": {vault}, "limit": {"1000"}}
		if consistency != "" {
			q.Set("consistency", consistency)
		}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		r, err := n.raw("GET", "/api/engrams?"+q.Encode(), nil)
		if err != nil {
			return nil, err
		}
		if r.status != http.StatusOK {
			return nil, fmt.Errorf("%s: list %s: HTTP %d %s", n.id, vault, r.status, r.body)
		}
		var lr apitypes.ListResult
		if err := json.Unmarshal(r.body, &lr); err != nil {
			return nil, err
		}
		for _, e := range lr.Engrams {
			got[e.ID] = true
		}
		if lr.NextCursor == "" {
			return got, nil
		}
		cursor = lr.NextCursor
	}
	return nil, errors.New("too many pages")
}

// waitHasAll waits until the node's own data (eventual reads) holds every
// id of want.
func (c *cluster) waitHasAll(n *node, vault string, want []string, d time.Duration) {
	c.t.Helper()
	c.waitFor(fmt.Sprintf("%s to hold all %d engrams of vault %s", n.id, len(want), vault), d, func() (bool, string) {
		return holdsAll(n, vault, "eventual", want)
	})
}

// holdsAll reports whether a read of vault on n at consistency returns
// every id of want, and if not which are missing (or why it cannot ask).
func holdsAll(n *node, vault, consistency string, want []string) (bool, string) {
	got, err := n.listIDs(vault, consistency)
	if err != nil {
		return false, err.Error()
	}
	var missing []string
	for _, id := range want {
		if !got[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return false, fmt.Sprintf("%d of %d missing, e.g. %v", len(missing), len(want), missing[:min(3, len(missing))])
	}
	return true, ""
}

// ---------------------------------------------------------------- CLI

// cli runs the muninn binary with args (bounded) and returns its stdout,
// stderr and exit code.
func cli(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = os.Environ()
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("muninn %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

// ---------------------------------------------------------------- writer

type ack struct {
	id         string
	start, end time.Time
	epoch, seq uint64
}

type wfail struct {
	id         string
	start, end time.Time
	err        error
}

// writer writes one engram every `every` (sequentially: a slow write
// delays the next) through a shell/client, recording what was
// acknowledged.
type writer struct {
	cl    *client.Client
	vault string
	dur   string
	every time.Duration

	stopOnce sync.Once
	stopc    chan struct{}
	done     chan struct{}

	// settle: an unknown outcome is settled as docs/api.md says, by
	// writing the same id again (until the write's 15 s deadline);
	// settled counts those.
	settle bool

	mu      sync.Mutex
	acks    []ack
	fails   []wfail
	settled int
}

func startWriter(t *testing.T, cl *client.Client, vault, dur string, every time.Duration) *writer {
	w := &writer{cl: cl, vault: vault, dur: dur, every: every, stopc: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	t.Cleanup(w.stop)
	return w
}

func (w *writer) run() {
	defer close(w.done)
	for i := 0; ; i++ {
		select {
		case <-w.stopc:
			return
		default:
		}
		id := client.NewID()
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		req := apitypes.WriteRequest{ID: id, Vault: w.vault, Concept: "e2e", Content: "e2e write " + strconv.Itoa(i) + " " + id}
		var res apitypes.WriteResult
		var err error
		if w.settle {
			var resent int
			res, resent, err = writeSettled(ctx, w.cl, req, w.dur)
			w.mu.Lock()
			w.settled += resent
			w.mu.Unlock()
		} else {
			res, err = w.cl.Write(ctx, req, client.Durability(w.dur))
		}
		cancel()
		end := time.Now()
		w.mu.Lock()
		if err == nil {
			w.acks = append(w.acks, ack{id: id, start: start, end: end, epoch: res.Epoch, seq: res.Seq})
		} else {
			w.fails = append(w.fails, wfail{id: id, start: start, end: end, err: err})
		}
		w.mu.Unlock()
		if d := w.every - time.Since(start); d > 0 {
			select {
			case <-w.stopc:
				return
			case <-time.After(d):
			}
		}
	}
}

// writeSettled writes req and settles an unknown outcome or a lost quorum
// as docs/api.md tells users: by writing the same id again (a 409 for the
// earlier write is success), until ctx ends. It returns how many times it
// sent the write again. The e2e tests with a 300 ms SDOWN window use it:
// a loaded machine can make an answer miss that window, and then the
// write's honest answer is unknown_outcome.
func writeSettled(ctx context.Context, cl *client.Client, req apitypes.WriteRequest, dur string) (apitypes.WriteResult, int, error) {
	res, err := cl.Write(ctx, req, client.Durability(dur))
	resent := 0
	for err != nil && ctx.Err() == nil && (errors.Is(err, client.ErrAmbiguous) || client.IsCode(err, "quorum_unavailable")) {
		resent++
		time.Sleep(50 * time.Millisecond)
		res, err = cl.Write(ctx, req, client.Durability(dur))
	}
	return res, resent, err
}

func (w *writer) stop() {
	w.stopOnce.Do(func() { close(w.stopc) })
	select {
	case <-w.done:
	case <-time.After(20 * time.Second):
	}
}

func (w *writer) snapshot() ([]ack, []wfail) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.acks), slices.Clone(w.fails)
}

func (w *writer) ackCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acks)
}

// waitAcks waits until the writer has k more acknowledgements than now.
func (c *cluster) waitAcks(w *writer, k int, d time.Duration) {
	c.t.Helper()
	base := w.ackCount()
	c.waitFor(fmt.Sprintf("%d more acknowledged writes", k), d, func() (bool, string) {
		acks, fails := w.snapshot()
		desc := fmt.Sprintf("%d acks, %d failures", len(acks)-base, len(fails))
		if len(fails) > 0 {
			desc += fmt.Sprintf("; last failure: %v", fails[len(fails)-1].err)
		}
		return len(acks)-base >= k, desc
	})
}

// checkAcked fails the test unless every acknowledged write is in got.
func checkAcked(t *testing.T, where string, acks []ack, got map[string]bool) {
	t.Helper()
	var missing []string
	for _, a := range acks {
		if !got[a.id] {
			missing = append(missing, fmt.Sprintf("%s (acked at epoch %d seq %d, %s)", a.id, a.epoch, a.seq, a.end.Format("15:04:05.000")))
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d acknowledged writes are missing on %s: %s", len(missing), len(acks), where, strings.Join(missing[:min(10, len(missing))], "; "))
	}
}

// checkRefused: a write the client reported as a definite failure (not
// client.ErrAmbiguous) must not exist; an ambiguous one may or may not
// (issue 19 item 7: "may have happened" is its own answer).
func checkRefused(t *testing.T, where string, fails []wfail, got map[string]bool) {
	t.Helper()
	ambiguous := 0
	for _, f := range fails {
		if errors.Is(f.err, client.ErrAmbiguous) {
			ambiguous++
			continue
		}
		if got[f.id] {
			t.Fatalf("write %s was reported failed (%v), not ambiguous, but it exists on %s", f.id, f.err, where)
		}
	}
	t.Logf("%d failed writes: %d ambiguous (may exist), %d definite (checked absent)", len(fails), ambiguous, len(fails)-ambiguous)
}

// longestStall is the longest time between two consecutive
// acknowledgements (or from the first write's start to its ack) in acks.
func longestStall(acks []ack) (time.Duration, time.Time) {
	var worst time.Duration
	var at time.Time
	for i, a := range acks {
		from := a.start
		if i > 0 {
			from = acks[i-1].end
		}
		if d := a.end.Sub(from); d > worst {
			worst, at = d, from
		}
	}
	return worst, at
}

func stats(ds []time.Duration) string {
	if len(ds) == 0 {
		return "no samples"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return fmt.Sprintf("min %s / median %s / max %s over %d", r(s[0]), r(med), r(s[len(s)-1]), len(s))
}

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return n
		}
	}
	return def
}
