package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
)

// sseClient has no timeout: a stream lasts until its context ends.
var sseClient = &http.Client{}

// cortexWatch subscribes to GET /v1/cluster/events on some nodes and
// notes when the first of them announces a Cortex, other than the victim,
// of an epoch after old (cortex_changed, or elected): what a client that
// follows the events learns, and when.
type cortexWatch struct {
	old    uint64
	victim string
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ready  sync.WaitGroup // one per stream: its hello, or its end

	mu     sync.Mutex
	at     time.Time
	typ    string
	absent bool // a node answered 404: it has no event stream
	errs   []string
}

// watchCortex starts one stream per URL; stop ends them.
func watchCortex(ctx context.Context, urls []string, old uint64, victim string) *cortexWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &cortexWatch{old: old, victim: victim, cancel: cancel}
	for _, u := range urls {
		w.wg.Add(1)
		w.ready.Add(1)
		go func() {
			defer w.wg.Done()
			w.stream(ctx, u)
		}()
	}
	return w
}

// waitReady waits, at most d, until every stream has said hello (or
// ended): only then is a kill sure to be seen.
func (w *cortexWatch) waitReady(d time.Duration) bool {
	done := make(chan struct{})
	go func() { w.ready.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

func (w *cortexWatch) stop() {
	w.cancel()
	w.wg.Wait()
}

// first is when the first announcement came, and its type.
func (w *cortexWatch) first() (time.Time, string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.at, w.typ, !w.at.IsZero()
}

// missing reports whether the endpoint is absent (404) on some node.
func (w *cortexWatch) missing() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.absent
}

func (w *cortexWatch) fail(format string, args ...any) {
	w.mu.Lock()
	w.errs = append(w.errs, fmt.Sprintf(format, args...))
	w.mu.Unlock()
}

func (w *cortexWatch) stream(ctx context.Context, url string) {
	readyOnce := sync.OnceFunc(w.ready.Done)
	defer readyOnce()
	req, err := http.NewRequestWithContext(ctx, "GET", url+"/v1/cluster/events", nil)
	if err != nil {
		w.fail("%s: %v", url, err)
		return
	}
	req.Header.Set("Accept", "text/event-stream")
	res, err := sseClient.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			w.fail("%s: %v", url, err)
		}
		return
	}
	defer res.Body.Close()
	switch res.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		w.mu.Lock()
		w.absent = true
		w.mu.Unlock()
		return
	default:
		w.fail("%s: GET /v1/cluster/events answered %s", url, res.Status)
		return
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var typ string
	var data strings.Builder
	// Bounded by the context (the body read ends with it) and by count.
	for n := 0; n < 1_000_000 && sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case line == "":
			w.event(typ, data.String(), readyOnce)
			typ = ""
			data.Reset()
		case strings.HasPrefix(line, "event:"):
			typ = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
}

func (w *cortexWatch) event(typ, data string, ready func()) {
	now := time.Now()
	switch typ {
	case apitypes.EventHello:
		ready()
		return
	case apitypes.EventCortexChanged, apitypes.EventElected:
	default:
		return
	}
	var ev apitypes.ClusterEvent
	if json.Unmarshal([]byte(data), &ev) != nil || ev.Epoch <= w.old {
		return
	}
	who := ev.Cortex
	if typ == apitypes.EventElected {
		who = ev.Node
	}
	if who == "" || who == w.victim {
		return
	}
	w.mu.Lock()
	if w.at.IsZero() {
		w.at, w.typ = now, typ
	}
	w.mu.Unlock()
}

// eventsProbe opens the watches of a run and remembers an absent endpoint,
// so a build without cluster events is asked once, and the run says why the
// column is empty.
type eventsProbe struct {
	absent bool
	note   string
}

// watch subscribes on every running node but victim; nil when the
// endpoint is absent.
func (e *eventsProbe) watch(ctx context.Context, pc *ProcCluster, victim int, epoch uint64) *cortexWatch {
	if e.absent {
		return nil
	}
	var urls []string
	for i, p := range pc.Nodes {
		if i != victim && p.Running() {
			urls = append(urls, p.URL())
		}
	}
	w := watchCortex(ctx, urls, epoch, pc.Nodes[victim].ID)
	ready := w.waitReady(5 * time.Second)
	if w.missing() {
		w.stop()
		e.absent = true
		e.note = "GET /v1/cluster/events answered 404 (a build without cluster events): kill → event not measured"
		return nil
	}
	if !ready {
		e.note = "some GET /v1/cluster/events streams said no hello within 5 s: kill → event may be late or missing"
	}
	return w
}

// done ends w's streams and logs what went wrong with them.
func (e *eventsProbe) done(w *cortexWatch, cfg FailoverConfig) {
	if w == nil {
		return
	}
	w.stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.errs {
		cfg.logf("cluster events: %s", s)
	}
}
