//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// proc is one server process this program started; it is stopped by its
// pid.
type proc struct {
	name string
	args []string
	log  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// procs tracks every process started, for the final cleanup and the pid
// file compare.sh reads in its EXIT trap.
type procs struct {
	mu      sync.Mutex
	all     []*proc
	pidFile string
	dir     string
}

func (ps *procs) start(p *proc) error {
	lf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.args[0], p.args[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Dir = ps.dir
	// Own process group (a terminal Ctrl-C reaches only this program, which
	// stops them by pid); killed if this program dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("starting %s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); lf.Close(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	ps.mu.Lock()
	if !containsProc(ps.all, p) {
		ps.all = append(ps.all, p)
	}
	if ps.pidFile != "" {
		if f, err := os.OpenFile(ps.pidFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
			fmt.Fprintf(f, "%d\n", cmd.Process.Pid)
			f.Close()
		}
	}
	ps.mu.Unlock()
	return nil
}

func containsProc(all []*proc, p *proc) bool {
	for _, q := range all {
		if q == p {
			return true
		}
	}
	return false
}

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// kill sends sig to the process by pid and waits up to 10 s for it to exit.
func (p *proc) kill(sig syscall.Signal) (time.Time, error) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	at := time.Now()
	if cmd == nil {
		return at, fmt.Errorf("%s was not started", p.name)
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return at, err
	}
	select {
	case <-done:
		return at, nil
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		return at, fmt.Errorf("%s (pid %d) did not exit within 10 s of %v; killed", p.name, cmd.Process.Pid, sig)
	}
}

// stopAll stops every running process by pid (SIGTERM, then SIGKILL).
func (ps *procs) stopAll() {
	ps.mu.Lock()
	all := append([]*proc(nil), ps.all...)
	ps.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range all {
		if p.running() {
			wg.Add(1)
			go func() { defer wg.Done(); p.kill(syscall.SIGTERM) }()
		}
	}
	wg.Wait()
}

func (ps *procs) stop(group []*proc) {
	var wg sync.WaitGroup
	for _, p := range group {
		if p.running() {
			wg.Add(1)
			go func() { defer wg.Done(); p.kill(syscall.SIGTERM) }()
		}
	}
	wg.Wait()
}

func (ps *procs) newProc(name string, args ...string) *proc {
	return &proc{name: name, args: args, log: filepath.Join(ps.dir, name+".log")}
}

// recordPid appends pid to the pid file (processes started by
// bench.ProcCluster, which stops them itself).
func (ps *procs) recordPid(pid int) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.pidFile == "" {
		return
	}
	if f, err := os.OpenFile(ps.pidFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
		fmt.Fprintf(f, "%d\n", pid)
		f.Close()
	}
}
