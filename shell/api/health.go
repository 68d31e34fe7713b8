package api

// HealthWaitingForQuorum is GET /v1/cluster/health's status for a member
// whose store is open and which listens for its peers, but which is
// connected to fewer voters (itself included) than a quorum and knows no
// Cortex: a node restarted alone, as the seed's full-restart procedure
// starts the Cortex before the Lobes (issue 16, part 5). Its reason reads
// "store open, waiting for a quorum: 1/3 voters (...)".
//
// The answer stays 503, with or without scope=node: such a node cannot
// take a write or a strong read, so a load balancer must not send it
// traffic. The restart procedure's "wait for it to be ready" waits for the
// body's status to be waiting_for_quorum or ok (docs/clustering.md); while
// the process is still opening its store every answer is 503 with error
// code "starting" and no status.
const HealthWaitingForQuorum = "waiting_for_quorum"
