package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/backup"
)

// BackupCmd takes a backup (the default subcommand) or checks one.
type BackupCmd struct {
	Take   BackupTakeCmd   `cmd:"" default:"withargs" help:"Take a backup: online from a node (--addr) or from a stopped node's data directory (--data-dir)."`
	Verify BackupVerifyCmd `cmd:"" help:"Check a backup without restoring it: every checksum, the manifest, and that its store opens."`
}

// BackupTakeCmd is `muninn backup --addr URL|--data-dir DIR --out FILE`.
type BackupTakeCmd struct {
	Addr    string  `help:"API address of the node to back up online (e.g. http://localhost:8475)." env:"MUNINN_ADDR" placeholder:"URL" xor:"source"`
	DataDir string  `name:"data-dir" help:"Data directory (data_dir) of a stopped node to back up offline." placeholder:"DIR" xor:"source"`
	Out     string  `help:"Where to write the backup (a .tar.zst file; with --dir, a directory). Must not exist." required:"" placeholder:"FILE"`
	Dir     bool    `help:"Write a plain directory (MANIFEST.json and the checkpoint's files) instead of one tar.zst file."`
	Token   string  `help:"Admin token (the node's admin_token) for --addr." env:"MUNINN_ADMIN_TOKEN" placeholder:"TOKEN"`
	RateMB  float64 `name:"rate-mb" help:"With --addr: the node streams at most this many MB/s of store files, leaving CPU and disk to writes (0: as fast as it can)." default:"100" placeholder:"MB/S"`
}

func (c *BackupTakeCmd) Run(g *Globals) error {
	if c.Addr == "" && c.DataDir == "" {
		return usageError{errors.New("say what to back up: --addr URL (a running node) or --data-dir DIR (a stopped node's data directory)")}
	}
	out, err := filepath.Abs(c.Out)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(out); err == nil {
		return fmt.Errorf("%s already exists: choose a new path, or remove it first (a backup never overwrites)", out)
	}
	// Built beside out and renamed at the end: out is never half written.
	tmp := out + ".partial-" + strconv.Itoa(os.Getpid())
	defer os.RemoveAll(tmp)
	start := time.Now()
	p := newProgress(g.Err, "backup")
	var m backup.Manifest
	if c.Addr != "" {
		m, err = c.online(tmp, p)
	} else {
		m, err = c.offline(tmp, p)
	}
	p.end()
	if err != nil {
		return err
	}
	if !c.Dir {
		if err := os.Rename(tmp, out); err != nil {
			return err
		}
		if err := syncParent(out); err != nil {
			return err
		}
	} else if err := backup.FinishDir(tmp, out, m); err != nil {
		return err
	}
	el := time.Since(start)
	size := m.TotalBytes
	if fi, err := os.Stat(out); err == nil && !fi.IsDir() {
		size = fi.Size()
	}
	fmt.Fprintf(g.Out, "backup written: %s\n", out)
	fmt.Fprintf(g.Out, "  position %s (commit %s, epoch %d), %d members, source %s\n", m.Position, m.Commit, m.Epoch, len(m.Members), orDash(m.SourceNode))
	fmt.Fprintf(g.Out, "  %d files, %s of store, %s written, in %s (%s)\n", len(m.Files), mib(m.TotalBytes), mib(size), el.Round(time.Millisecond), rateOf(m.TotalBytes, el))
	fmt.Fprintf(g.Out, "Check it: muninn backup verify %s\n", out)
	return nil
}

