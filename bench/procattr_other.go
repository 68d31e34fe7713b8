//go:build !linux

package bench

import "syscall"

// sysProcAttr: no process-group or parent-death settings off Linux; the
// benchmark still stops every process it started by pid.
func sysProcAttr() *syscall.SysProcAttr { return nil }
