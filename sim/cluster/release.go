package cluster

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Earlier releases for the mixed topology (topology.go), built from this
// repository's own history exactly as e2e/upgrade_test.go builds them, so
// both share one cache per commit.

// releaseList is the list of earlier releases, relative to the
// repository: "<name> <40-hex commit>" a line, # starts a comment.
const releaseList = "e2e/testdata/previous-release"

// releaseBuildTimeout bounds one release's git archive and go build.
const releaseBuildTimeout = 5 * time.Minute

// ParseReleases reads a release list: name -> commit.
func ParseReleases(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		fs := strings.Fields(s)
		if len(fs) != 2 || !isHex40(fs[1]) {
			return nil, fmt.Errorf("line %d: %q: want \"<name> <40-hex commit>\"", line, s)
		}
		if _, dup := out[fs[0]]; dup {
			return nil, fmt.Errorf("line %d: release %q listed twice", line, fs[0])
		}
		out[fs[0]] = fs[1]
	}
	return out, sc.Err()
}

func isHex40(s string) bool {
	if len(s) != 40 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// releaseCacheDir is where the build of commit is kept (the directory
// e2e/upgrade_test.go uses too).
func releaseCacheDir(commit string) string {
	return filepath.Join(os.TempDir(), "muninn-release-"+commit)
}

// BuildRelease returns a muninn binary of release name (listed in
// root/e2e/testdata/previous-release), built from the repository at root:
// git archive of its commit, go build ./cmd/muninn with the version
// "NAME-COMMIT12", cached per commit under TMPDIR and reused.
func BuildRelease(ctx context.Context, root, name string, logf func(string, ...any)) (string, error) {
	f, err := os.Open(filepath.Join(root, releaseList))
	if err != nil {
		return "", fmt.Errorf("release %s: %w", name, err)
	}
	rels, err := ParseReleases(f)
	f.Close()
	if err != nil {
		return "", fmt.Errorf("%s: %w", releaseList, err)
	}
	commit := rels[name]
	if commit == "" {
		return "", fmt.Errorf("release %q is not listed in %s", name, releaseList)
	}
	dir := releaseCacheDir(commit)
	bin := filepath.Join(dir, "muninn")
	if st, err := os.Stat(bin); err == nil && st.Mode().IsRegular() {
		logf("release %s (%s): using the cached build %s", name, commit[:12], bin)
		return bin, nil
	}
	ctx, cancel := context.WithTimeout(ctx, releaseBuildTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "git", "-C", root, "cat-file", "-e", commit+"^{commit}").CombinedOutput(); err != nil {
		return "", fmt.Errorf("release %s (commit %s, %s) is not in the git history of %s: a shallow clone? run git fetch --unshallow (%v %s)",
			name, commit, releaseList, root, err, strings.TrimSpace(string(out)))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	src, err := os.MkdirTemp(dir, "src-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(src)
	start := time.Now()
	logf("release %s (%s): building it from the git history (bounded by %s)", name, commit[:12], releaseBuildTimeout)
	archive := exec.CommandContext(ctx, "sh", "-c", `git -C "$1" archive --format=tar "$2" | tar -x -C "$3"`, "sh", root, commit, src)
	if out, err := archive.CombinedOutput(); err != nil {
		return "", fmt.Errorf("git archive %s into %s: %v\n%s", commit, src, err, truncate(string(out), 4000))
	}
	// A temp name and a rename: a concurrent build (another run, the e2e
	// test) never sees half a binary.
	tmp := filepath.Join(dir, fmt.Sprintf("muninn.tmp-%d", os.Getpid()))
	build := exec.CommandContext(ctx, "go", "build", "-buildvcs=false", "-ldflags", "-X main.version="+name+"-"+commit[:12], "-o", tmp, "./cmd/muninn")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("building release %s (%s): %v\n%s", name, commit, err, truncate(string(out), 4000))
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	logf("release %s (%s): built %s in %s", name, commit[:12], bin, time.Since(start).Round(time.Millisecond))
	return bin, nil
}
