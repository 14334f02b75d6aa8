// Package httpjson is the generic HTTP connector: named endpoints, each a
// templated GET or POST whose JSON answer is the result. A request names
// the endpoint in its query field and fills the {{placeholders}} with its
// params (path-escaped, query-escaped or JSON-encoded where they stand).
package httpjson

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strings"

	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/adapters/upstream"
	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/domain"
)

// Options configure the connector.
type Options struct {
	Settings domain.HTTPSettings
	MaxBytes int64
	Client   *http.Client
}

// Connector calls one set of endpoints.
type Connector struct{ opts Options }

// New builds the connector.
func New(opts Options) *Connector {
	if opts.Client == nil {
		opts.Client = upstream.NewClient()
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = upstream.DefaultMaxBytes
	}
	return &Connector{opts: opts}
}

func (c *Connector) endpoint(req *domain.Request) (domain.Endpoint, error) {
	if req.Op != domain.OpQuery {
		return domain.Endpoint{}, domain.Errorf(domain.CodeUnsupportedOp, "http connectors do query (an endpoint by name), not %s", req.Op)
	}
	e, ok := c.opts.Settings.Endpoints[req.Query]
	if !ok {
		names := make([]string, 0, len(c.opts.Settings.Endpoints))
		for n := range c.opts.Settings.Endpoints {
			names = append(names, n)
		}
		sort.Strings(names)
		return e, domain.Invalid("query", "no endpoint %q; this connector has %s", req.Query, strings.Join(names, ", "))
	}
	return e, nil
}

// Check refuses unknown endpoints and params that do not fit the template.
func (c *Connector) Check(req *domain.Request) error {
	e, err := c.endpoint(req)
	if err != nil {
		return err
	}
	_, err = domain.BindHTTP(e.URL, e.Body, req.Params)
	return err
}

// ReadOnly: GETs and POSTs marked idempotent.
func (c *Connector) ReadOnly(req *domain.Request) bool {
	e, err := c.endpoint(req)
	return err == nil && e.ReadOnly()
}

// Do calls the endpoint.
func (c *Connector) Do(ctx context.Context, req *domain.Request) (json.RawMessage, error) {
	e, err := c.endpoint(req)
	if err != nil {
		return nil, err
	}
	b, err := domain.BindHTTP(e.URL, e.Body, req.Params)
	if err != nil {
		return nil, err
	}
	method := e.Method
	if method == "" {
		method = http.MethodGet
	}
	hr, err := http.NewRequest(method, b.URL, strings.NewReader(b.Body))
	if err != nil {
		return nil, domain.Errorf(domain.CodeUpstreamError, "http request: %v", err)
	}
	for k, v := range c.opts.Settings.Headers {
		hr.Header.Set(k, v)
	}
	for k, v := range c.opts.Settings.SecretHeaders {
		hr.Header.Set(k, v.Reveal())
	}
	hr.Header.Set("Accept", "application/json")
	if b.Body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	resp, derr := upstream.Do(ctx, c.opts.Client, hr, c.opts.MaxBytes, "endpoint "+req.Query)
	if derr != nil {
		return nil, derr
	}
	if resp.Status/100 != 2 {
		msg := strings.TrimSpace(string(resp.Body))
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		if msg == "" {
			msg = http.StatusText(resp.Status)
		}
		return nil, upstream.StatusError("endpoint "+req.Query, resp.Status, "", "HTTP "+http.StatusText(resp.Status)+": "+msg)
	}
	if len(resp.Body) == 0 {
		return json.RawMessage("null"), nil
	}
	if !json.Valid(resp.Body) {
		return nil, domain.Errorf(domain.CodeUpstreamError, "endpoint %s answered something that is not JSON", req.Query)
	}
	return resp.Body, nil
}
