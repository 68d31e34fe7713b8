package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/muninndb/muninn/shell/apitypes"
)

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain structs are marshalled
	}
	return b
}

// Write creates an engram. When req.ID is empty the client picks one, so
// retrying across a failover never creates the engram twice: if a retry
// finds the engram already written by an earlier attempt, Write returns
// success with Epoch and Seq zero (the position is not known). With quorum
// durability that success is confirmed first by a strong read.
//
// When the client cannot know whether the engram was written, the error is
// an *AmbiguousError (errors.Is(err, ErrAmbiguous)) whose ID is the
// engram's id: read it back, or call Write again with that ID.
func (c *Client) Write(ctx context.Context, req apitypes.WriteRequest, opts ...CallOption) (apitypes.WriteResult, error) {
	if req.ID == "" {
		req.ID = NewID()
	}
	q := query(opts)
	var res apitypes.WriteResult
	oc, err := c.do(ctx, call{kind: kindWrite, method: "POST", path: "/api/engrams", query: q, body: mustJSON(req), op: "write", id: req.ID}, &res)
	if oc.ambiguous != nil && IsCode(err, apitypes.CodeConflict) {
		vault := vaultOr(firstNonEmpty(req.Vault, q.Get("vault")))
		if durOr(q.Get("durability")) == "quorum" {
			// The earlier attempt reached the Cortex, but maybe not a
			// quorum. A strong read answers only once everything the
			// Cortex applied is committed, so finding it proves the write
			// is as durable as asked.
			if _, gerr := c.Get(ctx, vault, req.ID, Consistency("strong")); gerr != nil {
				return res, &AmbiguousError{Op: "write", ID: req.ID, Reason: oc.ambiguous,
					Err: fmt.Errorf("a retry found the engram on the Cortex, but its quorum durability could not be confirmed by a strong read: %w", gerr)}
			}
		}
		return apitypes.WriteResult{ID: req.ID, Vault: vault, Durability: durOr(q.Get("durability"))}, nil
	}
	return res, err
}

// Update changes the fields set in req of engram id. Its error is an
// *AmbiguousError when the update may or may not have been applied.
func (c *Client) Update(ctx context.Context, vault, id string, req apitypes.UpdateRequest, opts ...CallOption) (apitypes.WriteResult, error) {
	q := query(opts)
	q.Set("vault", vaultOr(vault))
	var res apitypes.WriteResult
	_, err := c.do(ctx, call{kind: kindWrite, method: "PATCH", path: "/api/engrams/" + url.PathEscape(id), query: q, body: mustJSON(req), op: "update", id: id}, &res)
	return res, err
}

// Forget forgets engram id. If a retry finds it already forgotten by an
// earlier attempt, Forget returns success with Epoch and Seq zero. Its
// error is an *AmbiguousError when it may or may not have been forgotten.
func (c *Client) Forget(ctx context.Context, vault, id string, opts ...CallOption) (apitypes.WriteResult, error) {
	q := query(opts)
	q.Set("vault", vaultOr(vault))
	var res apitypes.WriteResult
	oc, err := c.do(ctx, call{kind: kindWrite, method: "DELETE", path: "/api/engrams/" + url.PathEscape(id), query: q, op: "forget", id: id}, &res)
	if oc.ambiguous != nil && IsCode(err, apitypes.CodeNotFound) {
		return apitypes.WriteResult{ID: id, Vault: vaultOr(vault), Durability: durOr(q.Get("durability"))}, nil
	}
	return res, err
}

// Get reads engram id of vault.
func (c *Client) Get(ctx context.Context, vault, id string, opts ...CallOption) (apitypes.Engram, error) {
	q := query(opts)
	q.Set("vault", vaultOr(vault))
	var e apitypes.Engram
	_, err := c.do(ctx, call{kind: kindRead, method: "GET", path: "/api/engrams/" + url.PathEscape(id), query: q}, &e)
	return e, err
}

// ListOptions select a page of a vault.
type ListOptions struct {
	Tags   []string
	Limit  int
	Cursor string
}

