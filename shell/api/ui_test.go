package api

import (
	"io"
	"io/fs"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// getUI fetches path from the test server with optional request headers.
func (e *env) getUI(path string, hdr ...string) resp {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	r, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		e.t.Fatalf("GET %s: reading the body: %v", path, err)
	}
	return resp{status: r.StatusCode, header: r.Header, body: b}
}

// TestUIPage: /ui and /ui/ serve the page with its security and cache
// headers; the page names its assets, says it needs JavaScript, and
// carries the ids the e2e test reads.
func TestUIPage(t *testing.T) {
	e := standalone(t, Options{})
	var first resp
	for _, p := range []string{"/ui", "/ui/", "/ui/index.html"} {
		r := e.getUI(p)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", p, r.status, r.body)
		}
		if ct := r.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q, want text/html; charset=utf-8", p, ct)
		}
		if csp := r.header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'self';") || csp != uiCSP {
			t.Errorf("GET %s: Content-Security-Policy %q, want %q", p, csp, uiCSP)
		}
		if cc := r.header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache (a new binary's page must not be served stale)", p, cc)
		}
		if r.header.Get("ETag") == "" {
			t.Errorf("GET %s: no ETag", p)
		}
		if r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q", p, r.header.Get("X-Content-Type-Options"))
		}
		if first.body == nil {
			first = r
		} else if string(r.body) != string(first.body) {
			t.Errorf("GET %s serves another page than /ui", p)
		}
	}
	page := string(first.body)
	for _, want := range []string{`<script src="/ui/app.js"`, `href="/ui/style.css"`, "<noscript>", "needs JavaScript",
		`id="cortex"`, `id="members-body"`, `id="timeline"`, `id="health"`, `id="quarantine"`, `href="/v1/cluster/quarantine"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// No inline script or style: the CSP would block them.
	if regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`).MatchString(page) || strings.Contains(page, "<style") || strings.Contains(page, " style=") {
		t.Error("the page has an inline script or style, which its Content-Security-Policy blocks")
	}

	// Revalidation: the same ETag answers 304; another (an older binary's) 200.
	if r := e.getUI("/ui", "If-None-Match", first.header.Get("ETag")); r.status != http.StatusNotModified {
		t.Errorf("GET /ui with If-None-Match of its ETag: %d, want 304", r.status)
	}
	if r := e.getUI("/ui", "If-None-Match", `"an-older-page"`); r.status != http.StatusOK {
		t.Errorf("GET /ui with another ETag: %d, want 200", r.status)
	}
}

// TestUIAssets: the script and style sheet are served with their content
// types and the CSP; an unknown file and a method other than GET/HEAD
// are refused.
func TestUIAssets(t *testing.T) {
	e := standalone(t, Options{})
	for p, ct := range map[string]string{
		"/ui/app.js":    "text/javascript; charset=utf-8",
		"/ui/style.css": "text/css; charset=utf-8",
	} {
		r := e.getUI(p)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", p, r.status, r.body)
		}
		if got := r.header.Get("Content-Type"); got != ct {
			t.Errorf("GET %s: Content-Type %q, want %q", p, got, ct)
		}
		if r.header.Get("Content-Security-Policy") != uiCSP || r.header.Get("Cache-Control") != "no-cache" {
			t.Errorf("GET %s: CSP %q, Cache-Control %q", p, r.header.Get("Content-Security-Policy"), r.header.Get("Cache-Control"))
		}
		want, err := uiFiles.ReadFile("ui" + strings.TrimPrefix(p, "/ui"))
		if err != nil {
			t.Fatal(err)
		}
		if string(r.body) != string(want) {
			t.Errorf("GET %s: the body is not the embedded file", p)
		}
	}
	for _, p := range []string{"/ui/nope.js", "/ui/app.js/x", "/ui/../ui/app.jsx", "/ui/ui/app.js", "/uix"} {
		r := e.getUI(p)
		if r.status != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, r.status)
			continue
		}
		if d := r.err(t); d.Code != "not_found" {
			t.Errorf("GET %s: code %q, want not_found", p, d.Code)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/ui", strings.NewReader("{}"))
	r, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /ui: %d, want 405 (the page is read-only)", r.StatusCode)
	}
	req, _ = http.NewRequest(http.MethodHead, e.srv.URL+"/ui/app.js", nil)
	r, err = e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusOK || r.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Errorf("HEAD /ui/app.js: %d %q", r.StatusCode, r.Header.Get("Content-Type"))
	}
}

// TestUINoExternalURLs: nothing in the embedded files points outside the
// node (no http:// or https:// URL at all, no protocol-relative //host
// in src or href), every file has a content type, and the script never
// writes HTML from data.
func TestUINoExternalURLs(t *testing.T) {
	abs := regexp.MustCompile(`(?i)https?://`)
	rel := regexp.MustCompile(`(?i)(?:src|href|url)\s*[=(]\s*["']?//`)
	n := 0
	err := fs.WalkDir(uiFiles, "ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		b, err := uiFiles.ReadFile(p)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if abs.MatchString(line) || rel.MatchString(line) {
				t.Errorf("shell/api/%s:%d: a URL outside the node: %s", p, i+1, strings.TrimSpace(line))
			}
		}
		if strings.HasSuffix(p, ".js") {
			for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
				if strings.Contains(string(b), bad) {
					t.Errorf("shell/api/%s uses %s: put API strings in with textContent", p, bad)
				}
			}
		}
		if _, ok := uiAssets[strings.TrimPrefix(p, "ui/")]; !ok {
			t.Errorf("shell/api/%s is embedded but not served", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 3 || len(uiAssets) != n {
		t.Errorf("%d embedded files, %d served; want index.html, app.js and style.css at least", n, len(uiAssets))
	}
}
