package service

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard-voice/switchyard/pkg/config"
	corefake "github.com/switchyard-voice/switchyard/pkg/crmfake/coreapi"
	sffake "github.com/switchyard-voice/switchyard/pkg/crmfake/salesforce"
	"github.com/switchyard-voice/switchyard/pkg/crmfake/soql"
	"github.com/switchyard-voice/switchyard/pkg/testinfra"
)

var servers *testinfra.Servers

func TestMain(m *testing.M) {
	if addr := os.Getenv(echoEnv); addr != "" {
		echoTo(addr) // BenchmarkLoopbackTCPRoundTrip's other process
		return
	}
	os.Exit(testinfra.Main(m, &servers, testinfra.WithNATS))
}

const token = "t0ken"

// syncBuffer collects the service's logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is a running connector-proxy against the shared NATS, with a fake
// Salesforce org.
type env struct {
	t      testing.TB
	nc     *nats.Conn
	svc    *Service
	base   string
	logs   *syncBuffer
	sf     *sffake.Server
	sfURL  string
	bucket string
	// stopRun stops the running instance, once.
	stopRun func()
}

var bucketN int

func testConfig(bucket string) Config {
	return Config{NATSURL: servers.NATS.URL(), AdminAddr: "127.0.0.1:0", AdminToken: token, Instance: "test", LogLevel: "debug",
		Bucket: bucket, DefaultTimeout: time.Second, MaxTimeout: 5 * time.Second, MaxInFlightPerOrg: 16, MaxPending: 256,
		CacheTTL: time.Minute, StaleFor: time.Minute, CacheMaxMB: 8, Retries: 1, RetryBackoff: 10 * time.Millisecond,
		BreakerFailures: 3, BreakerOpen: time.Minute, BreakerSlowCall: 100 * time.Millisecond, MaxRequestBytes: 64 << 10,
		MaxResultBytes: 1 << 20, SalesforceAPIVersion: "62.0", ShutdownGrace: 5 * time.Second}
}

func newEnv(t testing.TB, edit func(*Config)) *env {
	bucketN++
	e := &env{t: t, logs: &syncBuffer{}, bucket: fmt.Sprintf("cp_svc_%d", bucketN)}
	e.sf = sffake.New(sffake.Options{PageSize: 2})
	e.sf.AddClient("cid", "sf-s3cret-value")
	e.sf.Data.Put("Account", soql.Record{"Id": "001000000000001AAA", "Name": "Acme", "Phone": "+441234", "Tier__c": "VIP"})
	e.sf.Data.Put("Account", soql.Record{"Id": "001000000000002AAA", "Name": "Bolt", "Phone": "+449999", "Tier__c": "Standard"})
	srv := httptest.NewServer(e.sf)
	t.Cleanup(srv.Close)
	e.sfURL = srv.URL
	e.start(edit)
	var err error
	if e.nc, err = nats.Connect(servers.NATS.URL()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.nc.Close)
	return e
}

// start runs a service instance on the env's bucket.
func (e *env) start(edit func(*Config)) {
	cfg := testConfig(e.bucket)
	if edit != nil {
		edit(&cfg)
	}
	log, err := config.Logger(e.logs, cfg.LogLevel, "connector-proxy", cfg.Instance)
	if err != nil {
		e.t.Fatal(err)
	}
	svc, err := New(cfg, log)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var once sync.Once
	e.svc, e.base = svc, "http://"+svc.AdminAddr()
	go func() { done <- svc.Run(ctx) }()
	e.stopRun = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				e.t.Error("the service did not stop")
			}
		})
	}
	e.t.Cleanup(e.stopRun)
	e.waitReady()
}

// stop stops the current instance (once).
func (e *env) stop() { e.stopRun() }

