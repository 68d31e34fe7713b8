//go:build race

package api

// raceEnabled: the race detector's instrumentation allocates, so
// allocation counts mean nothing under -race.
const raceEnabled = true
