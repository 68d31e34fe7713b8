package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
)

// liveKeys are the keys a reload (SIGHUP, POST /v1/admin/reload) applies
// without a restart. The cluster.tls keys are live only while TLS stays on
// (or off): turning it on or off takes a restart of every node.
var liveKeys = map[string]bool{
	"log_level":                       true,
	"admin_token":                     true,
	"cluster.cluster_secret":          true,
	"cluster.cluster_secret_previous": true,
	"cluster.tls.cert":                true,
	"cluster.tls.key":                 true,
	"cluster.tls.ca":                  true,
}

// Live reports whether a reload applies key (a dotted key path) without a
// restart.
func Live(key string) bool { return liveKeys[key] }

// Changes is what differs between two configurations, by key path in file
// order: Live can be applied by a reload, Restart only by a restart.
type Changes struct {
	Live    []string
	Restart []string
}

// Diff compares two validated configurations key by key (derived values
// included: a changed cluster.bind_addr also changes the advertise_addr
// derived from it).
func Diff(old, cur Config) Changes {
	var ch Changes
	tlsFlip := old.Cluster.TLS.Enabled() != cur.Cluster.TLS.Enabled()
	for _, k := range keys {
		if sameValue(k.ptr(&old), k.ptr(&cur)) {
			continue
		}
		if liveKeys[k.path] && !(tlsFlip && strings.HasPrefix(k.path, "cluster.tls.")) {
			ch.Live = append(ch.Live, k.path)
		} else {
			ch.Restart = append(ch.Restart, k.path)
		}
	}
	return ch
}

func sameValue(a, b any) bool {
	switch a := a.(type) {
	case *string:
		return *a == *b.(*string)
	case *bool:
		return *a == *b.(*bool)
	case *int:
		return *a == *b.(*int)
	case *float64:
		return *a == *b.(*float64)
	case *[]string:
		return slices.Equal(*a, *b.(*[]string))
	}
	panic(fmt.Sprintf("config: no comparison for %T", a))
}

// withLive returns old with the live keys of ch taken from cur: the
// configuration in force after a reload that could not apply the others.
func withLive(old, cur Config, ch Changes) Config {
	out := old
	out.Cluster.Seeds = slices.Clone(old.Cluster.Seeds)
	for _, p := range ch.Live {
		k := byPath[p]
		*k.ptr(&out).(*string) = *k.ptr(&cur).(*string)
	}
	return out
}

// ReloadResult says what a reload did: key names only, never values.
type ReloadResult struct {
	// Changed lists the keys applied (a cluster.tls key also when only the
	// content of its file changed).
	Changed []string `json:"changed"`
	// Restart lists the keys that differ from the configuration in force
	// but take a restart to apply; none of them was applied.
	Restart []string `json:"restart_required"`
	// Warnings are Config.Warnings of the new configuration.
	Warnings []string `json:"warnings"`
}

// ApplyFunc applies a reloaded configuration's live keys: old is the
// configuration in force, next the one to apply (its keys outside
// Changes.Live equal old's), live the keys that differ. It returns the
// keys whose content changed although their value did not (the
// cluster.tls files, re-read on every reload). On error nothing may have
// been applied: it must apply what can fail first.
type ApplyFunc func(old, next Config, live []string) (contentChanged []string, err error)

// Reloader re-reads a node's configuration and applies what can change
// live (SIGHUP, POST /v1/admin/reload). Reloads are serialised.
type Reloader struct {
	mu    sync.Mutex
	cur   Config
	load  func() (Config, error)
	apply ApplyFunc
	log   *slog.Logger
}

// NewReloader returns a Reloader for a node running with cur; load
// re-reads the file and the environment (Load), apply applies.
func NewReloader(cur Config, load func() (Config, error), apply ApplyFunc, log *slog.Logger) *Reloader {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reloader{cur: cur, load: load, apply: apply, log: log}
}

// Current is the configuration in force: the one the node started with,
// with the live keys of every successful reload applied.
func (r *Reloader) Current() Config {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

// ErrReload marks a reload that was refused: the configuration did not
// load or validate, or could not be applied. Every setting in force was
// kept. The error joins the problems (each a *FieldError when it is about
// a key).
var ErrReload = errors.New("configuration reload refused; the settings in force are kept")

// Reload re-reads the configuration, validates it as a whole and applies
// its live keys; keys that need a restart are listed, not applied. On
// error (wrapping ErrReload) nothing was applied. via names the trigger
// for the log ("SIGHUP", "POST /v1/admin/reload").
func (r *Reloader) Reload(via string) (ReloadResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next, err := r.load()
	if err != nil {
		r.log.Error("configuration reload refused: the settings in force are kept; fix the configuration and reload again", "via", via, "err", err)
		return ReloadResult{}, fmt.Errorf("%w: %w", ErrReload, err)
	}
	ch := Diff(r.cur, next)
	merged := withLive(r.cur, next, ch)
	content, err := r.apply(r.cur, merged, ch.Live)
	if err != nil {
		r.log.Error("configuration reload refused: the settings in force are kept", "via", via, "err", err)
		return ReloadResult{}, fmt.Errorf("%w: %w", ErrReload, err)
	}
	res := ReloadResult{Changed: ch.Live, Restart: ch.Restart, Warnings: next.Warnings()}
	for _, k := range content {
		if !slices.Contains(res.Changed, k) {
			res.Changed = append(res.Changed, k)
		}
	}
	res.Changed = inKeyOrder(res.Changed)
	if res.Changed == nil {
		res.Changed = []string{}
	}
	if res.Restart == nil {
		res.Restart = []string{}
	}
	if res.Warnings == nil {
		res.Warnings = []string{}
	}
	r.cur = merged
	for _, w := range res.Warnings {
		r.log.Warn(w)
	}
	if len(res.Restart) > 0 {
		r.log.Warn("restart to apply: "+strings.Join(res.Restart, ", "), "via", via)
	}
	if len(res.Changed) == 0 {
		r.log.Info("configuration reloaded: nothing to apply", "via", via)
	} else {
		r.log.Info("configuration reloaded: applied "+strings.Join(res.Changed, ", "), "via", via)
	}
	return res, nil
}

// inKeyOrder sorts key paths in file order.
func inKeyOrder(ps []string) []string {
	idx := map[string]int{}
	for i, k := range keys {
		idx[k.path] = i
	}
	slices.SortFunc(ps, func(a, b string) int { return idx[a] - idx[b] })
	return ps
}

// LevelHandler filters h's records by a level that can change while the
// node runs (log_level, applied by a reload): build h with the lowest
// level and set lv.
func LevelHandler(h slog.Handler, lv slog.Leveler) slog.Handler {
	return &levelHandler{h: h, lv: lv}
}

type levelHandler struct {
	h  slog.Handler
	lv slog.Leveler
}

func (l *levelHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= l.lv.Level() && l.h.Enabled(ctx, level)
}

func (l *levelHandler) Handle(ctx context.Context, r slog.Record) error { return l.h.Handle(ctx, r) }

func (l *levelHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &levelHandler{h: l.h.WithAttrs(as), lv: l.lv}
}

func (l *levelHandler) WithGroup(name string) slog.Handler {
	return &levelHandler{h: l.h.WithGroup(name), lv: l.lv}
}
