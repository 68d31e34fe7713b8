package api

import (
	"errors"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"weak"

	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/config"
)

// ReloadFunc re-reads the node's configuration and applies what can change
// live (config.Reloader.Reload); via names the trigger for the log.
type ReloadFunc func(via string) (config.ReloadResult, error)

// reloadState is what a configuration reload changes in a Server: the
// admin token and the function POST /v1/admin/reload calls. It is kept
// beside the Server (keyed weakly, dropped with it) so that a reload
// needs no change to the Server's own fields.
type reloadState struct {
	token  atomic.Pointer[string] // nil: Options.AdminToken
	reload atomic.Pointer[ReloadFunc]
}

var reloadStates sync.Map // weak.Pointer[Server] -> *reloadState

func (s *Server) reloadState() *reloadState {
	key := weak.Make(s)
	if v, ok := reloadStates.Load(key); ok {
		return v.(*reloadState)
	}
	v, loaded := reloadStates.LoadOrStore(key, &reloadState{})
	if !loaded {
		runtime.AddCleanup(s, func(k weak.Pointer[Server]) { reloadStates.Delete(k) }, key)
	}
	return v.(*reloadState)
}

// SetReload sets what POST /v1/admin/reload runs (muninn start sets it;
// without it the endpoint answers 501).
func (s *Server) SetReload(f ReloadFunc) { s.reloadState().reload.Store(&f) }

// SetAdminToken replaces the admin token (a reload changed admin_token;
// "" means loopback callers only) from the next request on.
func (s *Server) SetAdminToken(tok string) { s.reloadState().token.Store(&tok) }

// adminToken is the admin token in force: the last one SetAdminToken set,
// else Options.AdminToken. checkAdmin must read it (not Options) for a
// reloaded admin_token to take effect.
func (s *Server) adminToken() string {
	if v, ok := reloadStates.Load(weak.Make(s)); ok {
		if p := v.(*reloadState).token.Load(); p != nil {
			return *p
		}
	}
	return s.opts.AdminToken
}

// reloadFieldError is one problem of a refused reload: the key and the
// message with its fix.
type reloadFieldError struct {
	Key     string `json:"key"`
	Message string `json:"message"`
}

// reloadRefused is the 400 body of a refused reload: the usual error
// object, and each problem by key.
type reloadRefused struct {
	Error  apitypes.ErrorDetail `json:"error"`
	Fields []reloadFieldError   `json:"fields"`
}

// handleReload is POST /v1/admin/reload (admin): the node reads its
// configuration again and applies what can change live; the answer lists
// the keys changed and the keys that need a restart (names only). A
// configuration that does not validate changes nothing: 400 naming each
// key and its fix. Never forwarded: it reloads this node.
func (s *Server) handleReload(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	if err := s.checkAdmin(r, body); err != nil {
		return err
	}
	var f *ReloadFunc
	if v, ok := reloadStates.Load(weak.Make(s)); ok {
		f = v.(*reloadState).reload.Load()
	}
	if f == nil {
		return &apiError{status: http.StatusNotImplemented, code: apitypes.CodeNotImplemented,
			msg: "this node cannot reload its configuration (it was not started by muninn start)"}
	}
	res, err := (*f)("POST /v1/admin/reload")
	if err != nil {
		if !errors.Is(err, config.ErrReload) {
			return err
		}
		out := reloadRefused{Error: apitypes.ErrorDetail{Code: apitypes.CodeBadRequest, Message: err.Error()}, Fields: []reloadFieldError{}}
		for _, fe := range fieldErrors(err) {
			out.Fields = append(out.Fields, reloadFieldError{Key: fe.Key, Message: fe.Msg})
		}
		writeJSON(w, http.StatusBadRequest, out)
		return nil
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// fieldErrors collects the *config.FieldError in err's tree.
func fieldErrors(err error) []*config.FieldError {
	var fe *config.FieldError
	if errors.As(err, &fe) && fe == err {
		return []*config.FieldError{fe}
	}
	var out []*config.FieldError
	switch e := err.(type) {
	case interface{ Unwrap() []error }:
		for _, c := range e.Unwrap() {
			out = append(out, fieldErrors(c)...)
		}
	case interface{ Unwrap() error }:
		out = fieldErrors(e.Unwrap())
	}
	return out
}
