// Package soapgw is the connector for legacy orgs, which reach Salesforce
// through the SOAP service-gateway: SOAP 1.1 envelopes of the partner API
// (query and queryMore, retrieve for get, update) with the org's gateway key
// in the SessionHeader, every value XML-escaped, and SOAP faults mapped to
// the wire contract's codes. Results have the REST connector's shape; the
// partner API gives every value as text.
package soapgw

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"strings"

	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/adapters/upstream"
	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/domain"
)

// Options configure the connector.
type Options struct {
	Settings   domain.SOAPSettings
	MaxRecords int
	MaxBytes   int64
	Client     *http.Client
}

// Connector is one legacy org behind the gateway.
type Connector struct{ opts Options }

// New builds the connector.
func New(opts Options) *Connector {
	if opts.Client == nil {
		opts.Client = upstream.NewClient()
	}
	if opts.MaxRecords <= 0 {
		opts.MaxRecords = domain.DefaultMaxRecords
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = upstream.DefaultMaxBytes
	}
	return &Connector{opts: opts}
}

// Check refuses what cannot be sent.
func (c *Connector) Check(req *domain.Request) error {
	switch req.Op {
	case domain.OpQuery:
		_, err := domain.BindSOQL(req.Query, req.Params)
		return err
	case domain.OpGet:
		if len(req.Fields) == 0 {
			return domain.Invalid("fields", "a soap get needs fields (the partner API's retrieve lists them)")
		}
		return nil
	case domain.OpUpdate:
		return nil
	}
	return domain.Errorf(domain.CodeUnsupportedOp, "soap connectors do query, get and update, not %s", req.Op)
}

// ReadOnly: queries and gets are reads.
func (c *Connector) ReadOnly(req *domain.Request) bool { return req.Op != domain.OpUpdate }

// Do performs the request.
func (c *Connector) Do(ctx context.Context, req *domain.Request) (json.RawMessage, error) {
	if err := c.Check(req); err != nil {
		return nil, err
	}
	switch req.Op {
	case domain.OpQuery:
		return c.query(ctx, req)
	case domain.OpGet:
		return c.retrieve(ctx, req)
	}
	return c.update(ctx, req)
}

func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// envelope wraps an operation; the session id is the org's gateway key.
func (c *Connector) envelope(op string) []byte {
	return []byte(`<?xml version="1.0" encoding="UTF-8"?>` +
		`<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com" xmlns:sf="urn:sobject.partner.soap.sforce.com">` +
		`<soapenv:Header><urn:SessionHeader><urn:sessionId>` + esc(c.opts.Settings.SessionID.Reveal()) + `</urn:sessionId></urn:SessionHeader></soapenv:Header>` +
		`<soapenv:Body>` + op + `</soapenv:Body></soapenv:Envelope>`)
}

// node is any XML element of an answer.
type node struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Text     string     `xml:",chardata"`
	Children []node     `xml:",any"`
}

func (n *node) child(local string) *node {
	for i := range n.Children {
		if n.Children[i].XMLName.Local == local {
			return &n.Children[i]
		}
	}
	return nil
}

func (n *node) isNil() bool {
	for _, a := range n.Attrs {
		if a.Name.Local == "nil" && a.Value == "true" {
			return true
		}
	}
	return false
}

