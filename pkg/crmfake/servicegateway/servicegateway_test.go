package servicegateway

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/switchyard-voice/switchyard/pkg/crmfake/soql"
)

func envelope(session, body string) string {
	return `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com" xmlns:sf="urn:sobject.partner.soap.sforce.com">` +
		`<soapenv:Header><urn:SessionHeader><urn:sessionId>` + session + `</urn:sessionId></urn:SessionHeader></soapenv:Header>` +
		`<soapenv:Body>` + body + `</soapenv:Body></soapenv:Envelope>`
}

func soap(t *testing.T, u, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(u, "text/xml; charset=utf-8", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestGateway(t *testing.T) {
	gw := New(Options{BatchSize: 2})
	srv := httptest.NewServer(gw)
	defer srv.Close()
	gw.AddSession("key-1")
	for i := range 3 {
		gw.Data.Put("Account", soql.Record{"Id": fmt.Sprintf("001%015d", i), "Name": fmt.Sprintf("A&%d", i), "Phone": nil})
	}
	status, body := soap(t, srv.URL, envelope("key-1", `<urn:query><urn:queryString>SELECT Id, Name, Phone FROM Account</urn:queryString></urn:query>`))
	if status != 200 || !strings.Contains(body, "<done>false</done>") || !strings.Contains(body, "<sf:Name>A&amp;0</sf:Name>") ||
		!strings.Contains(body, `<sf:Phone xsi:nil="true"/>`) || !strings.Contains(body, "<size>3</size>") {
		t.Fatalf("query: %d %s", status, body)
	}
	loc := regexp.MustCompile(`<queryLocator>([^<]+)</queryLocator>`).FindStringSubmatch(body)
	if loc == nil {
		t.Fatalf("no locator: %s", body)
	}
	for _, tc := range []struct {
		name, session, op string
		status            int
		contains          []string
	}{
		{"queryMore", "key-1", `<urn:queryMore><urn:queryLocator>` + loc[1] + `</urn:queryLocator></urn:queryMore>`, 200,
			[]string{"<done>true</done>", "<sf:Name>A&amp;2</sf:Name>", `<queryLocator xsi:nil="true"/>`}},
		{"retrieve", "key-1", `<urn:retrieve><urn:fieldList>Name</urn:fieldList><urn:sObjectType>Account</urn:sObjectType><urn:ids>001000000000000001</urn:ids><urn:ids>001000000000000009</urn:ids></urn:retrieve>`, 200,
			[]string{"<sf:Name>A&amp;1</sf:Name>", `<result xsi:nil="true"/>`}},
		{"update", "key-1", `<urn:update><urn:sObjects><sf:type>Account</sf:type><sf:Id>001000000000000001</sf:Id><sf:Name>B &lt;1&gt;</sf:Name></urn:sObjects><urn:sObjects><sf:type>Account</sf:type><sf:Id>001000000000000009</sf:Id><sf:Name>x</sf:Name></urn:sObjects></urn:update>`, 200,
			[]string{"<result><id>001000000000000001</id><success>true</success></result>", "<statusCode>INVALID_CROSS_REFERENCE_KEY</statusCode>"}},
		{"malformed", "key-1", `<urn:query><urn:queryString>SELECT Id FROM Account WHERE</urn:queryString></urn:query>`, 500,
			[]string{"<faultcode>sf:MALFORMED_QUERY</faultcode>", "MalformedQueryFault"}},
		{"bad field", "key-1", `<urn:query><urn:queryString>SELECT Nope FROM Account</urn:queryString></urn:query>`, 500,
			[]string{"<faultcode>sf:INVALID_FIELD</faultcode>"}},
		{"bad session", "key-2", `<urn:query><urn:queryString>SELECT Id FROM Account</urn:queryString></urn:query>`, 500,
			[]string{"<faultcode>sf:INVALID_SESSION_ID</faultcode>"}},
		{"unknown op", "key-1", `<urn:delete><urn:ids>1</urn:ids></urn:delete>`, 500,
			[]string{"<faultcode>soapenv:Client</faultcode>"}},
	} {
		status, body := soap(t, srv.URL, envelope(tc.session, tc.op))
		if status != tc.status {
			t.Errorf("%s: status %d %s", tc.name, status, body)
		}
		for _, c := range tc.contains {
			if !strings.Contains(body, c) {
				t.Errorf("%s: lacks %s: %s", tc.name, c, body)
			}
		}
	}
	if u := gw.Data.Updates(); len(u) != 1 || u[0].Values["Name"] != "B <1>" {
		t.Errorf("updates %v", u)
	}
	q := envelope("key-1", `<urn:query><urn:queryString>SELECT Id FROM Account LIMIT 1</urn:queryString></urn:query>`)
	for _, tc := range []struct {
		name     string
		set      func()
		status   int
		contains string
	}{
		{"failing", func() { gw.FailNext(1) }, 500, "<faultcode>sf:UNKNOWN_EXCEPTION</faultcode>"},
		{"limit", func() { gw.SetRequestLimit(1); soap(t, srv.URL, q) }, 500, "<faultcode>sf:REQUEST_LIMIT_EXCEEDED</faultcode>"},
		{"down", func() { gw.SetRequestLimit(0); gw.SetDown(true) }, 503, "503 Service Unavailable"},
		{"expired", func() { gw.SetDown(false); gw.ExpireSessions() }, 500, "<faultcode>sf:INVALID_SESSION_ID</faultcode>"},
		{"not soap", func() { q = "{}" }, 500, "<faultcode>soapenv:Client</faultcode>"},
	} {
		tc.set()
		status, body := soap(t, srv.URL, q)
		if status != tc.status || !strings.Contains(body, tc.contains) {
			t.Errorf("%s: %d %s", tc.name, status, body)
		}
	}
}
