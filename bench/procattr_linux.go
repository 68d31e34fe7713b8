package bench

import "syscall"

// sysProcAttr puts a started process in its own process group (a Ctrl-C in
// the terminal reaches only the benchmark, which then stops its processes
// by pid) and kills it if the benchmark dies without cleaning up.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