// call posts one operation and returns the Body's answer element.
func (c *Connector) call(ctx context.Context, action, op string) (*node, error) {
	req, err := http.NewRequest(http.MethodPost, c.opts.Settings.URL, bytes.NewReader(c.envelope(op)))
	if err != nil {
		return nil, domain.Errorf(domain.CodeUpstreamError, "service-gateway request: %v", err)
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.Header.Set("SOAPAction", `"`+action+`"`)
	resp, derr := upstream.Do(ctx, c.opts.Client, req, c.opts.MaxBytes, "service-gateway")
	if derr != nil {
		return nil, derr
	}
	var env node
	if err := xml.Unmarshal(resp.Body, &env); err != nil || env.XMLName.Local != "Envelope" {
		if resp.Status/100 != 2 {
			return nil, upstream.StatusError("service-gateway", resp.Status, "", fmt.Sprintf("HTTP %d without a SOAP answer", resp.Status))
		}
		return nil, domain.Errorf(domain.CodeUpstreamError, "service-gateway answered something that is not a SOAP envelope")
	}
	body := env.child("Body")
	if body == nil || len(body.Children) == 0 {
		return nil, domain.Errorf(domain.CodeUpstreamError, "service-gateway answered an empty SOAP Body")
	}
	if f := body.child("Fault"); f != nil {
		return nil, mapFault(resp.Status, f)
	}
	if resp.Status/100 != 2 {
		return nil, upstream.StatusError("service-gateway", resp.Status, "", fmt.Sprintf("HTTP %d", resp.Status))
	}
	return &body.Children[0], nil
}

// faultCodes maps a fault's exception code to the wire contract's codes.
var faultCodes = map[string]string{
	"REQUEST_LIMIT_EXCEEDED":        domain.CodeRateLimited,
	"MALFORMED_QUERY":               domain.CodeMalformedQuery,
	"INVALID_FIELD":                 domain.CodeMalformedQuery,
	"INVALID_TYPE":                  domain.CodeMalformedQuery,
	"INVALID_QUERY_FILTER_OPERATOR": domain.CodeMalformedQuery,
	"MALFORMED_ID":                  domain.CodeMalformedQuery,
	"INVALID_ID_FIELD":              domain.CodeMalformedQuery,
	"INVALID_SESSION_ID":            domain.CodeAuthFailed,
	"INSUFFICIENT_ACCESS":           domain.CodeAuthFailed,
	"API_DISABLED_FOR_ORG":          domain.CodeAuthFailed,
	"ENTITY_IS_DELETED":             domain.CodeNotFound,
	"INVALID_CROSS_REFERENCE_KEY":   domain.CodeNotFound,
}

func mapFault(status int, f *node) *domain.Error {
	var code, msg string
	if x := f.child("faultcode"); x != nil {
		code = strings.TrimSpace(x.Text)
	}
	if x := f.child("faultstring"); x != nil {
		msg = strings.TrimSpace(x.Text)
	}
	_, exc, found := strings.Cut(code, ":")
	if !found {
		exc = code
	}
	if mapped, ok := faultCodes[exc]; ok {
		return domain.Upstream(mapped, status, exc, "service-gateway fault %s: %s", code, msg)
	}
	e := domain.Upstream(domain.CodeUpstreamError, status, exc, "service-gateway fault %s: %s", code, msg)
	// A server-side fault may pass; a client fault (our envelope) will not.
	e.Retryable = !strings.HasSuffix(code, ":Client")
	return e
}

// record turns an sObject element into the REST connector's record shape:
// its fields (not its type), text values, xsi:nil as null.
func record(n *node) map[string]any {
	r := map[string]any{}
	for i := range n.Children {
		f := &n.Children[i]
		name := f.XMLName.Local
		if name == "type" {
			continue
		}
		if _, dup := r[name]; dup {
			continue // the partner API may repeat Id
		}
		if f.isNil() {
			r[name] = nil
		} else {
			r[name] = f.Text
		}
	}
	return r
}

func (c *Connector) query(ctx context.Context, req *domain.Request) (json.RawMessage, error) {
	soql, err := domain.BindSOQL(req.Query, req.Params)
	if err != nil {
		return nil, err
	}
	ans, err := c.call(ctx, "query", `<urn:query><urn:queryString>`+esc(soql)+`</urn:queryString></urn:query>`)
	if err != nil {
		return nil, err
	}
	records := []any{}
	total, done := 0, false
	for {
		res := ans.child("result")
		if res == nil {
			return nil, domain.Errorf(domain.CodeUpstreamError, "service-gateway answered a query without a result")
		}
		if s := res.child("size"); s != nil {
			fmt.Sscan(s.Text, &total)
		}
		for i := range res.Children {
			if res.Children[i].XMLName.Local == "records" && len(records) < c.opts.MaxRecords {
				records = append(records, record(&res.Children[i]))
			}
		}
		d := res.child("done")
		loc := res.child("queryLocator")
		if (d != nil && strings.TrimSpace(d.Text) == "true") || loc == nil || loc.isNil() || strings.TrimSpace(loc.Text) == "" {
			done = len(records) == total || total == 0
			break
		}
		if len(records) >= c.opts.MaxRecords {
			break
		}
		if ans, err = c.call(ctx, "queryMore", `<urn:queryMore><urn:queryLocator>`+esc(strings.TrimSpace(loc.Text))+`</urn:queryLocator></urn:queryMore>`); err != nil {
			return nil, err
		}
	}
	return json.Marshal(map[string]any{"records": records, "total_size": total, "done": done})
}

func (c *Connector) retrieve(ctx context.Context, req *domain.Request) (json.RawMessage, error) {
	op := `<urn:retrieve><urn:fieldList>` + esc(strings.Join(req.Fields, ",")) + `</urn:fieldList><urn:sObjectType>` + esc(req.Object) +
		`</urn:sObjectType><urn:ids>` + esc(req.ID) + `</urn:ids></urn:retrieve>`
	ans, err := c.call(ctx, "retrieve", op)
	if err != nil {
		return nil, err
	}
	res := ans.child("result")
	if res == nil || res.isNil() {
		return nil, domain.Errorf(domain.CodeNotFound, "service-gateway: no %s with id %s", req.Object, req.ID)
	}
	return json.Marshal(record(res))
}

func (c *Connector) update(ctx context.Context, req *domain.Request) (json.RawMessage, error) {
	var b strings.Builder
	b.WriteString(`<urn:update><urn:sObjects><sf:type>` + esc(req.Object) + `</sf:type><sf:Id>` + esc(req.ID) + `</sf:Id>`)
	for k, v := range req.Values {
		// k is an identifier (validated): safe as an element name.
		if v == nil {
			b.WriteString(`<sf:fieldsToNull>` + k + `</sf:fieldsToNull>`)
			continue
		}
		b.WriteString(`<sf:` + k + `>` + esc(fmt.Sprint(v)) + `</sf:` + k + `>`)
	}
	b.WriteString(`</urn:sObjects></urn:update>`)
	ans, err := c.call(ctx, "update", b.String())
	if err != nil {
		return nil, err
	}
	res := ans.child("result")
	if res == nil {
		return nil, domain.Errorf(domain.CodeUpstreamError, "service-gateway answered an update without a result")
	}
	if s := res.child("success"); s != nil && strings.TrimSpace(s.Text) == "true" {
		return json.Marshal(map[string]any{"id": req.ID, "updated": true})
	}
	var code, msg string
	if e := res.child("errors"); e != nil {
		if x := e.child("statusCode"); x != nil {
			code = strings.TrimSpace(x.Text)
		}
		if x := e.child("message"); x != nil {
			msg = strings.TrimSpace(x.Text)
		}
	}
	mapped, ok := faultCodes[code]
	if !ok {
		mapped = domain.CodeUpstreamError
	}
	return nil, domain.Upstream(mapped, 0, code, "service-gateway refused the update: %s: %s", code, msg)
}
