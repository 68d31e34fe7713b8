package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Docker runs the docker and compose command-line tools.
type Docker struct {
	// Compose is the compose command: ["docker-compose"] or
	// ["docker", "compose"].
	Compose []string
	// Env is added to the environment of compose commands (the nodes'
	// secret, token and heartbeat).
	Env []string
}

// ErrNoDocker is returned by FindDocker when there is no usable docker
// engine.
var ErrNoDocker = errors.New("docker is not available")

// FindDocker checks that the docker CLI is installed and the engine
// answers, and picks the compose command: docker-compose if installed,
// else the docker compose plugin.
func FindDocker(ctx context.Context) (*Docker, error) {
	if _, err := exec.LookPath("docker"); err != nil {
		return nil, fmt.Errorf("%w: the docker command is not installed", ErrNoDocker)
	}
	if _, err := execOut(ctx, 20*time.Second, nil, "docker", "version", "--format", "{{.Server.Version}}"); err != nil {
		return nil, fmt.Errorf("%w: the docker engine does not answer (%v)", ErrNoDocker, err)
	}
	d := &Docker{}
	if _, err := exec.LookPath("docker-compose"); err == nil {
		d.Compose = []string{"docker-compose"}
	} else if _, err := execOut(ctx, 20*time.Second, nil, "docker", "compose", "version"); err == nil {
		d.Compose = []string{"docker", "compose"}
	} else {
		return nil, fmt.Errorf("%w: neither docker-compose nor the docker compose plugin is installed", ErrNoDocker)
	}
	return d, nil
}

// execOut runs name args with a timeout and returns its stdout; the error
// includes stderr.
func execOut(ctx context.Context, timeout time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	if err != nil {
		msg := strings.TrimSpace(errb.String())
		if len(msg) > 2000 {
			msg = msg[len(msg)-2000:]
		}
		if ctx.Err() == context.DeadlineExceeded {
			return out.String(), fmt.Errorf("%s %s: timed out after %s: %s", name, strings.Join(args, " "), timeout, msg)
		}
		return out.String(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, msg)
	}
	return out.String(), nil
}

// compose runs a compose subcommand for project p of the compose files
// (the first one, then the overrides).
func (d *Docker) compose(ctx context.Context, timeout time.Duration, project string, files []string, args ...string) (string, error) {
	full := append(append([]string{}, d.Compose[1:]...), "-p", project)
	for _, f := range files {
		full = append(full, "-f", f)
	}
	full = append(full, args...)
	return execOut(ctx, timeout, d.Env, d.Compose[0], full...)
}

// ContainerID returns the id of service's container in project.
func (d *Docker) ContainerID(ctx context.Context, project string, files []string, service string) (string, error) {
	out, err := d.compose(ctx, 30*time.Second, project, files, "ps", "-q", service)
	if err != nil {
		return "", err
	}
	id := strings.TrimSpace(out)
	if id == "" {
		return "", fmt.Errorf("no container for service %s in project %s", service, project)
	}
	return strings.Fields(id)[0], nil
}

// Pid returns the host pid of a running container's main process (its
// network namespace is /proc/PID/ns/net).
func (d *Docker) Pid(ctx context.Context, container string) (int, error) {
	out, err := execOut(ctx, 20*time.Second, nil, "docker", "inspect", "-f", "{{.State.Pid}}", container)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("container %s is not running (pid %q)", container, strings.TrimSpace(out))
	}
	return pid, nil
}

// State returns a container's state (running, paused, exited, ...).
func (d *Docker) State(ctx context.Context, container string) (string, error) {
	out, err := execOut(ctx, 20*time.Second, nil, "docker", "inspect", "-f", "{{.State.Status}}", container)
	return strings.TrimSpace(out), err
}

// Do runs docker verb container (kill, start, pause, unpause).
func (d *Docker) Do(ctx context.Context, verb, container string) error {
	_, err := execOut(ctx, 60*time.Second, nil, "docker", verb, container)
	return err
}

// Exit describes a container's state: Status (running, exited, ...), the
// exit code of its last run and when that run started.
type Exit struct {
	Status    string
	Code      int
	StartedAt time.Time
}

// Inspect returns a container's state and last exit code.
func (d *Docker) Inspect(ctx context.Context, container string) (Exit, error) {
	out, err := execOut(ctx, 20*time.Second, nil, "docker", "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{.State.StartedAt}}", container)
	if err != nil {
		return Exit{}, err
	}
	f := strings.Fields(out)
	if len(f) != 3 {
		return Exit{}, fmt.Errorf("docker inspect %s: unexpected %q", container, out)
	}
	code, err := strconv.Atoi(f[1])
	if err != nil {
		return Exit{}, fmt.Errorf("docker inspect %s: exit code %q", container, f[1])
	}
	at, _ := time.Parse(time.RFC3339Nano, f[2])
	return Exit{Status: f[0], Code: code, StartedAt: at}, nil
}

// WaitExited waits until a container is no longer running (after a kill,
// or a process that refuses to start), polling every 100 ms for at most
// within. ok is false when it was still running then.
func (d *Docker) WaitExited(ctx context.Context, container string, within time.Duration) (Exit, bool, error) {
	deadline := time.Now().Add(within)
	for {
		e, err := d.Inspect(ctx, container)
		if err != nil {
			return e, false, err
		}
		if e.Status == "exited" || e.Status == "dead" || e.Status == "created" {
			return e, true, nil
		}
		if time.Now().After(deadline) {
			return e, false, nil
		}
		select {
		case <-ctx.Done():
			return e, false, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// LogsSince returns a container's log (stdout and stderr) from since on.
func (d *Docker) LogsSince(ctx context.Context, container string, since time.Time) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "logs", "--since", fmt.Sprintf("%.6f", float64(since.UnixMicro())/1e6), container).CombinedOutput()
	return string(out), err
}

// Logs returns the last lines of a container's log (stdout and stderr).
func (d *Docker) Logs(ctx context.Context, container string, lines int) string {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "logs", "--tail", strconv.Itoa(lines), container).CombinedOutput()
	if err != nil {
		return string(out) + "\n(docker logs: " + err.Error() + ")"
	}
	return string(out)
}

// StaleProjects lists compose projects whose name starts with prefix and
// that still have containers (left by a run that was killed).
func (d *Docker) StaleProjects(ctx context.Context, prefix string) ([]string, error) {
	out, err := execOut(ctx, 20*time.Second, nil, "docker", "ps", "-a", "--filter", "label=com.docker.compose.project",
		"--format", `{{.Label "com.docker.compose.project"}}`)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var ps []string
	for _, l := range strings.Fields(out) {
		if strings.HasPrefix(l, prefix) && !seen[l] {
			seen[l] = true
			ps = append(ps, l)
		}
	}
	return ps, nil
}
