//go:build unix

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// chromiumNames are the browser binaries the status page test looks for
// on PATH, in order.
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// findChromium returns the first of chromiumNames on PATH, or "".
func findChromium() string {
	for _, name := range chromiumNames {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// uiState is what the status page shows, read from its DOM.
type uiState struct {
	Node     string            `json:"node"`     // #node-id
	Cortex   string            `json:"cortex"`   // #cortex, as shown
	Epoch    string            `json:"epoch"`    // #epoch
	Feed     string            `json:"feed"`     // #feed's data-state
	Rows     []string          `json:"rows"`     // data-node-id of the members table's rows, in order
	Health   map[string]string `json:"health"`   // member id -> its health cell
	Timeline []string          `json:"timeline"` // "type: text" of each timeline entry, newest first
	Marker   bool              `json:"marker"`   // the marker the test set is still there (no reload)
	Errors   []string          `json:"errors"`   // script errors and CSP violations (errorCatcher)
}

const uiStateJS = `(() => {
  const t = (id) => (document.getElementById(id) || {}).textContent || "";
  const rows = [...document.querySelectorAll("#members-body tr[data-node-id]")];
  const health = {};
  for (const r of rows) health[r.dataset.nodeId] = (r.querySelector('td[data-col="health"]') || {}).textContent || "";
  return {
    node: t("node-id"), cortex: t("cortex"), epoch: t("epoch"),
    feed: (document.getElementById("feed") || {dataset: {}}).dataset.state || "",
    rows: rows.map((r) => r.dataset.nodeId), health: health,
    timeline: [...document.querySelectorAll("#timeline li[data-type]")].map((li) => li.dataset.type + ": " + li.textContent),
    marker: window.__muninnTestMarker === true,
    errors: window.__muninnErrors || ["the error catcher did not run"],
  };
})()`

func (s uiState) String() string {
	b, _ := json.Marshal(s)
	return string(b)
}

// waitPage polls the page of tab ctx (every 50 ms) until cond holds or
// the deadline passes, and returns the last state read.
func waitPage(t *testing.T, ctx context.Context, what string, deadline time.Time, cond func(uiState) (bool, string)) uiState {
	t.Helper()
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	d := time.Until(deadline).Round(time.Millisecond)
	var last uiState
	why := "the page was never read"
	for {
		s, err := chromedp.Run(wctx, chromedp.Evaluate[uiState](uiStateJS))
		if err == nil {
			last = s
			var ok bool
			if ok, why = cond(s); ok {
				return s
			}
		} else if wctx.Err() == nil {
			why = "reading the page: " + err.Error()
		}
		select {
		case <-wctx.Done():
			t.Fatalf("the status page: waiting for %s: not within %s (%s); it shows %s", what, d, why, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// screenshot saves a PNG of the page to path.
func screenshot(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot of the status page: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, png, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d KB)", path, len(png)/1024)
}

// screenshotPaths are where the test saves the page before and after the
// failover: $E2E_UI_SCREENSHOT (relative to the module root, e.g.
// docs/img/ui.png) and the same name with "-failover", else a temp dir.
// (Not a MUNINN_* name: the nodes inherit the test's environment and
// refuse MUNINN_* variables they do not know.)
func screenshotPaths(t *testing.T) (string, string) {
	p := os.Getenv("E2E_UI_SCREENSHOT")
	if p == "" {
		dir := t.TempDir()
		return filepath.Join(dir, "ui.png"), filepath.Join(dir, "ui-failover.png")
	}
	if !filepath.IsAbs(p) {
		root, err := moduleRoot()
		if err != nil {
			t.Fatal(err)
		}
		p = filepath.Join(root, p)
	}
	ext := filepath.Ext(p)
	return p, strings.TrimSuffix(p, ext) + "-failover" + ext
}

// errorCatcher, run before the page's own scripts, records uncaught
// errors, rejected promises and Content-Security-Policy violations.
const errorCatcher = `window.__muninnErrors = [];
window.addEventListener("error", (e) => window.__muninnErrors.push("error: " + e.message));
window.addEventListener("unhandledrejection", (e) => window.__muninnErrors.push("unhandled rejection: " + String(e.reason)));
document.addEventListener("securitypolicyviolation", (e) => window.__muninnErrors.push("CSP violation: " + e.violatedDirective + " " + e.blockedURI));`

// failingEventSource replaces the browser's EventSource with one that
// fails at once, as a stream behind a proxy that cuts it would: the page
// must fall back to polling /v1/cluster/info.
const failingEventSource = `window.EventSource = class {
  constructor(url) { this.url = url; this.readyState = 2; setTimeout(() => { if (this.onerror) this.onerror(new Event("error")); }, 0); }
  addEventListener() {}
  close() {}
};
window.EventSource.CLOSED = 2;`

// TestUIFailover opens the status page (/ui) on a Lobe of a real 3-node
// cluster in headless Chromium, in two tabs: one as is (live on the event
// stream) and one whose EventSource fails (so it polls). It waits until
// both show every member and the Cortex, kills the Cortex (kill -9) and
// checks that each page, without a reload, shows the new Cortex within
// 10 s, then the old one unhealthy and the change on its timeline.
//
// It needs Chromium on PATH (Debian: apt-get install -y chromium): without
// it the test fails under CI and is skipped elsewhere.
func TestUIFailover(t *testing.T) {
	needBinary(t)
	exe := findChromium()
	if exe == "" {
		msg := fmt.Sprintf("no Chromium on PATH (looked for %s): install it to run the status page's browser test (Debian/Ubuntu: apt-get install -y chromium)",
			strings.Join(chromiumNames, ", "))
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	before, after := screenshotPaths(t)

	c := newCluster(t, fastHB, fastLease)
	ns := c.addN(3)
	c.startAll()
	cx := c.waitCortex(ns, 20*time.Second)
	lobe := others(ns, cx)[0]
	for i := range 5 {
		writeVia(t, cx, "default", "quorum", fmt.Sprintf("status page test %d", i))
	}

	// The whole browser lives at most this long; each wait below has its
	// own, shorter bound.
	bctx, cancelAll := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancelAll()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // CI containers run as root, where Chromium's sandbox refuses to start
		chromedp.Flag("disable-gpu", true),
		chromedp.WindowSize(1280, 760),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(bctx, opts...)
	defer cancelAlloc()
	live, cancelLive := chromedp.NewContext(actx)
	defer cancelLive() // kills the browser and waits for it
	// The first run on a tab's context opens it, and the tab lives as long
	// as that run's context: so the first runs use the tab contexts
	// themselves (bounded by bctx).
	start := time.Now()
	addScript := func(js string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: js})
			return err
		})
	}
	if err := chromedp.Do(live, addScript(errorCatcher)); err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	polled, cancelPolled := chromedp.NewContext(live) // a second tab
	defer cancelPolled()
	if err := chromedp.Do(polled, addScript(errorCatcher), addScript(failingEventSource)); err != nil {
		t.Fatalf("opening a second tab: %v", err)
	}
	url := lobe.url() + "/ui"
	for _, tab := range []context.Context{live, polled} {
		nctx, cancelNav := context.WithTimeout(tab, 20*time.Second)
		err := chromedp.Do(nctx, chromedp.Navigate(url))
		cancelNav()
		if err != nil {
			t.Fatalf("opening %s in %s: %v", url, exe, err)
		}
	}
	t.Logf("%s started and %s opened in two tabs in %s", filepath.Base(exe), url, time.Since(start).Round(time.Millisecond))

	want := []string{ns[0].id, ns[1].id, ns[2].id}
	shown := func(feed string) func(uiState) (bool, string) {
		return func(s uiState) (bool, string) {
			rows := slices.Sorted(slices.Values(s.Rows))
			switch {
			case !slices.Equal(rows, want):
				return false, fmt.Sprintf("members %v, want %v", rows, want)
			case s.Cortex != cx.id:
				return false, fmt.Sprintf("Cortex %q, want %s", s.Cortex, cx.id)
			case s.Node != lobe.id:
				return false, fmt.Sprintf("served by %q, want the Lobe %s", s.Node, lobe.id)
			case s.Feed != feed:
				return false, fmt.Sprintf("feed %q, want %s", s.Feed, feed)
			}
			for _, id := range want {
				if s.Health[id] != "healthy" {
					return false, fmt.Sprintf("%s's health %q, want healthy", id, s.Health[id])
				}
			}
			return true, ""
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	s := waitPage(t, live, "every member, the Cortex and the live stream", deadline, shown("live"))
	t.Logf("the page shows %s", s)
	s = waitPage(t, polled, "every member and the Cortex, polling (the stream fails)", deadline, shown("polling"))
	t.Logf("the polling page shows %s", s)
	screenshot(t, live, before)

	for _, tab := range []context.Context{live, polled} {
		mctx, cancelMark := context.WithTimeout(tab, 5*time.Second)
		_, err := chromedp.Run(mctx, chromedp.Evaluate[bool](`window.__muninnTestMarker = true`))
		cancelMark()
		if err != nil {
			t.Fatalf("marking the page: %v", err)
		}
	}

	killed := time.Now()
	cx.kill9()
	newCortex := ""
	follows := func(s uiState) (bool, string) {
		if !s.Marker {
			return false, "the page was reloaded (its marker is gone)"
		}
		if s.Cortex == cx.id || !slices.Contains(want, s.Cortex) {
			return false, fmt.Sprintf("Cortex %q, want one of %s", s.Cortex, ids(others(ns, cx)))
		}
		if newCortex != "" && s.Cortex != newCortex {
			return false, fmt.Sprintf("Cortex %q, but the other tab shows %s", s.Cortex, newCortex)
		}
		newCortex = s.Cortex
		return true, ""
	}
	deadline = killed.Add(10 * time.Second)
	waitPage(t, live, "the new Cortex, without a reload", deadline, follows)
	t.Logf("kill -9 of %s: the live page showed the new Cortex %s after %s", cx.id, newCortex, time.Since(killed).Round(time.Millisecond))
	waitPage(t, polled, "the new Cortex, without a reload (polling)", deadline, follows)
	t.Logf("kill -9 of %s: the polling page showed it after %s", cx.id, time.Since(killed).Round(time.Millisecond))

	// The pages agree with the nodes.
	if got := c.waitCortex(others(ns, cx), 10*time.Second); got.id != newCortex {
		t.Fatalf("the pages show the Cortex %s, the nodes follow %s", newCortex, got.id)
	}
	// The old Cortex shows unhealthy, and the timeline has the change: from
	// the stream (cortex_changed), or seen by polling (polled_cortex).
	after10 := time.Now().Add(10 * time.Second)
	changed := func(entry string) func(uiState) (bool, string) {
		return func(s uiState) (bool, string) {
			if !s.Marker {
				return false, "the page was reloaded (its marker is gone)"
			}
			if h := s.Health[cx.id]; h != "unreachable" && h != "unknown" {
				return false, fmt.Sprintf("the killed %s's health %q, want unreachable", cx.id, h)
			}
			for _, e := range s.Timeline {
				if strings.HasPrefix(e, entry) && strings.Contains(e, "Cortex is now "+newCortex) {
					return true, ""
				}
			}
			return false, fmt.Sprintf("no %q entry naming %s on the timeline", entry, newCortex)
		}
	}
	s = waitPage(t, live, "the old Cortex unhealthy and the change on the timeline", after10, changed("cortex_changed: "))
	if !slices.ContainsFunc(s.Timeline, func(e string) bool { return strings.Contains(e, "Cortex is now "+newCortex+" (was "+cx.id+")") }) {
		t.Errorf("the live page's timeline does not say the Cortex changed from %s to %s: %q", cx.id, newCortex, s.Timeline)
	}
	t.Logf("after the failover the page shows %s", s)
	if len(s.Errors) > 0 {
		t.Errorf("the live page had script errors or CSP violations: %q", s.Errors)
	}
	s = waitPage(t, polled, "the old Cortex unhealthy and the change on the timeline (polling)", after10, changed("polled_cortex: "))
	t.Logf("after the failover the polling page shows %s", s)
	if len(s.Errors) > 0 {
		t.Errorf("the polling page had script errors or CSP violations: %q", s.Errors)
	}
	screenshot(t, live, after)
	if err := errors.Join(live.Err(), polled.Err()); err != nil {
		t.Fatalf("the browser tabs ended early: %v", err)
	}
}
