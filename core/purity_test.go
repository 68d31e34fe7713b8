package core

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPurity fails if anything under core/ (tests aside) imports I/O,
// synchronization or global randomness, or reads the clock: the core must be
// a deterministic function of its inputs (docs/protocol.md, "Shape").
func TestPurity(t *testing.T) {
	banned := map[string]bool{"net": true, "os": true, "sync": true, "sync/atomic": true, "math/rand": true, "math/rand/v2": true,
		"net/http": true, "os/exec": true, "io/ioutil": true, "crypto/rand": true, "syscall": true, "unsafe": true}
	clock := []string{"time.Now", "time.Since", "time.Until", "time.Sleep", "time.After", "time.Tick", "time.NewTimer", "time.NewTicker", "time.AfterFunc"}
	checked := 0
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, src, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if banned[p] {
				t.Errorf("%s imports %q: core must stay pure (pass time and randomness in)", path, p)
			}
		}
		for _, c := range clock {
			if strings.Contains(string(src), c+"(") {
				t.Errorf("%s calls %s: the core never reads the clock; take now as an argument", path, c)
			}
		}
		checked++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 10 {
		t.Fatalf("only %d files checked: is the walk rooted at core/?", checked)
	}
}
