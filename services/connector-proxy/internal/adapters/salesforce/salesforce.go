// Package salesforce is the Salesforce REST connector: OAuth 2.0
// (client-credentials or JWT bearer) with a cached token that is refreshed
// once when Salesforce answers 401 INVALID_SESSION_ID, SOQL queries with
// parameters bound as escaped literals and nextRecordsUrl followed up to
// the connector's record limit, sObject get and update, and Salesforce's
// error bodies mapped to the wire contract's codes.
package salesforce

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/adapters/upstream"
	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/domain"
)

// Options configure the connector.
type Options struct {
	Settings          domain.SalesforceSettings
	DefaultAPIVersion string // when Settings.APIVersion is ""
	MaxRecords        int    // records of a query across pages
	MaxBytes          int64  // of one upstream answer
	Client            *http.Client
	Now               func() time.Time
	// OnToken is told of every token request (client_credentials or
	// jwt_bearer), for metrics.
	OnToken func(grant string)
	// Credentials reads the OAuth settings from core-api, for a connector
	// with a credentials_id; called at every token request.
	Credentials func(ctx context.Context, id string) (domain.SalesforceSettings, error)
}

// Connector is one org's Salesforce.
type Connector struct {
	opts    Options
	version string
	key     *rsa.PrivateKey

	mu      sync.Mutex
	tok     token
	fetches singleflight.Group
	keyPEM  string // of key, when it came from core-api
}

// New checks the settings (the private key parses) and builds the
// connector; no request is made until the first look-up.
func New(opts Options) (*Connector, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Client == nil {
		opts.Client = upstream.NewClient()
	}
	if opts.MaxRecords <= 0 {
		opts.MaxRecords = domain.DefaultMaxRecords
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = upstream.DefaultMaxBytes
	}
	c := &Connector{opts: opts, version: opts.Settings.APIVersion}
	if c.version == "" {
		c.version = opts.DefaultAPIVersion
	}
	if c.version == "" {
		c.version = "62.0"
	}
	if opts.Settings.CredentialsID != "" && opts.Credentials == nil {
		return nil, domain.Invalid("salesforce.credentials_id", "credentials_id needs core-api: start the proxy with --core-api-url")
	}
	if opts.Settings.CredentialsID == "" && opts.Settings.Auth == domain.AuthJWTBearer {
		k, err := ParsePrivateKey(opts.Settings.PrivateKey.Reveal())
		if err != nil {
			return nil, domain.Invalid("salesforce.private_key", "salesforce.private_key: %v", err)
		}
		c.key = k
	}
	return c, nil
}

var sfIDPattern = regexp.MustCompile(`^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$`)

// Check refuses what cannot be sent: ids that are not Salesforce ids, and
// queries whose params do not bind.
func (c *Connector) Check(req *domain.Request) error {
	switch req.Op {
	case domain.OpQuery:
		_, err := domain.BindSOQL(req.Query, req.Params)
		return err
	case domain.OpGet, domain.OpUpdate:
		if !sfIDPattern.MatchString(req.ID) {
			return domain.Invalid("id", "id %q: a Salesforce id has 15 or 18 letters and digits", req.ID)
		}
		return nil
	}
	return domain.Errorf(domain.CodeUnsupportedOp, "salesforce connectors do query, get and update, not %s", req.Op)
}

// ReadOnly: queries and gets are reads; updates are not.
func (c *Connector) ReadOnly(req *domain.Request) bool { return req.Op != domain.OpUpdate }

// Do performs the request.
func (c *Connector) Do(ctx context.Context, req *domain.Request) (json.RawMessage, error) {
	switch req.Op {
	case domain.OpQuery:
		return c.query(ctx, req)
	case domain.OpGet:
		path := "/sobjects/" + req.Object + "/" + req.ID
		if len(req.Fields) > 0 {
			path += "?fields=" + url.QueryEscape(strings.Join(req.Fields, ","))
		}
		body, err := c.call(ctx, http.MethodGet, c.dataPath(path), nil)
		if err != nil {
			return nil, err
		}
		var rec any
		if err := decode(body, &rec); err != nil {
			return nil, err
		}
		return json.Marshal(stripAttributes(rec))
	case domain.OpUpdate:
		b, err := json.Marshal(req.Values)
		if err != nil {
			return nil, domain.Invalid("values", "%v", err)
		}
		if _, err := c.call(ctx, http.MethodPatch, c.dataPath("/sobjects/"+req.Object+"/"+req.ID), b); err != nil {
			return nil, err
		}
		return json.Marshal(map[string]any{"id": req.ID, "updated": true})
	}
	return nil, c.Check(req)
}

func (c *Connector) dataPath(p string) string { return "/services/data/v" + c.version + p }

