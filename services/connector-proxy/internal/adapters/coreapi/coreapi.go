// Package coreapi is the core-api connector: an org's group data over
// core-api's REST API. `get` with object "group" reads
// {base}/orgs/{org}/groups/{id}; `query` "groups" lists them. Answers are
// remembered with their ETag and revalidated with If-None-Match, on top of
// the proxy's TTL cache: a 304 costs core-api no body.
package coreapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/adapters/upstream"
	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/domain"
)

// Options configure the connector.
type Options struct {
	Settings domain.CoreAPISettings
	Org      string // the connector's org, when Settings.OrgID is ""
	MaxBytes int64
	Client   *http.Client
}

// Connector reads one org's data from core-api.
type Connector struct {
	opts Options
	org  string

	mu    sync.Mutex
	etags map[string]validated // URL → last answer
}

type validated struct {
	etag string
	body []byte
}

// maxRemembered bounds the ETag memory; it is emptied when full.
const maxRemembered = 4096

// New builds the connector.
func New(opts Options) *Connector {
	if opts.Client == nil {
		opts.Client = upstream.NewClient()
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = upstream.DefaultMaxBytes
	}
	org := opts.Settings.OrgID
	if org == "" {
		org = opts.Org
	}
	return &Connector{opts: opts, org: org, etags: map[string]validated{}}
}

// Check accepts get of a group and query "groups".
func (c *Connector) Check(req *domain.Request) error {
	switch {
	case req.Op == domain.OpGet && req.Object == "group":
		return nil
	case req.Op == domain.OpQuery && req.Query == "groups":
		if len(req.Params) > 0 {
			return domain.Invalid("params", "query groups takes no params")
		}
		return nil
	case req.Op == domain.OpGet:
		return domain.Invalid("object", "core-api connectors get object \"group\", not %q", req.Object)
	case req.Op == domain.OpQuery:
		return domain.Invalid("query", "core-api connectors answer query \"groups\", not %q", req.Query)
	}
	return domain.Errorf(domain.CodeUnsupportedOp, "core-api connectors do get (group) and query (groups), not %s", req.Op)
}

// ReadOnly: everything is a read.
func (c *Connector) ReadOnly(*domain.Request) bool { return true }

// Do performs the request.
func (c *Connector) Do(ctx context.Context, req *domain.Request) (json.RawMessage, error) {
	if err := c.Check(req); err != nil {
		return nil, err
	}
	path := "/orgs/" + url.PathEscape(c.org) + "/groups"
	if req.Op == domain.OpGet {
		path += "/" + url.PathEscape(req.ID)
	}
	return c.get(ctx, strings.TrimRight(c.opts.Settings.URL, "/")+path)
}

func (c *Connector) get(ctx context.Context, u string) (json.RawMessage, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return nil, domain.Errorf(domain.CodeUpstreamError, "core-api request: %v", err)
	}
	req.Header.Set("Accept", "application/json")
	if t := c.opts.Settings.Token; t != "" {
		req.Header.Set("Authorization", "Bearer "+t.Reveal())
	}
	c.mu.Lock()
	prev, had := c.etags[u]
	c.mu.Unlock()
	if had {
		req.Header.Set("If-None-Match", prev.etag)
	}
	resp, derr := upstream.Do(ctx, c.opts.Client, req, c.opts.MaxBytes, "core-api")
	if derr != nil {
		return nil, derr
	}
	switch {
	case resp.Status == http.StatusNotModified && had:
		return prev.body, nil
	case resp.Status/100 != 2:
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal(resp.Body, &e)
		msg := e.Error.Message
		if msg == "" {
			msg = http.StatusText(resp.Status)
		}
		return nil, upstream.StatusError("core-api", resp.Status, e.Error.Code, msg)
	case !json.Valid(resp.Body):
		return nil, domain.Errorf(domain.CodeUpstreamError, "core-api answered something that is not JSON")
	}
	if et := resp.Header.Get("ETag"); et != "" {
		c.mu.Lock()
		if len(c.etags) >= maxRemembered {
			clear(c.etags)
		}
		c.etags[u] = validated{etag: et, body: resp.Body}
		c.mu.Unlock()
	}
	return resp.Body, nil
}

// SalesforceCredentials reads a data connector's Salesforce credentials:
// GET {base}/orgs/{org}/data-connectors/{id}, a JSON object with the
// salesforce settings' names (auth, login_url, client_id, client_secret,
// username, private_key, …). They are revalidated by ETag like any answer.
func (c *Connector) SalesforceCredentials(ctx context.Context, id string) (domain.SalesforceSettings, error) {
	b, err := c.get(ctx, strings.TrimRight(c.opts.Settings.URL, "/")+"/orgs/"+url.PathEscape(c.org)+"/data-connectors/"+url.PathEscape(id))
	if err != nil {
		return domain.SalesforceSettings{}, err
	}
	var creds struct {
		Type string `json:"type"`
		domain.SalesforceSettings
	}
	if err := json.Unmarshal(b, &creds); err != nil {
		return domain.SalesforceSettings{}, domain.Errorf(domain.CodeUpstreamError, "core-api's data connector %s is not a JSON object: %v", id, err)
	}
	if creds.Type != "" && creds.Type != domain.TypeSalesforce {
		return domain.SalesforceSettings{}, domain.Errorf(domain.CodeAuthFailed, "core-api's data connector %s is of type %q, not salesforce", id, creds.Type)
	}
	return creds.SalesforceSettings, nil
}
