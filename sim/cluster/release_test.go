package cluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestParseReleases: the e2e format, and what it refuses.
func TestParseReleases(t *testing.T) {
	c := strings.Repeat("ab", 20)
	got, err := ParseReleases(strings.NewReader("# comment\n\nprevious " + c + "\n  too-old " + strings.Repeat("01", 20) + "  \n"))
	if err != nil || len(got) != 2 || got["previous"] != c {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"previous", "previous abc", "previous " + c + " x", "previous " + strings.Repeat("AB", 20), "a " + c + "\na " + c} {
		if _, err := ParseReleases(strings.NewReader(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	// BuildRelease names the list and the release it cannot find.
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "e2e", "testdata"), 0o755)
	os.WriteFile(filepath.Join(root, releaseList), []byte("previous "+c+"\n"), 0o644)
	if _, err := BuildRelease(context.Background(), root, "next", t.Logf); err == nil || !strings.Contains(err.Error(), "not listed") {
		t.Errorf("an unlisted release: %v", err)
	}
	// A commit the history lacks (here: no repository at all; nothing
	// builds the made-up commit, so it is never cached) says how to get
	// it.
	if _, err := BuildRelease(context.Background(), root, "previous", t.Logf); err == nil || !strings.Contains(err.Error(), "git fetch --unshallow") {
		t.Errorf("a commit not in the history: %v", err)
	}
}
