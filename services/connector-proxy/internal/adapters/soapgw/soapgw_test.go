package soapgw

import (
	"bytes"
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/crmfake"
	"github.com/switchyard-voice/switchyard/pkg/crmfake/servicegateway"
	"github.com/switchyard-voice/switchyard/pkg/crmfake/soql"

	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/adapters/connectortest"
	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/domain"
)

type fake struct{ *servicegateway.Server }

func (f fake) Data() *soql.Store           { return f.Server.Data }
func (f fake) Switches() *crmfake.Switches { return &f.Server.Switches }
func (f fake) ExpireCredentials()          { f.Server.ExpireSessions() }
func (f fake) Queries() []string           { return f.Server.Queries() }

func newGateway(t *testing.T) (*servicegateway.Server, string) {
	gw := servicegateway.New(servicegateway.Options{BatchSize: 2})
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	gw.AddSession("org-key")
	return gw, srv.URL + "/services/Soap/u/62.0"
}

func TestConformance(t *testing.T) {
	connectortest.Run(t, func(t *testing.T, maxRecords int) connectortest.Fixture {
		gw, u := newGateway(t)
		c := New(Options{Settings: domain.SOAPSettings{URL: u, SessionID: "org-key"}, MaxRecords: maxRecords})
		return connectortest.Fixture{Connector: c, Fake: fake{gw}}
	})
}

// Values land in the envelope as XML text, never as markup.
func TestValuesAreXMLEscaped(t *testing.T) {
	gw, u := newGateway(t)
	gw.Data.Put("Account", soql.Record{"Id": "001000000000001AAA", "Name": "x"})
	c := New(Options{Settings: domain.SOAPSettings{URL: u, SessionID: "org-key"}})
	evil := `</sf:Name><sf:Owner>eve</sf:Owner><sf:Name>`
	for _, r := range []*domain.Request{
		{Op: domain.OpUpdate, Object: "Account", ID: "001000000000001AAA", Values: map[string]any{"Name": evil}},
		{Op: domain.OpQuery, Query: "SELECT Name FROM Account WHERE Name = :n", Params: map[string]any{"n": evil}},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := c.Do(ctx, r)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", r.Op, err)
		}
	}
	if u := gw.Data.Updates(); len(u) != 1 || u[0].Values["Name"] != evil || len(u[0].Values) != 1 {
		t.Fatalf("the update became %v", u)
	}
	for _, b := range gw.Bodies() {
		if bytes.Contains(b, []byte("<sf:Owner>")) {
			t.Fatalf("markup from a value reached the gateway: %s", b)
		}
	}
}
