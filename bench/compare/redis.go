//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/muninndb/muninn/bench"
)

// redisGroup is Redis with 1 primary, 2 replicas and 3 Sentinels on
// 127.0.0.1. durable: appendonly with appendfsync always on every node,
// and clients follow each SET with WAIT 1 (one replica has it); async: no
// persistence and no WAIT.
type redisGroup struct {
	ps        *procs
	durable   bool
	servers   []*proc
	ports     []int
	sentinels []*proc
	sports    []int
	// lastKill is when the primary was last killed: a Sentinel does not
	// start another failover of the same master within 2 × failover-timeout
	// of the previous one.
	lastKill time.Time
}

// redisFailoverTimeout is the Sentinels' failover-timeout.
const redisFailoverTimeout = 10 * time.Second

const redisMaster = "bench"

func startRedis(ps *procs, durable bool, tag string) (*redisGroup, error) {
	rg := &redisGroup{ps: ps, durable: durable}
	for range 3 {
		p, err := bench.FreePort()
		if err != nil {
			return nil, err
		}
		rg.ports = append(rg.ports, p)
		s, err := bench.FreePort()
		if err != nil {
			return nil, err
		}
		rg.sports = append(rg.sports, s)
	}
	for i, port := range rg.ports {
		name := fmt.Sprintf("redis-%s-%d", tag, i+1)
		dir := filepath.Join(ps.dir, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		conf := []string{
			"bind 127.0.0.1", fmt.Sprintf("port %d", port), "daemonize no", "protected-mode yes",
			"dir " + dir, `save ""`, `logfile ""`, "loglevel warning",
		}
		if durable {
			conf = append(conf, "appendonly yes", "appendfsync always")
		} else {
			conf = append(conf, "appendonly no")
		}
		if i > 0 {
			conf = append(conf, fmt.Sprintf("replicaof 127.0.0.1 %d", rg.ports[0]))
		}
		cf := filepath.Join(dir, "redis.conf")
		if err := os.WriteFile(cf, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
			return nil, err
		}
		p := ps.newProc(name, "redis-server", cf)
		rg.servers = append(rg.servers, p)
		if err := ps.start(p); err != nil {
			return nil, err
		}
	}
	for i, port := range rg.sports {
		name := fmt.Sprintf("sentinel-%s-%d", tag, i+1)
		dir := filepath.Join(ps.dir, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		conf := []string{
			"bind 127.0.0.1", fmt.Sprintf("port %d", port), "daemonize no", "dir " + dir, `logfile ""`, "loglevel warning",
			fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2", redisMaster, rg.ports[0]),
			fmt.Sprintf("sentinel down-after-milliseconds %s 3000", redisMaster),
			fmt.Sprintf("sentinel failover-timeout %s %d", redisMaster, redisFailoverTimeout.Milliseconds()),
			fmt.Sprintf("sentinel parallel-syncs %s 1", redisMaster),
		}
		cf := filepath.Join(dir, "sentinel.conf")
		if err := os.WriteFile(cf, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
			return nil, err
		}
		p := ps.newProc(name, "redis-sentinel", cf)
		rg.sentinels = append(rg.sentinels, p)
		if err := ps.start(p); err != nil {
			return nil, err
		}
	}
	return rg, rg.waitReady(60 * time.Second)
}

func (rg *redisGroup) all() []*proc {
	return append(append([]*proc(nil), rg.servers...), rg.sentinels...)
}

// cmd runs one command on addr.
func cmd(addr string, args ...string) (any, error) {
	c, err := dialRESP(addr, time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	out, err := c.do(time.Now().Add(2*time.Second), args)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// primary asks the Sentinels for the primary's address.
func (rg *redisGroup) primary() (string, error) {
	var last error
	for i, s := range rg.sentinels {
		if !s.running() {
			continue
		}
		v, err := cmd(fmt.Sprintf("127.0.0.1:%d", rg.sports[i]), "SENTINEL", "get-master-addr-by-name", redisMaster)
		if err != nil {
			last = err
			continue
		}
		if arr, ok := v.([]any); ok && len(arr) == 2 {
			return fmt.Sprintf("%v:%v", arr[0], arr[1]), nil
		}
	}
	return "", fmt.Errorf("redis: no Sentinel named the primary (%v)", last)
}

// waitReady waits until the primary has 2 connected replicas and every
// Sentinel knows the other two and both replicas.
func (rg *redisGroup) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var why string
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		pa, err := rg.primary()
		if err != nil {
			why = err.Error()
			continue
		}
		v, err := cmd(pa, "INFO", "replication")
		if err != nil {
			why = err.Error()
			continue
		}
		info, _ := v.(string)
		if !strings.Contains(info, "connected_slaves:2") {
			why = "primary " + pa + " has fewer than 2 replicas"
			continue
		}
		ok := true
		for i := range rg.sentinels {
			v, err := cmd(fmt.Sprintf("127.0.0.1:%d", rg.sports[i]), "SENTINEL", "master", redisMaster)
			if err != nil {
				ok, why = false, err.Error()
				break
			}
			arr, _ := v.([]any)
			fields := map[string]string{}
			for j := 0; j+1 < len(arr); j += 2 {
				fields[fmt.Sprint(arr[j])] = fmt.Sprint(arr[j+1])
			}
			if fields["num-other-sentinels"] != "2" || fields["num-slaves"] != "2" || fields["flags"] != "master" {
				ok, why = false, fmt.Sprintf("sentinel %d: %v other sentinels, %v replicas, flags %v", i+1, fields["num-other-sentinels"], fields["num-slaves"], fields["flags"])
				break
			}
		}
		if ok {
			return nil
		}
	}
	return fmt.Errorf("redis: not ready within %s: %s (logs in %s)", timeout, why, rg.ps.dir)
}

// redisWriter writes through one connection to the primary.
type redisWriter struct {
	rg   *redisGroup
	addr string
	c    *respConn
}

func (w *redisWriter) set(key, value string) error {
	if w.c == nil {
		pa, err := w.rg.primary()
		if err != nil {
			return err
		}
		c, err := dialRESP(pa, time.Second)
		if err != nil {
			return err
		}
		w.c, w.addr = c, pa
	}
	deadline := time.Now().Add(5 * time.Second)
	var err error
	var out []any
	if w.rg.durable {
		out, err = w.c.do(deadline, []string{"SET", key, value}, []string{"WAIT", "1", "1000"})
		if err == nil {
			if n, _ := out[1].(int64); n < 1 {
				err = redisCode{"redis_wait_timeout", "WAIT 1: no replica acknowledged within 1 s"}
			}
		}
	} else {
		_, err = w.c.do(deadline, []string{"SET", key, value})
	}
	if err != nil {
		if _, ok := err.(redisCode); !ok {
			w.c.Close()
			w.c = nil
		}
	}
	return err
}

type redisCode struct{ code, msg string }

func (e redisCode) Error() string     { return e.msg }
func (e redisCode) ErrorCode() string { return e.code }

func (rg *redisGroup) load(ctx context.Context, o loadShape) (bench.LoadResult, error) {
	ws := make([]*redisWriter, o.clients)
	for i := range ws {
		ws[i] = &redisWriter{rg: rg}
	}
	defer func() {
		for _, w := range ws {
			if w.c != nil {
				w.c.Close()
			}
		}
	}()
	value := bench.Value(o.valueSize, 5)
	seq := make([]int, o.clients)
	return bench.RunLoad(ctx, bench.LoadOptions{Clients: o.clients, Duration: o.duration},
		func(ctx context.Context, w int) (bench.OpKind, error) {
			seq[w]++
			return bench.OpWrite, ws[w].set(fmt.Sprintf("bench:%d:%d", w, seq[w]), value)
		}), nil
}

// failover kills the primary by pid while a writer writes every 10 ms
// (asking the Sentinels for the primary after each error) and returns
// kill → the first write acknowledged by another node. The old primary is
// restarted after (the Sentinels make it a replica) and the group waited
// for.
func (rg *redisGroup) failover(ctx context.Context) (time.Duration, error) {
	if !rg.lastKill.IsZero() {
		// Sentinel would hold a second failover back: wait that out so the
		// figure is the failover time, not the cool-down.
		if wait := time.Until(rg.lastKill.Add(2*redisFailoverTimeout + time.Second)); wait > 0 {
			logf("redis: waiting %s (2 × failover-timeout since the last failover) before the next kill", wait.Round(time.Second))
			time.Sleep(wait)
		}
	}
	if err := rg.waitReady(60 * time.Second); err != nil {
		return 0, err
	}
	pa, err := rg.primary()
	if err != nil {
		return 0, err
	}
	victim := -1
	for i, p := range rg.ports {
		if pa == "127.0.0.1:"+strconv.Itoa(p) {
			victim = i
		}
	}
	if victim < 0 {
		return 0, fmt.Errorf("redis: primary %s is none of ours", pa)
	}
	value := bench.Value(256, 6)
	ack := make(chan time.Time, 1)
	killed := make(chan struct{})
	wctx, stop := context.WithTimeout(ctx, 60*time.Second)
	defer stop()
	wdone := make(chan struct{})
	defer func() { stop(); <-wdone }()
	go func() {
		defer close(wdone)
		w := &redisWriter{rg: rg}
		defer func() {
			if w.c != nil {
				w.c.Close()
			}
		}()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-wctx.Done():
				return
			case <-tick.C:
			}
			if err := w.set(fmt.Sprintf("failover:%d", n), value); err != nil {
				if w.c != nil {
					w.c.Close()
					w.c = nil // WAIT timed out: ask the Sentinels again
				}
				continue
			}
			select {
			case <-killed:
				if w.addr != pa {
					ack <- time.Now()
					return
				}
			default:
			}
		}
	}()
	time.Sleep(500 * time.Millisecond)
	t0, err := rg.servers[victim].kill(9)
	rg.lastKill = t0
	close(killed)
	if err != nil {
		return 0, err
	}
	var d time.Duration
	select {
	case at := <-ack:
		d = at.Sub(t0)
	case <-wctx.Done():
		return 0, fmt.Errorf("redis: no write acknowledged by a new primary within 60 s")
	}
	stop()
	return d, rg.ps.start(rg.servers[victim])
}
