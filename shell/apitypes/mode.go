package apitypes

// EnableRequest is POST /v1/cluster/enable's body.
type EnableRequest struct {
	// NodeID is the node's cluster.node_id from now on (required).
	NodeID string `json:"node_id"`
	// BindAddr is the MBP listen address, host:port (required).
	BindAddr string `json:"bind_addr"`
	// AdvertiseAddr is the MBP address other nodes dial (default BindAddr).
	AdvertiseAddr string `json:"advertise_addr,omitempty"`
	// ClusterSecret is the cluster secret; empty: the node's configured
	// cluster.cluster_secret (or MUNINN_CLUSTER_SECRET in its environment).
	ClusterSecret string `json:"cluster_secret,omitempty"`
}

// ModeResult is the answer of POST /v1/cluster/enable and /disable: the
// node as it runs after the switch.
type ModeResult struct {
	NodeID    string   `json:"node_id"`
	Mode      string   `json:"mode"` // "cluster" or "standalone"
	Role      string   `json:"role"`
	Cortex    string   `json:"cortex"`
	Epoch     uint64   `json:"epoch"`
	LastSeq   uint64   `json:"last_seq"`
	CommitSeq uint64   `json:"commit_seq"`
	MBPAddr   string   `json:"mbp_addr,omitempty"`
	Members   []string `json:"members"`
	// Recorded is the file in the data directory that records the mode.
	Recorded string `json:"recorded"`
	// SwitchMs is how long the node did not serve (old node closed to new
	// node serving).
	SwitchMs int64 `json:"switch_ms"`
}
