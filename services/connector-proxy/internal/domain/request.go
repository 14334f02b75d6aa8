package domain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Operations.
const (
	OpQuery  = "query"  // SOQL (salesforce, soap), a named endpoint (http), a listing (coreapi)
	OpGet    = "get"    // one record by object and id
	OpUpdate = "update" // set fields of one record
)

// Limits of a request.
const (
	MaxQueryBytes      = 16 << 10
	MaxParams          = 64
	MaxParamBytes      = 4 << 10
	MaxParamListLength = 200
	MaxFields          = 100
	MaxValues          = 100
)

// Request is one look-up or update, as it arrives over NATS or REST.
type Request struct {
	Org       string         `json:"org"`
	Connector string         `json:"connector"`
	Op        string         `json:"op,omitempty"`
	Query     string         `json:"query,omitempty"`
	Params    map[string]any `json:"params,omitempty"`
	Object    string         `json:"object,omitempty"`
	ID        string         `json:"id,omitempty"`
	Fields    []string       `json:"fields,omitempty"`
	Values    map[string]any `json:"values,omitempty"`
	// TimeoutMS is the caller's deadline, relative to the request's
	// arrival: 0 means the proxy's default, more than its maximum is clipped.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
	// NoCache asks for a fresh answer (the result still fills the cache).
	NoCache bool   `json:"no_cache,omitempty"`
	CallID  string `json:"call_id,omitempty"` // for logs
}

