// Package crmfake holds the upstream servers the connector-proxy talks to,
// as fakes that speak the real wire formats so that the proxy's clients are
// tested against the bytes production sends them:
//
//   - salesforce: the OAuth 2.0 token endpoint (client-credentials and JWT
//     bearer grants) and the REST API (SOQL query with nextRecordsUrl
//     pagination, sObject get and update, Salesforce's error bodies);
//   - servicegateway: the SOAP service-gateway legacy orgs go through
//     (partner-API envelopes for query, queryMore, retrieve and update, SOAP
//     faults);
//   - coreapi: core-api's group data and data-connector credentials by org,
//     and policy scripts;
//   - soql: the in-memory records and the SOQL subset the Salesforce fakes
//     evaluate (string literals with their real escapes, AND/OR/NOT, LIKE, IN),
//     so that a query that was tampered with really returns other rows.
//
// Every fake has Switches: latency, an outage, failing the next requests,
// a request limit; the Salesforce fakes also expire their tokens on demand.
// Each fake is an http.Handler; tests serve it with httptest.NewServer, e2e
// from a devstack process.
package crmfake

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// Fault is what Switches decided for one request.
type Fault int

// Faults, in the order Switches checks them.
const (
	None        Fault = iota
	Down              // the upstream is unavailable (503)
	Failing           // one of the next requests that fail (500)
	RateLimited       // the request limit is used up
	Gone              // the request's context ended during the latency
)

// Switches are the failure switches every fake has. The zero value is a
// healthy upstream. Methods are safe for concurrent use.
type Switches struct {
	mu       sync.Mutex
	latency  time.Duration
	down     bool
	failNext int
	limit    int // 0: no limit
	used     int
	hits     int
}

// SetLatency delays every request by d (0: none).
func (s *Switches) SetLatency(d time.Duration) {
	s.mu.Lock()
	s.latency = d
	s.mu.Unlock()
}

// SetDown makes every request fail as an outage would (true) or serves
// again (false).
func (s *Switches) SetDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

// FailNext makes the next n requests fail with a server error.
func (s *Switches) FailNext(n int) {
	s.mu.Lock()
	s.failNext = n
	s.mu.Unlock()
}

// SetRequestLimit allows n more requests, after which every request is
// refused as over the limit until it is set again; 0 removes the limit.
func (s *Switches) SetRequestLimit(n int) {
	s.mu.Lock()
	s.limit, s.used = n, 0
	s.mu.Unlock()
}

// Hits is how many requests reached the fake (faulted ones included).
func (s *Switches) Hits() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits
}

// Apply waits the latency (or until the request is abandoned) and says
// which fault, if any, the request meets; a request that passes counts
// against the request limit.
func (s *Switches) Apply(r *http.Request) Fault {
	return s.apply(r.Context(), true)
}

// ApplyUncounted is Apply for requests outside the API's limits (a token
// request): latency and outage only.
func (s *Switches) ApplyUncounted(r *http.Request) Fault {
	return s.apply(r.Context(), false)
}

func (s *Switches) apply(ctx context.Context, counted bool) Fault {
	s.mu.Lock()
	s.hits++
	d := s.latency
	s.mu.Unlock()
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return Gone
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.down:
		return Down
	case !counted:
		return None
	case s.failNext > 0:
		s.failNext--
		return Failing
	case s.limit > 0 && s.used >= s.limit:
		return RateLimited
	}
	s.used++
	return None
}
