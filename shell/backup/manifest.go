// Package backup is MuninnDB's backup format (docs/backup.md): a Pebble
// checkpoint of a node's store (store.CheckpointForBackup) and a manifest
// naming the log position it covers and every file with its size and
// SHA-256, written either as one tar stream compressed with zstd
// (MANIFEST.json first) or as a plain directory. Readers bound what they
// accept and check every checksum as they go.
package backup

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"
	"time"
)

// Version is the format version this binary writes and reads.
const Version = 1

// ManifestName is the manifest's name: the first tar entry, or the file
// at the top of a backup directory.
const ManifestName = "MANIFEST.json"

// Limits on what a reader accepts: a damaged or hostile backup is refused
// before it fills a disk or memory.
const (
	MaxManifestBytes = 16 << 20
	MaxFiles         = 100_000
	MaxFileBytes     = 1 << 40 // one file
	MaxTotalBytes    = 4 << 40 // all files
)

// Manifest describes a backup.
type Manifest struct {
	Format  int       `json:"format"`
	Created time.Time `json:"created"`
	// SourceNode is the node id the backup was taken on ("" offline).
	SourceNode string `json:"source_node,omitempty"`
	// SourceStore is the source store's identity (hex); a restored store
	// gets a new one.
	SourceStore string `json:"source_store,omitempty"`
	// Position is the last log entry the checkpoint holds (its applied
	// point); Commit is the commit point known then; Epoch the node's.
	Position Pos      `json:"position"`
	Commit   Pos      `json:"commit"`
	Epoch    uint64   `json:"epoch"`
	Members  []Member `json:"members"`
	// TotalBytes is the sum of the files' sizes (a progress ETA's total).
	TotalBytes int64  `json:"total_bytes"`
	Files      []File `json:"files"`
}

// Pos is a log position.
type Pos struct {
	Epoch uint64 `json:"epoch"`
	Seq   uint64 `json:"seq"`
}

func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Epoch, p.Seq) }

// Member is one member of the membership the backup holds.
type Member struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	Learner bool   `json:"learner,omitempty"`
}

// File is one file of the checkpoint, by its slash-separated path below
// the checkpoint directory.
type File struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// decodeManifest parses and validates a manifest (what every reader does
// before it trusts any of it).
func decodeManifest(b []byte) (Manifest, error) {
	var probe struct {
		Format int `json:"format"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return Manifest{}, fmt.Errorf("%s is not valid JSON: %v", ManifestName, err)
	}
	if probe.Format > Version {
		return Manifest{}, fmt.Errorf("%s: newer format version %d (this binary reads %d): use a newer muninn", ManifestName, probe.Format, Version)
	}
	if probe.Format != Version {
		return Manifest{}, fmt.Errorf("%s: format version %d is not %d: not a muninn backup, or damaged", ManifestName, probe.Format, Version)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Manifest{}, fmt.Errorf("%s: %v", ManifestName, err)
	}
	return m, m.validate()
}

func (m Manifest) validate() error {
	if len(m.Files) == 0 {
		return fmt.Errorf("%s lists no files", ManifestName)
	}
	if len(m.Files) > MaxFiles {
		return fmt.Errorf("%s lists %d files, more than the %d this binary accepts", ManifestName, len(m.Files), MaxFiles)
	}
	seen := make(map[string]bool, len(m.Files))
	var total int64
	for _, f := range m.Files {
		if err := checkPath(f.Path); err != nil {
			return fmt.Errorf("%s: %w", ManifestName, err)
		}
		if seen[f.Path] {
			return fmt.Errorf("%s lists %s twice", ManifestName, f.Path)
		}
		seen[f.Path] = true
		if f.Size < 0 || f.Size > MaxFileBytes {
			return fmt.Errorf("%s: file %s has size %d, outside 0..%d", ManifestName, f.Path, f.Size, int64(MaxFileBytes))
		}
		if len(f.SHA256) != 64 || strings.Trim(f.SHA256, "0123456789abcdef") != "" {
			return fmt.Errorf("%s: file %s has a malformed sha256 %q", ManifestName, f.Path, f.SHA256)
		}
		total += f.Size
		if total > MaxTotalBytes {
			return fmt.Errorf("%s: the files total more than %d bytes", ManifestName, int64(MaxTotalBytes))
		}
	}
	if total != m.TotalBytes {
		return fmt.Errorf("%s: total_bytes %d is not the sum of the files' sizes %d", ManifestName, m.TotalBytes, total)
	}
	return nil
}

// checkPath refuses a path that could land outside the target directory
// or is not in canonical form: absolute, "..", empty parts, backslashes,
// or the manifest's own name.
func checkPath(p string) error {
	switch {
	case p == "" || len(p) > 1024:
		return fmt.Errorf("file path %q: empty or too long", p)
	case strings.HasPrefix(p, "/") || strings.Contains(p, `\`) || strings.Contains(p, ":"):
		return fmt.Errorf("file path %q: absolute paths are refused", p)
	case path.Clean(p) != p || p == "." || p == ".." || strings.HasPrefix(p, "../"):
		return fmt.Errorf("file path %q: not a clean relative path (path traversal refused)", p)
	case p == ManifestName:
		return fmt.Errorf("file path %q: the manifest's own name", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." || part == "." || part == "" {
			return fmt.Errorf("file path %q: path traversal refused", p)
		}
	}
	return nil
}