var (
	namePattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
	paramPattern  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
	objectPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,79}$`)
	idPattern     = regexp.MustCompile(`^[A-Za-z0-9_.:@-]{1,128}$`)
	numberPattern = regexp.MustCompile(`^-?(0|[1-9][0-9]{0,17})(\.[0-9]{1,18})?$`)
)

// ValidName reports whether s may name an org or a connector.
func ValidName(s string) bool { return namePattern.MatchString(s) }

// ValidIdentifier reports whether s may name an sObject type or field.
func ValidIdentifier(s string) bool { return objectPattern.MatchString(s) }

// ParseRequest decodes a request body strictly (unknown fields, trailing
// data and oversized bodies are refused) and validates it.
func ParseRequest(body []byte, maxBytes int) (Request, error) {
	var r Request
	if len(body) > maxBytes {
		return r, Invalid("body", "request of %d bytes exceeds the limit of %d", len(body), maxBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(&r); err != nil {
		if errors.Is(err, io.EOF) {
			return r, Invalid("body", "request body is empty; send a JSON object")
		}
		return r, Invalid("body", "request is not valid JSON for connector.query: %v", err)
	}
	if dec.More() {
		return r, Invalid("body", "request has data after the JSON object")
	}
	return r, r.Validate()
}

// Validate checks every field and defaults Op to query.
func (r *Request) Validate() error {
	if r.Op == "" {
		r.Op = OpQuery
	}
	switch {
	case !ValidName(r.Org):
		return Invalid("org", "org %q: want 1-64 letters, digits, '-' or '_'", clip(r.Org))
	case !ValidName(r.Connector):
		return Invalid("connector", "connector %q: want 1-64 letters, digits, '-' or '_'", clip(r.Connector))
	case r.TimeoutMS < 0:
		return Invalid("timeout_ms", "timeout_ms %d is negative", r.TimeoutMS)
	case len(r.CallID) > 64 || !printable(r.CallID):
		return Invalid("call_id", "call_id: at most 64 printable characters")
	}
	if err := validParams("params", r.Params, true); err != nil {
		return err
	}
	switch r.Op {
	case OpQuery:
		if r.Query == "" {
			return Invalid("query", "op query needs query")
		}
		if len(r.Query) > MaxQueryBytes || !utf8.ValidString(r.Query) || strings.ContainsRune(r.Query, 0) {
			return Invalid("query", "query: at most %d bytes of UTF-8 without NUL", MaxQueryBytes)
		}
		if r.Object != "" || r.ID != "" || len(r.Fields) > 0 || len(r.Values) > 0 {
			return Invalid("op", "op query takes query and params only (object, id, fields and values belong to get and update)")
		}
	case OpGet, OpUpdate:
		if !objectPattern.MatchString(r.Object) {
			return Invalid("object", "object %q: want an identifier (letters, digits, '_')", clip(r.Object))
		}
		if !idPattern.MatchString(r.ID) {
			return Invalid("id", "id %q: want 1-128 letters, digits or . _ : @ -", clip(r.ID))
		}
		if r.Query != "" || len(r.Params) > 0 {
			return Invalid("op", "op %s takes object and id, not query or params", r.Op)
		}
		if r.Op == OpGet {
			if len(r.Values) > 0 {
				return Invalid("values", "op get takes no values")
			}
			if len(r.Fields) > MaxFields {
				return Invalid("fields", "at most %d fields", MaxFields)
			}
			for _, f := range r.Fields {
				if !objectPattern.MatchString(f) {
					return Invalid("fields", "field %q: want an identifier", clip(f))
				}
			}
			break
		}
		if len(r.Fields) > 0 {
			return Invalid("fields", "op update takes values, not fields")
		}
		if len(r.Values) == 0 || len(r.Values) > MaxValues {
			return Invalid("values", "op update needs 1-%d values", MaxValues)
		}
		for k := range r.Values {
			if !objectPattern.MatchString(k) {
				return Invalid("values", "field %q: want an identifier", clip(k))
			}
		}
		if err := validParams("values", r.Values, false); err != nil {
			return err
		}
	default:
		return Invalid("op", "op %q: want query, get or update", clip(r.Op))
	}
	return nil
}

// Timeout is the request's deadline budget: the default when none was
// given, clipped to max.
func (r *Request) Timeout(def, max time.Duration) time.Duration {
	d := time.Duration(r.TimeoutMS) * time.Millisecond
	if r.TimeoutMS == 0 {
		d = def
	}
	if r.TimeoutMS > int64(max/time.Millisecond) {
		d = max
	}
	return d
}

// validParams checks names and values: scalars (string, number, bool,
// null) and, where lists are allowed, lists of scalars.
func validParams(field string, m map[string]any, lists bool) error {
	if len(m) > MaxParams {
		return Invalid(field, "at most %d entries", MaxParams)
	}
	for k, v := range m {
		if field == "params" && !paramPattern.MatchString(k) {
			return Invalid(field, "name %q: want a letter or '_' then letters, digits or '_' (at most 64)", clip(k))
		}
		if list, ok := v.([]any); ok {
			if !lists {
				return Invalid(field+"."+k, "a list is not allowed here")
			}
			if len(list) == 0 || len(list) > MaxParamListLength {
				return Invalid(field+"."+k, "a list needs 1-%d values", MaxParamListLength)
			}
			for _, x := range list {
				if err := validScalar(field+"."+k, x); err != nil {
					return err
				}
			}
			continue
		}
		if err := validScalar(field+"."+k, v); err != nil {
			return err
		}
	}
	return nil
}

func validScalar(field string, v any) error {
	switch x := v.(type) {
	case nil, bool:
		return nil
	case json.Number:
		if !numberPattern.MatchString(string(x)) {
			return Invalid(field, "number %s: want a plain decimal (no exponent, at most 18 digits each side)", clip(string(x)))
		}
		return nil
	case float64, int, int64:
		return nil
	case string:
		if len(x) > MaxParamBytes || !utf8.ValidString(x) || strings.ContainsRune(x, 0) {
			return Invalid(field, "text: at most %d bytes of UTF-8 without NUL", MaxParamBytes)
		}
		return nil
	}
	return Invalid(field, "want text, a number, true/false or null, not %T", v)
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// CacheKey identifies the answer of a read: the same org, connector
// generation, op and arguments give the same key (params are canonical:
// encoding/json sorts map keys).
func (r *Request) CacheKey(generation uint64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\x00%s\x00%d\x00%s\x00%s\x00%s\x00%s\x00", r.Org, r.Connector, generation, r.Op, r.Query, r.Object, r.ID)
	b.WriteString(strings.Join(r.Fields, ","))
	b.WriteByte(0)
	if len(r.Params) > 0 {
		p, _ := json.Marshal(r.Params)
		b.Write(p)
	}
	return b.String()
}
