// Package cluster is MuninnDB's real-cluster fault driver, in the manner of
// Jepsen: it brings up one of the product documentation's topologies in
// containers (deploy/compose.*.yml), runs concurrent clients through
// different nodes while a nemesis kills, pauses and partitions them, or
// wipes, restores, corrupts or fills a node's store (storage.go), heals
// everything, and checks the recorded history:
//
//   - strong reads and quorum writes of a few registers are linearizable
//     (porcupine, with the simulator's model: sim.CheckRegisters);
//   - no quorum-acknowledged write is missing at the end;
//   - every local-acknowledged write missing at the end is in some node's
//     quarantine (GET /v1/cluster/quarantine): counted as lost and
//     quarantined;
//   - bounded reads are no staler than their bound;
//   - all live data nodes converge once the faults heal;
//   - nodes cut off from a quorum answer 503 on /v1/cluster/health;
//   - a node whose store was replaced rejoins on a new store identity; a
//     damaged write-ahead log stops the node, naming the file; a full disk
//     hangs nothing and the node stays up (storage.go);
//
// and measures failover times from the client's view (fault → first write
// acknowledged in a newer epoch).
//
// It uses the host only through the docker CLI (docker-compose or docker
// compose), nsenter (iptables and tc inside a container's network
// namespace), HTTP to the nodes' API ports published on 127.0.0.1 (its
// HTTP client refuses to dial any other address), and the nodes' data
// directories, which it creates under TMPDIR as one small filesystem each
// (mkfs.ext4 and mount -o loop, else tmpfs) and bind-mounts at /data
// (datadir.go). Every fault is healed on
// the way out, also on error or interrupt, and every run is bounded in
// time. The command is `muninn-sim cluster` (cmd/muninn-sim); docs/deploy.md
// and docs/reliability.md describe it.
package cluster