// List reads one page of a vault's engrams; pass res.NextCursor as Cursor
// for the next.
func (c *Client) List(ctx context.Context, vault string, lo ListOptions, opts ...CallOption) (apitypes.ListResult, error) {
	q := query(opts)
	q.Set("vault", vaultOr(vault))
	if len(lo.Tags) > 0 {
		q.Set("tags", strings.Join(lo.Tags, ","))
	}
	if lo.Limit != 0 {
		q.Set("limit", strconv.Itoa(lo.Limit))
	}
	if lo.Cursor != "" {
		q.Set("cursor", lo.Cursor)
	}
	var res apitypes.ListResult
	_, err := c.do(ctx, call{kind: kindRead, method: "GET", path: "/api/engrams", query: q}, &res)
	return res, err
}

// Activate ranks a vault's engrams against query text.
func (c *Client) Activate(ctx context.Context, req apitypes.ActivateRequest, opts ...CallOption) (apitypes.ActivateResult, error) {
	var res apitypes.ActivateResult
	_, err := c.do(ctx, call{kind: kindRead, method: "POST", path: "/api/activate", query: query(opts), body: mustJSON(req)}, &res)
	return res, err
}

// Info returns the node's view of the cluster: Cortex, epoch, fencing
// token, members.
func (c *Client) Info(ctx context.Context) (apitypes.Info, error) {
	var res apitypes.Info
	_, err := c.do(ctx, call{kind: kindLocal, method: "GET", path: "/v1/cluster/info"}, &res)
	return res, err
}

// Status returns per-member health, last seq and lag (the Cortex's view;
// a non-Cortex node forwards). local asks for the node's own view.
func (c *Client) Status(ctx context.Context, local bool) (apitypes.Status, error) {
	q := url.Values{}
	if local {
		q.Set("local", "true")
	}
	var res apitypes.Status
	_, err := c.do(ctx, call{kind: kindLocal, method: "GET", path: "/v1/cluster/status", query: q}, &res)
	return res, err
}

// Health returns the cluster's health. A degraded cluster (HTTP 503) is
// not an error: check res.Status.
func (c *Client) Health(ctx context.Context) (apitypes.Health, error) {
	var res apitypes.Health
	_, err := c.do(ctx, call{kind: kindLocal, method: "GET", path: "/v1/cluster/health", accept: []int{http.StatusServiceUnavailable}}, &res)
	if err == nil && res.Status == "" {
		return res, fmt.Errorf("muninn: %s did not answer with a health status", c.base)
	}
	return res, err
}

// Failover hands the Cortex role to the Lobe to ("" picks the most
// caught-up one). It is never retried once it may have run: its error is
// then an *AmbiguousError (check the Cortex with Info). The Cortex's own
// 503 unavailable (no other data voter, handoff aborted) is definite.
func (c *Client) Failover(ctx context.Context, to string) (apitypes.FailoverResult, error) {
	var res apitypes.FailoverResult
	_, err := c.do(ctx, call{kind: kindAdmin, method: "POST", path: "/v1/cluster/failover", body: mustJSON(apitypes.FailoverRequest{To: to}),
		op: "failover", definite: []string{apitypes.CodeUnavailable}}, &res)
	return res, err
}

// AddMember adds node id of kind (auto, sentinel, observer) to the
// cluster. Its error is an *AmbiguousError when the change may or may not
// have been made (check the members with Info).
func (c *Client) AddMember(ctx context.Context, id, kind string) (apitypes.MemberResult, error) {
	var res apitypes.MemberResult
	_, err := c.do(ctx, call{kind: kindAdmin, method: "POST", path: "/v1/cluster/members", body: mustJSON(apitypes.MemberRequest{ID: id, Kind: kind}),
		op: "add member", id: id}, &res)
	return res, err
}

// RemoveMember removes node id from the cluster. Its error is an
// *AmbiguousError when the change may or may not have been made.
func (c *Client) RemoveMember(ctx context.Context, id string) (apitypes.MemberResult, error) {
	var res apitypes.MemberResult
	_, err := c.do(ctx, call{kind: kindAdmin, method: "DELETE", path: "/v1/cluster/members/" + url.PathEscape(id), op: "remove member", id: id}, &res)
	return res, err
}

