package engram

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
)

// Query limits.
const (
	DefaultListLimit     = 100
	MaxListLimit         = 1000
	DefaultActivateLimit = 10
	MaxActivateLimit     = 1000
	MaxQueryLen          = 4096 // bytes of activate query text
)

// Get returns the engram id of vault with its current activation. Absent and
// forgotten engrams report false.
func Get(kv KV, vault, id string) (Engram, bool, error) {
	if err := ValidateVault(vault); err != nil {
		return Engram{}, false, err
	}
	if err := ValidateID(id); err != nil {
		return Engram{}, false, err
	}
	r, err := loadRecord(kv, vault, id)
	if err != nil || r == nil || r.Deleted {
		return Engram{}, false, err
	}
	s, err := loadScale(kv, vault)
	if err != nil {
		return Engram{}, false, err
	}
	return r.current(s), true, nil
}

func (r *record) current(s scale) Engram {
	e := r.Engram
	e.Activation = r.Activation * s.ratio(r.at)
	e.Tags = slices.Clone(e.Tags)
	return e
}

// ListOptions selects a page of a vault.
type ListOptions struct {
	// Tags keeps engrams carrying all of these tags.
	Tags []string
	// Limit is the page size: 0 means DefaultListLimit, at most MaxListLimit.
	Limit int
	// Cursor is the Next of the previous page ("" for the first page).
	Cursor string
}

// Page is one page of List.
type Page struct {
	Engrams []Engram
	// Next is the cursor of the next page, "" when this page is the last.
	Next string
}

// List returns the live engrams of vault in id (creation) order, filtered by
// tags, one page at a time. The cursor is the last id returned, so pages stay
// stable while engrams are added.
func List(kv KV, vault string, o ListOptions) (Page, error) {
	if err := ValidateVault(vault); err != nil {
		return Page{}, err
	}
	limit := o.Limit
	switch {
	case limit == 0:
		limit = DefaultListLimit
	case limit < 0 || limit > MaxListLimit:
		return Page{}, fmt.Errorf("limit: %d is outside 1..%d", o.Limit, MaxListLimit)
	}
	if err := checkTags(o.Tags); err != nil {
		return Page{}, err
	}
	start, end := vaultRange(vault)
	if o.Cursor != "" {
		if err := ValidateID(o.Cursor); err != nil {
			return Page{}, fmt.Errorf("cursor: %w", err)
		}
		start = append(EngramKey(vault, o.Cursor), 0) // the key right after
	}
	s, err := loadScale(kv, vault)
	if err != nil {
		return Page{}, err
	}
	var p Page
	var derr error
	more := false
	err = kv.Scan(start, end, func(k, v []byte) bool {
		id := string(k[2+len(vault):])
		r, err := decodeRecord(vault, id, v)
		if err != nil {
			derr = err
			return false
		}
		if r.Deleted || !hasAll(r.Tags, o.Tags) {
			return true
		}
		if len(p.Engrams) == limit {
			more = true
			return false
		}
		p.Engrams = append(p.Engrams, r.current(s))
		return true
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		return Page{}, err
	}
	if more {
		p.Next = p.Engrams[len(p.Engrams)-1].ID
	}
	return p, nil
}

func hasAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// Hit is one Activate result.
type Hit struct {
	Engram
	Score float64 `json:"score"`
}

// Activate ranks the live engrams of vault against query text: the score is
// the number of query terms found (a term in the concept or a tag counts 2,
// in the content 1) times (1 + activation). Ties order by id. Engrams that
// match no term are not returned.
func Activate(kv KV, vault, query string, limit int) ([]Hit, error) {
	if err := ValidateVault(vault); err != nil {
		return nil, err
	}
	switch {
	case limit == 0:
		limit = DefaultActivateLimit
	case limit < 0 || limit > MaxActivateLimit:
		return nil, fmt.Errorf("limit: %d is outside 1..%d", limit, MaxActivateLimit)
	}
	if len(query) > MaxQueryLen {
		return nil, fmt.Errorf("query: %d bytes exceeds the limit of %d bytes", len(query), MaxQueryLen)
	}
	terms := terms(query)
	if len(terms) == 0 {
		return nil, fmt.Errorf("query: no search terms in %q", clip(query))
	}
	s, err := loadScale(kv, vault)
	if err != nil {
		return nil, err
	}
	start, end := vaultRange(vault)
	var hits []Hit
	var derr error
	err = kv.Scan(start, end, func(k, v []byte) bool {
		r, err := decodeRecord(vault, string(k[2+len(vault):]), v)
		if err != nil {
			derr = err
			return false
		}
		if r.Deleted {
			return true
		}
		score := match(r, terms)
		if score == 0 {
			return true
		}
		e := r.current(s)
		hits = append(hits, Hit{Engram: e, Score: score * (1 + e.Activation)})
		return true
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(hits, func(a, b Hit) int {
		switch {
		case a.Score > b.Score:
			return -1
		case a.Score < b.Score:
			return 1
		}
		return strings.Compare(a.ID, b.ID)
	})
	if len(hits) > limit {
		hits = hits[:limit]
	}
	return hits, nil
}

// terms splits text into distinct lower-case words of letters and digits.
func terms(text string) []string {
	var out []string
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		if !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	return out
}

func match(r *record, qs []string) float64 {
	concept := terms(r.Concept)
	content := terms(r.Content)
	var tags []string
	for _, t := range r.Tags {
		tags = append(tags, terms(t)...)
	}
	score := 0.0
	for _, q := range qs {
		switch {
		case slices.Contains(concept, q) || slices.Contains(tags, q):
			score += 2
		case slices.Contains(content, q):
			score++
		}
	}
	return score
}
