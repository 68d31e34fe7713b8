//go:build !unix

package bench

import "errors"

// selfCPU is not measured on this platform.
func selfCPU() (float64, error) {
	return 0, errors.New("the load generator's CPU is measured on Unix only")
}