// Quarantine lists the node's quarantined entries (writes a failover cut
// off).
func (c *Client) Quarantine(ctx context.Context) (apitypes.QuarantineList, error) {
	var res apitypes.QuarantineList
	_, err := c.do(ctx, call{kind: kindLocal, method: "GET", path: "/v1/cluster/quarantine"}, &res)
	return res, err
}

// ExportQuarantine writes the node's quarantine to w as JSON lines and
// returns the number of bytes written.
func (c *Client) ExportQuarantine(ctx context.Context, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+"/v1/cluster/quarantine/export", nil)
	if err != nil {
		return 0, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		return 0, decodeError(res.StatusCode, res.Header.Get(apitypes.HeaderNode), b)
	}
	return io.Copy(w, res.Body)
}

// ReplayQuarantined writes the quarantined entry (epoch, seq) again
// through the Cortex, as a conditional write: it applies only if the
// engram has not changed since, and every node holding the entry drops it
// as it applies that write. Its error is an *AmbiguousError when the
// replay may or may not have been written (list the quarantine with
// Quarantine and read the engram back).
func (c *Client) ReplayQuarantined(ctx context.Context, epoch, seq uint64) (apitypes.ReplayResult, error) {
	var res apitypes.ReplayResult
	_, err := c.do(ctx, call{kind: kindLocal, method: "POST", path: "/v1/cluster/quarantine/replay", body: mustJSON(apitypes.QuarantineRef{Epoch: epoch, Seq: seq}),
		op: "replay of quarantined entry", id: fmt.Sprintf("%d.%d", epoch, seq)}, &res)
	return res, err
}

// DropQuarantined deletes the quarantined entry (epoch, seq). Its error is
// an *AmbiguousError when the entry may or may not have been dropped.
func (c *Client) DropQuarantined(ctx context.Context, epoch, seq uint64) error {
	_, err := c.do(ctx, call{kind: kindLocal, method: "POST", path: "/v1/cluster/quarantine/drop", body: mustJSON(apitypes.QuarantineRef{Epoch: epoch, Seq: seq}),
		op: "drop of quarantined entry", id: fmt.Sprintf("%d.%d", epoch, seq)}, nil)
	return err
}

// Fenced is Quarantine, under its old name.
//
// Deprecated: use Quarantine.
func (c *Client) Fenced(ctx context.Context) (apitypes.QuarantineList, error) {
	return c.Quarantine(ctx)
}

// ExportFenced is ExportQuarantine, under its old name.
//
// Deprecated: use ExportQuarantine.
func (c *Client) ExportFenced(ctx context.Context, w io.Writer) (int64, error) {
	return c.ExportQuarantine(ctx, w)
}

// ReplayFenced is ReplayQuarantined, under its old name.
//
// Deprecated: use ReplayQuarantined.
func (c *Client) ReplayFenced(ctx context.Context, epoch, seq uint64) (apitypes.ReplayResult, error) {
	return c.ReplayQuarantined(ctx, epoch, seq)
}

// DropFenced is DropQuarantined, under its old name.
//
// Deprecated: use DropQuarantined.
func (c *Client) DropFenced(ctx context.Context, epoch, seq uint64) error {
	return c.DropQuarantined(ctx, epoch, seq)
}

// Enable switches a running standalone node to cluster mode in place:
// it becomes the Cortex of a one-voter cluster under req.NodeID, keeping
// its data (POST /v1/cluster/enable, an admin endpoint; docs/api.md).
func (c *Client) Enable(ctx context.Context, req apitypes.EnableRequest) (apitypes.ModeResult, error) {
	var res apitypes.ModeResult
	_, err := c.do(ctx, call{kind: kindAdmin, method: "POST", path: "/v1/cluster/enable", body: mustJSON(req), op: "enable"}, &res)
	return res, err
}

// Disable switches a one-voter cluster back to a standalone node
// (POST /v1/cluster/disable); refused while other members exist.
func (c *Client) Disable(ctx context.Context) (apitypes.ModeResult, error) {
	var res apitypes.ModeResult
	_, err := c.do(ctx, call{kind: kindAdmin, method: "POST", path: "/v1/cluster/disable", body: []byte("{}"), op: "disable"}, &res)
	return res, err
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func durOr(d string) string {
	if d == "" {
		return "local"
	}
	return d
}
