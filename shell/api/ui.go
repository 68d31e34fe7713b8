package api

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
)

// GET /ui is the read-only status page (docs/ui.md): one HTML page, a
// script and a style sheet, embedded in the binary. The script reads the
// node's own read endpoints (/v1/cluster/info, status, health, events and
// the quarantine export's count), which answer on any node, so the page
// works on a Lobe. Nothing is fetched from anywhere else: the
// Content-Security-Policy allows this origin only.

//go:embed ui
var uiFiles embed.FS

// uiCSP is the page's Content-Security-Policy: scripts, styles, images
// and connections from this origin only; no plugins, no framing, no
// forms, no <base>.
const uiCSP = "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"

// uiAsset is one embedded file, ready to serve.
type uiAsset struct {
	body  []byte
	ctype string
	etag  string
}

// uiTypes are the content types of the embedded files, by extension (not
// from the system's MIME tables, which differ between hosts).
var uiTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// uiAssets are the embedded files by name ("index.html", "app.js", ...),
// loaded once.
var uiAssets = mustLoadUI()

func mustLoadUI() map[string]uiAsset {
	out := map[string]uiAsset{}
	err := fs.WalkDir(uiFiles, "ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ctype, ok := uiTypes[path.Ext(p)]
		if !ok {
			return fmt.Errorf("shell/api/%s: no content type for %q: add it to uiTypes in shell/api/ui.go", p, path.Ext(p))
		}
		body, err := uiFiles.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		out[strings.TrimPrefix(p, "ui/")] = uiAsset{body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		panic("api: loading the embedded status page: " + err.Error())
	}
	if _, ok := out["index.html"]; !ok {
		panic("api: the embedded status page has no ui/index.html")
	}
	return out
}

// uiRoutes registers /ui (the page), /ui/ (the same) and /ui/FILE.
func (s *Server) uiRoutes() {
	s.route("/ui", methods{"GET": s.handleUI})
	s.route("/ui/{file...}", methods{"GET": s.handleUI})
}

// handleUI serves the page or one of its files. Answers are revalidated
// on every load (Cache-Control: no-cache, with an ETag of the content),
// so a new binary's page is never served stale from a browser cache.
func (s *Server) handleUI(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("file")
	if name == "" {
		name = "index.html"
	}
	a, ok := uiAssets[name]
	if !ok {
		return &apiError{status: http.StatusNotFound, code: apitypes.CodeNotFound,
			msg: fmt.Sprintf("no such file of the status page: %s (the page is at /ui; see docs/ui.md)", r.URL.Path)}
	}
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("Content-Security-Policy", uiCSP)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	h["X-Content-Type-Options"] = noSniff
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	// ServeContent answers If-None-Match with 304, HEAD without a body,
	// and ranges.
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.body))
	return nil
}
