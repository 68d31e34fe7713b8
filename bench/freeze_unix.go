//go:build unix

package bench

import (
	"fmt"
	"syscall"
)

// Freeze stops node i with SIGSTOP (by pid): its sockets stay open and
// nothing it holds is closed, as in a long GC pause or a VM migration.
func (pc *ProcCluster) Freeze(i int) error { return pc.signal(i, syscall.SIGSTOP) }

// Thaw resumes node i with SIGCONT.
func (pc *ProcCluster) Thaw(i int) error { return pc.signal(i, syscall.SIGCONT) }

func (pc *ProcCluster) signal(i int, sig syscall.Signal) error {
	p := pc.Nodes[i]
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil || !p.Running() {
		return fmt.Errorf("%s is not running", p.ID)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%v to %s (pid %d): %w", sig, p.ID, cmd.Process.Pid, err)
	}
	return nil
}
