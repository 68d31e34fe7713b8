//go:build linux

package cluster

// muninnBinary is the binary built from the checkout: the operator's tool
// the ops nemeses (backup-partition) run as muninn backup and restore.
func (r *netnsRuntime) muninnBinary() string { return r.binary }
