// Package cluster is MuninnDB's real-cluster fault driver, in the manner of
// Jepsen: it brings up one of the product documentation's topologies
// (deploy/compose.*.yml: three nodes, two and a Sentinel, five, three and
// an Observer), in containers or as processes in network namespaces (the
// two runtimes below), runs concurrent clients through
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
//   - an Observer acknowledges no write and is never the Cortex; reads
//     through it are checked as a Lobe's are;
//   - a node whose store was replaced rejoins on a new store identity; a
//     damaged write-ahead log stops the node, naming the file; a full disk
//     hangs nothing and the node stays up (storage.go);
//
// and measures failover times from the client's view (fault → first write
// acknowledged in a newer epoch).
//
// Runtimes (runtime.go). docker, the default: one container per node of
// the image deploy/build.sh builds, a compose project per topology,
// docker kill/pause/start. netns (runtime_netns.go): the run builds
// cmd/muninn from the checkout once, makes a network namespace per node
// (named after the run, muninn-fault-TOPOLOGY-PID-NODE) on a bridge in a
// namespace of its own, with a private 10.77.N.0/24 it checks is unused
// on the host, and runs each node as `ip netns exec NS muninn start
// --config FILE` (SIGKILL, SIGSTOP/SIGCONT, SIGTERM to its process group);
// no container starts, so a round costs seconds. Nothing in a node's
// namespace routes beyond the bridge.
//
// It uses the host only through the docker CLI (docker-compose or docker
// compose) or ip (netns, veths, a bridge), nsenter (iptables and tc inside
// a node's network namespace), HTTP to the nodes' API ports, and the
// nodes' data directories, which it creates under TMPDIR as one small
// filesystem each (mkfs.ext4 and mount -o loop, else tmpfs) and gives the
// node as its data_dir (bind-mounted at /data in a container: datadir.go).
// Its HTTP client refuses to dial any address but the ports published on
// 127.0.0.1 and, in a netns run, the API addresses of that run's own
// nodes on its own bridge (API.allow), withdrawn when the topology is
// taken down. Every fault is healed on the way out, and everything a run
// made (containers or processes, networks or namespaces, mounts) is
// removed, also on error or interrupt; a later run removes what a killed
// one left. Every run is bounded in time. The command is `muninn-sim
// cluster` (cmd/muninn-sim); docs/deploy.md and docs/reliability.md
// describe it.
package cluster
