//go:build !unix

package bench

import "errors"

var errNoFreeze = errors.New("--stop needs SIGSTOP and SIGCONT: run it on Linux or macOS")

// Freeze is not available without Unix signals.
func (pc *ProcCluster) Freeze(i int) error { return errNoFreeze }

// Thaw is not available without Unix signals.
func (pc *ProcCluster) Thaw(i int) error { return errNoFreeze }
