package cluster

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Runtime is what the harness asks of whatever runs the nodes: start and
// stop them, freeze them, read their logs, find their network namespace.
// Nodes are named by their node id. Two runtimes exist:
//
//   - docker (runtime.go): one container per node, a compose project per
//     topology (deploy/compose.NAME.yml); the default, and what tests the
//     image and the compose files;
//   - netns (runtime_netns.go): one process of a muninn binary built from
//     the checkout per node, each in a network namespace the run makes;
//     no container starts, so a round costs seconds.
type Runtime interface {
	// Name is "docker" or "netns".
	Name() string
	// Do applies verb to a node: kill (SIGKILL), pause (freeze), unpause,
	// start (a stopped node, on the same data directory), stop (SIGTERM,
	// then SIGKILL after a grace period).
	Do(ctx context.Context, verb, node string) error
	// State is running, paused or exited.
	State(ctx context.Context, node string) (string, error)
	// Inspect returns the node's state and the exit code of its last run.
	Inspect(ctx context.Context, node string) (Exit, error)
	// WaitExited waits until the node no longer runs, for at most within;
	// ok is false when it still ran then.
	WaitExited(ctx context.Context, node string, within time.Duration) (Exit, bool, error)
	// Pid is the host pid of the node's process (its network namespace is
	// /proc/PID/ns/net).
	Pid(ctx context.Context, node string) (int, error)
	// NetNS is a path to the node's network namespace that outlives its
	// process ("" when the namespace dies with it, as a container's does).
	NetNS(node string) string
	// Logs returns the last lines of the node's log (stdout and stderr).
	Logs(ctx context.Context, node string, lines int) string
	// LogsSince returns the node's log from since on.
	LogsSince(ctx context.Context, node string, since time.Time) (string, error)
	// Down stops every node and removes what Up made (containers or
	// processes, networks or namespaces), bounded in time.
	Down(ctx context.Context) error
	// KeepHint tells how to remove what --keep left running.
	KeepHint() string
}

// dockerRuntime runs a topology as a compose project: the harness's
// original runtime, the docker CLI behind the Runtime interface.
type dockerRuntime struct {
	d       *Docker
	project string
	files   []string
	// containers maps node id to container id.
	containers map[string]string
}

func (r *dockerRuntime) Name() string { return "docker" }

func (r *dockerRuntime) id(node string) (string, error) {
	id := r.containers[node]
	if id == "" {
		return "", fmt.Errorf("no container for node %s in project %s", node, r.project)
	}
	return id, nil
}

func (r *dockerRuntime) Do(ctx context.Context, verb, node string) error {
	id, err := r.id(node)
	if err != nil {
		return err
	}
	return r.d.Do(ctx, verb, id)
}

func (r *dockerRuntime) State(ctx context.Context, node string) (string, error) {
	id, err := r.id(node)
	if err != nil {
		return "", err
	}
	return r.d.State(ctx, id)
}

func (r *dockerRuntime) Inspect(ctx context.Context, node string) (Exit, error) {
	id, err := r.id(node)
	if err != nil {
		return Exit{}, err
	}
	return r.d.Inspect(ctx, id)
}

func (r *dockerRuntime) WaitExited(ctx context.Context, node string, within time.Duration) (Exit, bool, error) {
	id, err := r.id(node)
	if err != nil {
		return Exit{}, false, err
	}
	return r.d.WaitExited(ctx, id, within)
}

func (r *dockerRuntime) Pid(ctx context.Context, node string) (int, error) {
	id, err := r.id(node)
	if err != nil {
		return 0, err
	}
	return r.d.Pid(ctx, id)
}

func (r *dockerRuntime) NetNS(string) string { return "" }

func (r *dockerRuntime) Logs(ctx context.Context, node string, lines int) string {
	id, err := r.id(node)
	if err != nil {
		return err.Error()
	}
	return r.d.Logs(ctx, id, lines)
}

func (r *dockerRuntime) LogsSince(ctx context.Context, node string, since time.Time) (string, error) {
	id, err := r.id(node)
	if err != nil {
		return "", err
	}
	return r.d.LogsSince(ctx, id, since)
}

// up starts the project and records its containers.
func (r *dockerRuntime) up(ctx context.Context, nodes []Node) error {
	if _, err := r.d.compose(ctx, 3*time.Minute, r.project, r.files, "up", "-d"); err != nil {
		return err
	}
	for _, n := range nodes {
		id, err := r.d.ContainerID(ctx, r.project, r.files, n.ID)
		if err != nil {
			return err
		}
		r.containers[n.ID] = id
	}
	return nil
}

func (r *dockerRuntime) Down(ctx context.Context) error {
	// A paused container cannot be stopped: unpause first.
	for _, id := range r.containers {
		if st, _ := r.d.State(ctx, id); st == "paused" {
			_ = r.d.Do(ctx, "unpause", id)
		}
	}
	_, err := r.d.compose(ctx, 3*time.Minute, r.project, r.files, "down", "-v", "--remove-orphans", "-t", "2")
	return err
}

func (r *dockerRuntime) KeepHint() string {
	var fs []string
	for _, f := range r.files {
		fs = append(fs, "-f "+f)
	}
	return fmt.Sprintf("%s -p %s %s down -v", joinCmd(r.d.Compose), r.project, strings.Join(fs, " "))
}