func (e *env) waitReady() {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(e.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) http(method, path, body string, headers ...string) (int, string, http.Header) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func (e *env) sfConfig(extra string) string {
	return `{"type":"salesforce","salesforce":{"login_url":"` + e.sfURL + `","auth":"client_credentials","client_id":"cid","client_secret":"sf-s3cret-value"}` + extra + `}`
}

// reply is connector.query's answer.
type reply struct {
	Result      json.RawMessage `json:"result"`
	Source      string          `json:"source"`
	StaleReason string          `json:"stale_reason"`
	TookMS      float64         `json:"took_ms"`
	Error       *struct {
		Code    string            `json:"code"`
		Message string            `json:"message"`
		Field   string            `json:"field"`
		Details map[string]string `json:"details"`
	} `json:"error"`
}

func (e *env) query(body string, wait time.Duration) (reply, time.Duration) {
	e.t.Helper()
	start := time.Now()
	m, err := e.nc.Request("connector.query", []byte(body), wait)
	took := time.Since(start)
	if err != nil {
		e.t.Fatalf("connector.query %s: %v after %v", body, err, took)
	}
	var r reply
	if err := json.Unmarshal(m.Data, &r); err != nil {
		e.t.Fatalf("reply %s: %v", m.Data, err)
	}
	return r, took
}

const vipLookup = `{"org":"acme","connector":"sf","query":"SELECT Name, Tier__c FROM Account WHERE Phone = :phone","params":{"phone":%q},"timeout_ms":%d,"call_id":"c-1"}`

func TestLookUpOverNATS(t *testing.T) {
	e := newEnv(t, nil)
	if status, body, _ := e.http("PUT", "/v1/connectors/acme/sf", e.sfConfig(`,"cache_ttl_seconds":60`)); status != 201 {
		t.Fatalf("PUT: %d %s", status, body)
	}
	for _, tc := range []struct {
		name    string
		body    string
		source  string
		records string
		code    string
	}{
		{"vip", fmt.Sprintf(vipLookup, "+441234", 2000), "upstream", `[{"Name":"Acme","Tier__c":"VIP"}]`, ""},
		{"vip again", fmt.Sprintf(vipLookup, "+441234", 2000), "cache", `[{"Name":"Acme","Tier__c":"VIP"}]`, ""},
		{"injection", fmt.Sprintf(vipLookup, "' OR Name LIKE '%", 2000), "upstream", `[]`, ""},
		{"get", `{"org":"acme","connector":"sf","op":"get","object":"Account","id":"001000000000002AAA","fields":["Tier__c"]}`, "upstream", "", ""},
		{"unknown connector", `{"org":"acme","connector":"nope","query":"x"}`, "", "", "unknown_connector"},
		{"other org", `{"org":"beta","connector":"sf","query":"x"}`, "", "", "unknown_connector"},
		{"not json", `{"org":`, "", "", "invalid_request"},
		{"unbound param", `{"org":"acme","connector":"sf","query":"SELECT Id FROM Account WHERE Phone = :p"}`, "", "", "invalid_request"},
		{"malformed", `{"org":"acme","connector":"sf","query":"SELECT FROM"}`, "", "", "malformed_query"},
	} {
		r, _ := e.query(tc.body, 3*time.Second)
		if tc.code != "" {
			if r.Error == nil || r.Error.Code != tc.code {
				t.Errorf("%s: %+v", tc.name, r)
			}
			continue
		}
		if r.Error != nil || r.Source != tc.source {
			t.Errorf("%s: %+v %+v", tc.name, r, r.Error)
			continue
		}
		var res struct {
			Records json.RawMessage `json:"records"`
		}
		json.Unmarshal(r.Result, &res)
		if tc.records != "" && string(res.Records) != tc.records {
			t.Errorf("%s: records %s", tc.name, res.Records)
		}
	}
	// Salesforce stops answering: a lookup not in the cache fails fast,
	// within its deadline, so the policy takes its fallback in time.
	e.sf.SetLatency(10 * time.Second)
	r, took := e.query(fmt.Sprintf(vipLookup, "+449999", 300), 2*time.Second)
	// (Salesforce takes 10 s: anything under a second answered at the
	// deadline; the rest is slack for a loaded test machine.)
	if r.Error == nil || r.Error.Code != "timeout" || took > 800*time.Millisecond {
		t.Fatalf("slow Salesforce: %+v after %v", r.Error, took)
	}
	// The cached VIP is still answered at once.
	r, took = e.query(fmt.Sprintf(vipLookup, "+441234", 300), 2*time.Second)
	if r.Error != nil || r.Source != "cache" || took > 500*time.Millisecond {
		t.Fatalf("cached look-up while Salesforce is slow: %+v after %v", r, took)
	}
	if strings.Contains(e.logs.String(), "sf-s3cret-value") {
		t.Fatal("the client secret is in the logs")
	}
	if !strings.Contains(e.logs.String(), `"callid":"c-1"`) {
		t.Fatal("debug logs lack the call id")
	}
	_, metrics, _ := e.http("GET", "/metrics", "")
	for _, want := range []string{`switchyard_cp_requests_total{op="query",outcome="cached",type="salesforce"}`,
		`switchyard_cp_requests_total{op="query",outcome="timeout",type="salesforce"}`, `outcome="invalid"`, `switchyard_cp_token_requests_total{grant="client_credentials"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestConnectorsAPI(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		name, method, path, body string
		headers                  []string
		status                   int
		contains                 []string
	}{
		{"no token", "GET", "/v1/connectors", "", []string{"Authorization", "Bearer wrong"}, 401, []string{`"code":"unauthorized"`}},
		{"empty list", "GET", "/v1/connectors", "", nil, 200, []string{`{"connectors":[]}`}},
		{"create", "PUT", "/v1/connectors/acme/sf", e.sfConfig(""), nil, 201, []string{`"client_secret":"***redacted***"`, `"revision":`}},
		{"get", "GET", "/v1/connectors/acme/sf", "", nil, 200, []string{`"client_secret":"***redacted***"`, `"breaker":"closed"`}},
		{"put back redacted", "PUT", "/v1/connectors/acme/sf", e.sfConfig(`,"description":"edited"`)[0:0] +
			`{"type":"salesforce","description":"edited","salesforce":{"login_url":"` + e.sfURL + `","auth":"client_credentials","client_id":"cid","client_secret":"***redacted***"}}`, nil, 200, []string{`"description":"edited"`}},
		{"redacted with nothing stored", "PUT", "/v1/connectors/acme/sf2",
			`{"type":"salesforce","salesforce":{"login_url":"https://login.salesforce.com","auth":"client_credentials","client_id":"cid","client_secret":"***redacted***"}}`, nil, 400, []string{`"field":"salesforce.client_secret"`}},
		{"invalid", "PUT", "/v1/connectors/acme/bad", `{"type":"salesforce","salesforce":{"login_url":"nope","auth":"client_credentials","client_id":"c","client_secret":"s"}}`, nil, 400, []string{`"field":"salesforce.login_url"`}},
		{"bad key", "PUT", "/v1/connectors/acme/jwt", `{"type":"salesforce","salesforce":{"login_url":"https://login.salesforce.com","auth":"jwt_bearer","client_id":"c","username":"u","private_key":"not pem"}}`, nil, 400, []string{`"field":"salesforce.private_key"`}},
		{"unknown field", "PUT", "/v1/connectors/acme/x", `{"type":"http","nope":1}`, nil, 400, []string{`"code":"invalid_body"`}},
		{"name mismatch", "PUT", "/v1/connectors/acme/x", `{"org":"beta","type":"http"}`, nil, 400, []string{`"field":"name"`}},
		{"bad path", "GET", "/v1/connectors/acme/a.b", "", nil, 400, []string{`"field":"name"`}},
		{"stale If-Match", "PUT", "/v1/connectors/acme/sf", e.sfConfig(""), []string{"If-Match", `"1"`}, 412, []string{`"code":"conflict"`}},
		{"http connector", "PUT", "/v1/connectors/beta/billing", `{"type":"http","http":{"endpoints":{"balance":{"url":"https://billing.example/v1/{{account}}"}},"secret_headers":{"X-Api-Key":"hdr-s3cret"}}}`, nil, 201, []string{`"X-Api-Key":"***redacted***"`}},
		{"list by org", "GET", "/v1/connectors?org=beta", "", nil, 200, []string{`"name":"billing"`}},
		{"query over REST", "POST", "/v1/query", fmt.Sprintf(vipLookup, "+441234", 2000), nil, 200, []string{`"Tier__c":"VIP"`, `"source":"upstream"`}},
		{"query unknown", "POST", "/v1/query", `{"org":"zeta","connector":"sf","query":"x"}`, nil, 404, []string{`"code":"unknown_connector"`}},
		{"query invalid", "POST", "/v1/query", `{"org":"acme","connector":"sf","op":"drop"}`, nil, 400, []string{`"code":"invalid_request"`, `"field":"op"`}},
		{"delete", "DELETE", "/v1/connectors/beta/billing", "", nil, 204, nil},
		{"deleted", "GET", "/v1/connectors/beta/billing", "", nil, 404, []string{`"code":"not_found"`}},
	} {
		status, body, _ := e.http(tc.method, tc.path, tc.body, tc.headers...)
		if status != tc.status {
			t.Errorf("%s: %d %s", tc.name, status, body)
			continue
		}
		for _, c := range tc.contains {
			if !strings.Contains(body, c) {
				t.Errorf("%s: lacks %s: %s", tc.name, c, body)
			}
		}
		for _, secret := range []string{"sf-s3cret-value", "hdr-s3cret"} {
			if strings.Contains(body, secret) {
				t.Errorf("%s: a secret in the answer: %s", tc.name, body)
			}
		}
	}
	// The secret kept by "put back redacted" still works.
	if r, _ := e.query(fmt.Sprintf(vipLookup, "+449999", 2000), 3*time.Second); r.Error != nil {
		t.Fatalf("after PUT with the redacted secret: %+v", r.Error)
	}
	_, body, h := e.http("GET", "/v1/connectors/acme/sf", "")
	if status, b, _ := e.http("PUT", "/v1/connectors/acme/sf", e.sfConfig(`,"retries":0`), "If-Match", h.Get("ETag")); status != 200 {
		t.Fatalf("PUT with the current ETag: %d %s (GET %s)", status, b, body)
	}
	for _, l := range []string{e.logs.String()} {
		if strings.Contains(l, "sf-s3cret-value") || strings.Contains(l, "hdr-s3cret") {
			t.Fatal("a secret is in the logs")
		}
	}
}

// Configurations are shared: one instance's PUT is used by another.
func TestInstancesShareConfigurations(t *testing.T) {
	e := newEnv(t, nil)
	other := &env{t: t, logs: &syncBuffer{}, bucket: e.bucket}
	other.start(func(c *Config) { c.Instance = "other" })
	if status, body, _ := other.http("PUT", "/v1/connectors/acme/sf", e.sfConfig("")); status != 201 {
		t.Fatalf("PUT on the other instance: %d %s", status, body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, body, _ := e.http("GET", "/v1/connectors/acme/sf", "")
		if strings.Contains(body, `"status":`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first instance never installed the connector: %s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Stop the instance that was given the configuration; the other serves.
	other.stop()
	if r, _ := e.query(fmt.Sprintf(vipLookup, "+441234", 2000), 3*time.Second); r.Error != nil {
		t.Fatalf("%+v", r.Error)
	}
}

// Sealed secrets: nothing readable in the bucket, and a restart with the
// key reads them back.
func TestSealedSecretsSurviveARestart(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	sealed := func(c *Config) { c.ConfigKey = base64.StdEncoding.EncodeToString(key) }
	e := newEnv(t, sealed)
	if status, body, _ := e.http("PUT", "/v1/connectors/acme/sf", e.sfConfig("")); status != 201 {
		t.Fatalf("%d %s", status, body)
	}
	e.stop()
	js, _ := e.nc.JetStream()
	kv, _ := js.KeyValue(e.bucket)
	raw, err := kv.Get("acme.sf")
	if err != nil || bytes.Contains(raw.Value(), []byte("sf-s3cret-value")) || !bytes.Contains(raw.Value(), []byte(`"sealed"`)) {
		t.Fatalf("stored: %s %v", raw.Value(), err)
	}
	e.start(sealed)
	if r, _ := e.query(fmt.Sprintf(vipLookup, "+441234", 2000), 3*time.Second); r.Error != nil {
		t.Fatalf("after a restart: %+v", r.Error)
	}
}

// SIGTERM: requests in progress are answered; then nothing is served.
func TestGracefulShutdown(t *testing.T) {
	e := newEnv(t, nil)
	e.http("PUT", "/v1/connectors/acme/sf", e.sfConfig(""))
	e.query(fmt.Sprintf(vipLookup, "+449999", 2000), 3*time.Second) // token in hand
	e.sf.SetLatency(300 * time.Millisecond)
	got := make(chan reply, 1)
	go func() {
		r, _ := e.query(fmt.Sprintf(vipLookup, "+441234", 3000), 5*time.Second)
		got <- r
	}()
	deadline := time.Now().Add(5 * time.Second)
	for e.sf.Hits() < 3 && time.Now().Before(deadline) { // the request reached Salesforce
		time.Sleep(5 * time.Millisecond)
	}
	stopped := make(chan struct{})
	go func() { e.stop(); close(stopped) }()
	if r := <-got; r.Error != nil {
		t.Fatalf("the request in progress at shutdown: %+v", r.Error)
	}
	<-stopped
	if _, err := e.nc.Request("connector.query", []byte(fmt.Sprintf(vipLookup, "+441234", 100)), 300*time.Millisecond); err == nil {
		t.Fatal("a stopped proxy still answers")
	}
	if !strings.Contains(e.logs.String(), "connector-proxy stopped") {
		t.Fatal("no shutdown log")
	}
}

func TestOverloadedAndOversized(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxPending = 1; c.MaxRequestBytes = 1024 })
	e.http("PUT", "/v1/connectors/acme/sf", e.sfConfig(""))
	e.sf.SetLatency(400 * time.Millisecond)
	go e.nc.Request("connector.query", []byte(fmt.Sprintf(vipLookup, "+441234", 2000)), 3*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for e.sf.TokenRequests() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if r, took := e.query(fmt.Sprintf(vipLookup, "+449999", 2000), 3*time.Second); r.Error == nil || r.Error.Code != "overloaded" || took > 300*time.Millisecond {
		t.Fatalf("second request with --max-pending 1: %+v after %v", r.Error, took)
	}
	big := fmt.Sprintf(vipLookup, strings.Repeat("9", 2000), 2000)
	if r, _ := e.query(big, 3*time.Second); r.Error == nil || r.Error.Code != "invalid_request" || r.Error.Field != "body" {
		t.Fatalf("oversized request: %+v", r.Error)
	}
}

// A Salesforce connector can hold no secret at all: --core-api-url gives
// them, by the org's data connector.
func TestCredentialsFromCoreAPI(t *testing.T) {
	core := corefake.New("core-tok")
	srv := httptest.NewServer(core)
	defer srv.Close()
	e := newEnv(t, func(c *Config) { c.CoreAPIURL, c.CoreAPIToken = srv.URL+"/v1", "core-tok" })
	core.PutDataConnector("acme", "sf-main", map[string]any{"type": "salesforce", "auth": "client_credentials", "login_url": e.sfURL, "client_id": "cid", "client_secret": "sf-s3cret-value"})
	if status, body, _ := e.http("PUT", "/v1/connectors/acme/sf", `{"type":"salesforce","salesforce":{"credentials_id":"sf-main"}}`); status != 201 {
		t.Fatalf("%d %s", status, body)
	}
	if r, _ := e.query(fmt.Sprintf(vipLookup, "+441234", 2000), 3*time.Second); r.Error != nil {
		t.Fatalf("%+v", r.Error)
	}
	without := newEnv(t, nil)
	if status, body, _ := without.http("PUT", "/v1/connectors/acme/sf", `{"type":"salesforce","salesforce":{"credentials_id":"sf-main"}}`); status != 400 || !strings.Contains(body, "--core-api-url") {
		t.Fatalf("without core-api: %d %s", status, body)
	}
}

// An update through one instance drops the other instances' cached reads
// of that object (connector.invalidate); reads of other objects stay.
func TestAWriteReachesEveryInstancesCache(t *testing.T) {
	e := newEnv(t, nil)
	e.sf.Data.Put("Contact", soql.Record{"Id": "003000000000001AAA", "LastName": "Ng"})
	other := &env{t: t, logs: &syncBuffer{}, bucket: e.bucket}
	other.start(func(c *Config) { c.Instance = "other" })
	if status, body, _ := e.http("PUT", "/v1/connectors/acme/sf", e.sfConfig(`,"cache_ttl_seconds":600`)); status != 201 {
		t.Fatalf("PUT: %d %s", status, body)
	}
	getAccount := `{"org":"acme","connector":"sf","op":"get","object":"Account","id":"001000000000001AAA","fields":["Tier__c"]}`
	getContact := `{"org":"acme","connector":"sf","op":"get","object":"Contact","id":"003000000000001AAA","fields":["LastName"]}`
	ask := func(on *env, body string) reply {
		t.Helper()
		status, b, _ := on.http("POST", "/v1/query", body)
		var r reply
		if err := json.Unmarshal([]byte(b), &r); err != nil || status != 200 {
			t.Fatalf("POST /v1/query %s: %d %s", body, status, b)
		}
		return r
	}
	// The first instance caches both (the connector reaches it through
	// the shared bucket).
	deadline := time.Now().Add(5 * time.Second)
	for {
		if status, _, _ := e.http("POST", "/v1/query", getAccount); status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the connector never reached the first instance")
		}
		time.Sleep(20 * time.Millisecond)
	}
	ask(e, getContact)
	if r := ask(e, getAccount); r.Source != "cache" {
		t.Fatalf("second read from %s, want cache", r.Source)
	}
	// The update goes through the other instance.
	if r := ask(other, `{"org":"acme","connector":"sf","op":"update","object":"Account","id":"001000000000001AAA","values":{"Tier__c":"Platinum"}}`); r.Error != nil {
		t.Fatalf("update: %+v", r.Error)
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		r := ask(e, getAccount)
		if r.Source == "upstream" && strings.Contains(string(r.Result), "Platinum") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first instance still answers %s from %s", r.Result, r.Source)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r := ask(e, getContact); r.Source != "cache" {
		t.Fatalf("the contact was dropped too (%s)", r.Source)
	}
	_, metrics, _ := e.http("GET", "/metrics", "")
	if !strings.Contains(metrics, "switchyard_cp_cache_invalidated_total 1") {
		t.Fatal("switchyard_cp_cache_invalidated_total is not 1 on the first instance")
	}
}
