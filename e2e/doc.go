// Package e2e holds MuninnDB's end-to-end tests: real `muninn` processes on
// 127.0.0.1 (distinct ports per node), driven through shell/client and the
// CLI. The package has no code of its own; see the _test.go files.
//
//	go test ./e2e -count=1 -v
//
// TestMain builds ./cmd/muninn once. Locally `-short` skips the package
// (it never does when CI=true). E2E_KILLS sets the number of kill -9
// rounds of TestKillCortexQuorumWrites (default 3) and
// E2E_KILL_HEARTBEAT_MS its heartbeat (default 100; 1000 measures the
// product's defaults). Every node's log tail is printed when a test fails.
package e2e
