// Package domain holds the connector-proxy's rules without I/O: what a
// request is and how it is validated, connector configurations and their
// secrets, the error codes callers branch on and the outcome each maps to,
// and how caller-supplied parameters are bound into a query or template for
// each kind of upstream (SOQL literals, URL escaping, JSON).
package domain

import (
	"errors"
	"fmt"
	"net/http"
)

// Error codes of the wire contract (docs/events.md, "connector.query").
const (
	CodeInvalidRequest   = "invalid_request"   // the request failed validation; Field names the culprit
	CodeUnknownConnector = "unknown_connector" // no such connector for the org
	CodeUnsupportedOp    = "unsupported_op"    // the connector does not do this op
	CodeMalformedQuery   = "malformed_query"   // the upstream refused the query (MALFORMED_QUERY, INVALID_FIELD, INVALID_TYPE)
	CodeNotFound         = "not_found"         // the record or resource does not exist
	CodeTimeout          = "timeout"           // no answer within the request's deadline
	CodeBreakerOpen      = "breaker_open"      // the org's connector failed repeatedly; not called for a while
	CodeBulkheadFull     = "bulkhead_full"     // the org has its maximum of upstream calls in flight
	CodeOverloaded       = "overloaded"        // this instance serves its maximum of requests
	CodeRateLimited      = "rate_limited"      // the upstream's request limit (REQUEST_LIMIT_EXCEEDED, 429)
	CodeAuthFailed       = "auth_failed"       // the upstream refused the connector's credentials
	CodeUpstreamError    = "upstream_error"    // any other upstream failure (5xx, network, unreadable answer)
	CodeResultTooLarge   = "result_too_large"  // the answer exceeds the result limit
	CodeUnavailable      = "unavailable"       // the proxy is shutting down
)

// Outcomes: the metric label of every answer.
const (
	OutcomeOK            = "ok"
	OutcomeCached        = "cached"
	OutcomeStale         = "stale"
	OutcomeTimeout       = "timeout"
	OutcomeBreakerOpen   = "breaker_open"
	OutcomeBulkheadFull  = "bulkhead_full"
	OutcomeUpstreamError = "upstream_error"
	OutcomeInvalid       = "invalid"
	OutcomeNotFound      = "not_found"
	OutcomeUnavailable   = "unavailable"
)

// Outcomes lists every outcome label.
var Outcomes = []string{OutcomeOK, OutcomeCached, OutcomeStale, OutcomeTimeout, OutcomeBreakerOpen,
	OutcomeBulkheadFull, OutcomeUpstreamError, OutcomeInvalid, OutcomeNotFound, OutcomeUnavailable}

// Error is a refused or failed request as callers see it.
type Error struct {
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Field   string            `json:"field,omitempty"`
	Details map[string]string `json:"details,omitempty"` // upstream_code, upstream_status, upstream_message
	// Retryable marks a transient upstream failure a read may retry.
	Retryable bool `json:"-"`
}

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Code + " (" + e.Field + "): " + e.Message
	}
	return e.Code + ": " + e.Message
}

// Errorf builds an *Error.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid is an invalid_request naming the field.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalidRequest, Field: field, Message: fmt.Sprintf(format, args...)}
}

// Upstream is an upstream failure with the upstream's own code and status.
func Upstream(code string, status int, upstreamCode, format string, args ...any) *Error {
	e := &Error{Code: code, Message: fmt.Sprintf(format, args...), Details: map[string]string{}}
	if upstreamCode != "" {
		e.Details["upstream_code"] = upstreamCode
	}
	if status != 0 {
		e.Details["upstream_status"] = fmt.Sprint(status)
	}
	return e
}

// AsError returns err as an *Error, or an upstream_error wrapping it.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeUpstreamError, Message: err.Error(), Retryable: true}
}

// Outcome is the metric label of an error code.
func Outcome(code string) string {
	switch code {
	case CodeInvalidRequest, CodeUnknownConnector, CodeUnsupportedOp, CodeMalformedQuery:
		return OutcomeInvalid
	case CodeNotFound:
		return OutcomeNotFound
	case CodeTimeout:
		return OutcomeTimeout
	case CodeBreakerOpen:
		return OutcomeBreakerOpen
	case CodeBulkheadFull, CodeOverloaded:
		return OutcomeBulkheadFull
	case CodeUnavailable:
		return OutcomeUnavailable
	}
	return OutcomeUpstreamError
}

// ServeStale reports whether a failure with this code may be answered from
// a cached result past its TTL: the upstream's trouble, not the caller's.
func ServeStale(code string) bool {
	switch Outcome(code) {
	case OutcomeTimeout, OutcomeBreakerOpen, OutcomeBulkheadFull, OutcomeUpstreamError:
		return true
	}
	return false
}

// TripsBreaker reports whether a failure with this code counts against
// the upstream's health. Refusals of a bad request, a missing record, an
// answer too large for the caller and the proxy's own limits do not.
func TripsBreaker(code string) bool {
	switch code {
	case CodeUpstreamError, CodeRateLimited, CodeAuthFailed, CodeTimeout:
		return true
	}
	return false
}

// HTTPStatus is the admin REST status of an error code.
func HTTPStatus(code string) int {
	switch code {
	case CodeInvalidRequest, CodeUnsupportedOp, CodeMalformedQuery:
		return http.StatusBadRequest
	case CodeUnknownConnector, CodeNotFound:
		return http.StatusNotFound
	case CodeTimeout:
		return http.StatusGatewayTimeout
	case CodeBreakerOpen, CodeBulkheadFull, CodeOverloaded, CodeUnavailable:
		return http.StatusServiceUnavailable
	case CodeRateLimited:
		return http.StatusTooManyRequests
	}
	return http.StatusBadGateway
}