// query runs SOQL and follows nextRecordsUrl until done or MaxRecords.
func (c *Connector) query(ctx context.Context, req *domain.Request) (json.RawMessage, error) {
	soql, err := domain.BindSOQL(req.Query, req.Params)
	if err != nil {
		return nil, err
	}
	path := c.dataPath("/query?q=" + url.QueryEscape(soql))
	records := []any{}
	total := 0
	done := false
	for {
		body, err := c.call(ctx, http.MethodGet, path, nil)
		if err != nil {
			return nil, err
		}
		var page struct {
			TotalSize      int    `json:"totalSize"`
			Done           bool   `json:"done"`
			NextRecordsURL string `json:"nextRecordsUrl"`
			Records        []any  `json:"records"`
		}
		if err := decode(body, &page); err != nil {
			return nil, err
		}
		total = page.TotalSize
		for _, r := range page.Records {
			if len(records) == c.opts.MaxRecords {
				break
			}
			records = append(records, stripAttributes(r))
		}
		if page.Done || page.NextRecordsURL == "" {
			done = len(records) == total || total == 0
			break
		}
		if len(records) >= c.opts.MaxRecords {
			break
		}
		// Only a path on the same instance is followed.
		if !strings.HasPrefix(page.NextRecordsURL, "/services/data/") {
			return nil, domain.Errorf(domain.CodeUpstreamError, "salesforce answered an unexpected nextRecordsUrl %q", page.NextRecordsURL)
		}
		path = page.NextRecordsURL
	}
	return json.Marshal(map[string]any{"records": records, "total_size": total, "done": done})
}

// call sends one API request with the current token; on 401 it refreshes
// the token once and sends it again (nothing ran: Salesforce refused the
// session before doing anything, so this is safe for updates too).
func (c *Connector) call(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		t, err := c.current(ctx)
		if err != nil {
			return nil, err
		}
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequest(method, t.instanceURL+path, rd)
		if err != nil {
			return nil, domain.Errorf(domain.CodeUpstreamError, "salesforce request: %v", err)
		}
		req.Header.Set("Authorization", "Bearer "+t.access)
		req.Header.Set("Accept", "application/json")
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, derr := upstream.Do(ctx, c.opts.Client, req, c.opts.MaxBytes, "salesforce")
		if derr != nil {
			return nil, derr
		}
		if resp.Status == http.StatusUnauthorized && attempt == 0 {
			c.invalidate(t)
			if c.opts.OnToken != nil {
				c.opts.OnToken("refresh")
			}
			continue
		}
		if resp.Status/100 != 2 {
			return nil, mapError(resp.Status, resp.Body)
		}
		return resp.Body, nil
	}
}

// decode reads JSON keeping numbers exact.
func decode(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return domain.Errorf(domain.CodeUpstreamError, "salesforce answered something that is not the expected JSON: %v", err)
	}
	return nil
}

// stripAttributes removes Salesforce's "attributes" (type and URL) from a
// record and the related records inside it.
func stripAttributes(v any) any {
	switch x := v.(type) {
	case map[string]any:
		delete(x, "attributes")
		for k, e := range x {
			x[k] = stripAttributes(e)
		}
	case []any:
		for i, e := range x {
			x[i] = stripAttributes(e)
		}
	}
	return v
}

// errorCodes maps Salesforce errorCodes to the wire contract's codes.
var errorCodes = map[string]string{
	"REQUEST_LIMIT_EXCEEDED":          domain.CodeRateLimited,
	"MALFORMED_QUERY":                 domain.CodeMalformedQuery,
	"INVALID_FIELD":                   domain.CodeMalformedQuery,
	"INVALID_TYPE":                    domain.CodeMalformedQuery,
	"INVALID_QUERY_FILTER_OPERATOR":   domain.CodeMalformedQuery,
	"INVALID_QUERY_LOCATOR":           domain.CodeUpstreamError,
	"MALFORMED_ID":                    domain.CodeMalformedQuery,
	"INVALID_ID_FIELD":                domain.CodeMalformedQuery,
	"JSON_PARSER_ERROR":               domain.CodeMalformedQuery,
	"INVALID_FIELD_FOR_INSERT_UPDATE": domain.CodeMalformedQuery,
	"STRING_TOO_LONG":                 domain.CodeMalformedQuery,
	"NOT_FOUND":                       domain.CodeNotFound,
	"ENTITY_IS_DELETED":               domain.CodeNotFound,
	"INVALID_CROSS_REFERENCE_KEY":     domain.CodeNotFound,
	"INVALID_SESSION_ID":              domain.CodeAuthFailed,
	"INSUFFICIENT_ACCESS":             domain.CodeAuthFailed,
	"INSUFFICIENT_ACCESS_OR_READONLY": domain.CodeAuthFailed,
	"API_DISABLED_FOR_ORG":            domain.CodeAuthFailed,
	"API_CURRENTLY_DISABLED":          domain.CodeAuthFailed,
}

// mapError turns a Salesforce error answer into an *domain.Error:
// `[{"message":…,"errorCode":…}]` (or one such object) by errorCode, else
// by status.
func mapError(status int, body []byte) *domain.Error {
	type sfError struct {
		Message   string `json:"message"`
		ErrorCode string `json:"errorCode"`
	}
	var list []sfError
	if json.Unmarshal(body, &list) != nil || len(list) == 0 {
		var one sfError
		if json.Unmarshal(body, &one) == nil && one.ErrorCode != "" {
			list = []sfError{one}
		}
	}
	if len(list) == 0 {
		return upstream.StatusError("salesforce", status, "", "")
	}
	first := list[0]
	code, known := errorCodes[first.ErrorCode]
	if !known {
		return upstream.StatusError("salesforce", status, first.ErrorCode, first.ErrorCode+": "+first.Message)
	}
	return domain.Upstream(code, status, first.ErrorCode, "salesforce: %s: %s", first.ErrorCode, first.Message)
}