// online streams GET /v1/admin/backup into tmp, checking it as it comes
// (every checksum), so a damaged transfer fails here, not at restore.
func (c *BackupTakeCmd) online(tmp string, p *progress) (backup.Manifest, error) {
	base := strings.TrimRight(c.Addr, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u := base + "/v1/admin/backup"
	// Always sent: the node's default may differ from this binary's.
	u += "?rate_mb=" + strconv.FormatFloat(c.RateMB, 'f', -1, 64)
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		return backup.Manifest{}, usageError{fmt.Errorf("--addr %q: %v", c.Addr, err)}
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := &http.Client{Transport: &http.Transport{
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		// The node checkpoints and hashes its store before it answers.
		ResponseHeaderTimeout: 10 * time.Minute,
	}}
	res, err := hc.Do(req)
	if err != nil {
		return backup.Manifest{}, fmt.Errorf("backup from %s: %w (is the node running? check --addr)", base, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<16))
		var eb apitypes.ErrorBody
		if json.Unmarshal(b, &eb) == nil && eb.Error.Message != "" {
			return backup.Manifest{}, fmt.Errorf("backup from %s: %s (HTTP %d)", base, eb.Error.Message, res.StatusCode)
		}
		return backup.Manifest{}, fmt.Errorf("backup from %s: HTTP %d %s", base, res.StatusCode, strings.TrimSpace(string(b)))
	}
	o := backup.ReadOptions{Progress: p.update}
	if c.Dir {
		m, err := backup.Decode(res.Body, tmp, o)
		if err != nil {
			return m, fmt.Errorf("backup from %s: %w", base, err)
		}
		return m, nil
	}
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return backup.Manifest{}, err
	}
	defer f.Close()
	tee := io.TeeReader(res.Body, f)
	m, err := backup.Decode(tee, "", o)
	if err == nil {
		// What the decoder did not need to read (padding) still belongs
		// to the file.
		var n int64
		if n, err = io.Copy(io.Discard, io.LimitReader(tee, 1<<20+1)); err == nil && n > 1<<20 {
			err = errors.New("more than 1 MiB after the end of the backup stream: not a muninn node, or a damaged answer")
		}
	}
	if err != nil {
		return m, fmt.Errorf("backup from %s: %w", base, err)
	}
	if err := f.Sync(); err != nil {
		return m, err
	}
	return m, f.Close()
}

// offline checkpoints a stopped node's store and writes the backup.
func (c *BackupTakeCmd) offline(tmp string, p *progress) (backup.Manifest, error) {
	st, err := backup.OpenStopped(c.DataDir)
	if err != nil {
		return backup.Manifest{}, err
	}
	ck := filepath.Join(c.DataDir, "backup-tmp")
	if err := os.RemoveAll(ck); err != nil {
		st.Close()
		return backup.Manifest{}, err
	}
	defer os.RemoveAll(ck)
	m, err := backup.Take(st, ck, "")
	if cerr := st.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return m, err
	}
	if c.Dir {
		if err := backup.EncodeDir(tmp, m, ck); err != nil {
			return m, err
		}
		os.Remove(filepath.Join(tmp, backup.ManifestName)) // FinishDir writes it
		return m, nil
	}
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return m, err
	}
	defer f.Close()
	if err := backup.Encode(f, m, ck, p.update); err != nil {
		return m, err
	}
	if err := f.Sync(); err != nil {
		return m, err
	}
	return m, f.Close()
}

func syncParent(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// BackupVerifyCmd is `muninn backup verify FILE|DIR`.
type BackupVerifyCmd struct {
	Path string `arg:"" help:"The backup: a .tar.zst file or a backup directory." placeholder:"FILE|DIR"`
}

func (c *BackupVerifyCmd) Run(g *Globals) error {
	p := newProgress(g.Err, "verify")
	start := time.Now()
	m, err := backup.Verify(c.Path, backup.ReadOptions{Progress: p.update})
	p.end()
	if err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(g.Out, "backup %s is good: format %d, taken %s on %s\n", c.Path, m.Format, m.Created.Format(time.RFC3339), orDash(m.SourceNode))
	fmt.Fprintf(g.Out, "  position %s (commit %s, epoch %d), members %s\n", m.Position, m.Commit, m.Epoch, bkMembers(m.Members))
	fmt.Fprintf(g.Out, "  %d files, %s, every checksum matches, and the store opens (%s, %s)\n", len(m.Files), mib(m.TotalBytes), el.Round(time.Millisecond), rateOf(m.TotalBytes, el))
	return nil
}

func bkMembers(ms []backup.Member) string {
	var out []string
	for _, m := range ms {
		s := m.ID
		if m.Kind != "" && m.Kind != "auto" {
			s += "(" + m.Kind + ")"
		}
		if m.Learner {
			s += "(learner)"
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, ", ")
}
