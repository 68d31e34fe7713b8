//go:build !linux

package cluster

import (
	"errors"
	"os"
)

var errLinuxOnly = errors.New("the storage nemeses need Linux")

func diskFree(string) (uint64, uint64, error) { return 0, 0, errLinuxOnly }

func fallocate(*os.File, int64) error { return errLinuxOnly }

func isNoSpace(error) bool { return false }

func liveRun(string) func(string) bool { return func(string) bool { return false } }
