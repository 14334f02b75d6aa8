package service

import (
	"net/http"
	"time"

	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/adapters/coreapi"
	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/adapters/httpjson"
	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/adapters/salesforce"
	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/adapters/soapgw"
	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/app"
	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/domain"
	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/metrics"
)

// factory builds connectors from configurations; they share one HTTP
// client (and its connection pools).
type factory struct {
	cfg    Config
	client *http.Client
	m      *metrics.Metrics
}

// build makes the connector and its fail-safe policy.
func (f *factory) build(c domain.Connector) (app.Connector, app.Policy, error) {
	p := app.Policy{CacheTTL: f.cfg.CacheTTL, StaleFor: f.cfg.StaleFor, Retries: f.cfg.Retries}
	if c.CacheTTLSeconds != nil {
		p.CacheTTL = time.Duration(*c.CacheTTLSeconds) * time.Second
	}
	if c.StaleForSeconds != nil {
		p.StaleFor = time.Duration(*c.StaleForSeconds) * time.Second
	}
	if c.Retries != nil {
		p.Retries = *c.Retries
	}
	maxBytes := int64(f.cfg.MaxResultBytes)
	switch c.Type {
	case domain.TypeSalesforce:
		opts := salesforce.Options{Settings: *c.Salesforce, DefaultAPIVersion: f.cfg.SalesforceAPIVersion,
			MaxRecords: c.MaxRecords, MaxBytes: maxBytes, Client: f.client,
			OnToken: func(grant string) { f.m.Tokens.WithLabelValues(grant).Inc() }}
		if c.Salesforce.CredentialsID != "" && f.cfg.CoreAPIURL != "" {
			core := coreapi.New(coreapi.Options{Settings: domain.CoreAPISettings{URL: f.cfg.CoreAPIURL, Token: domain.Secret(f.cfg.CoreAPIToken)},
				Org: c.Org, MaxBytes: 64 << 10, Client: f.client})
			opts.Credentials = core.SalesforceCredentials
		}
		conn, err := salesforce.New(opts)
		return conn, p, err
	case domain.TypeSOAP:
		return soapgw.New(soapgw.Options{Settings: *c.SOAP, MaxRecords: c.MaxRecords, MaxBytes: maxBytes, Client: f.client}), p, nil
	case domain.TypeCoreAPI:
		return coreapi.New(coreapi.Options{Settings: *c.CoreAPI, Org: c.Org, MaxBytes: maxBytes, Client: f.client}), p, nil
	case domain.TypeHTTP:
		return httpjson.New(httpjson.Options{Settings: *c.HTTP, MaxBytes: maxBytes, Client: f.client}), p, nil
	}
	return nil, p, domain.Invalid("type", "type %q: want salesforce, soap, coreapi or http", c.Type)
}
