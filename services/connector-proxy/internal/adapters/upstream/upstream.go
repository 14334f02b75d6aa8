// Package upstream is what every HTTP connector shares: a client tuned for
// many short calls to a few hosts, bounded response bodies, and transport
// failures turned into the wire contract's errors (timeout when the
// request's deadline ended, a retryable upstream_error otherwise).
package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/domain"
)

// DefaultMaxBytes bounds a response body when a connector is given no
// bound (the service passes --max-result-bytes).
const DefaultMaxBytes = 4 << 20

// NewClient is the HTTP client connectors share. Requests are bounded by
// their context (the caller's deadline); the client's own limits only
// catch what a context cannot (a dial that hangs without one).
func NewClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   5 * time.Second,
			MaxIdleConns:          512,
			MaxIdleConnsPerHost:   128,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
			ForceAttemptHTTP2:     true,
		},
		// A connector follows no redirects: a 3xx is an answer to report,
		// and following one could leave the configured host.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Response is an upstream's answer, body read.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends req and reads at most maxBytes of the answer; what is called
// names the upstream in messages ("salesforce", "core-api").
func Do(ctx context.Context, c *http.Client, req *http.Request, maxBytes int64, what string) (*Response, *domain.Error) {
	resp, err := c.Do(req.WithContext(ctx))
	if err != nil {
		return nil, TransportError(ctx, what, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBytes+1))
	if err != nil {
		return nil, TransportError(ctx, what, err)
	}
	if int64(len(body)) > maxBytes {
		return nil, domain.Errorf(domain.CodeResultTooLarge, "%s answered more than %d bytes", what, maxBytes)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// TransportError classifies a failure to get an answer.
func TransportError(ctx context.Context, what string, err error) *domain.Error {
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return domain.Errorf(domain.CodeTimeout, "%s did not answer within the request's deadline", what)
	}
	e := domain.Errorf(domain.CodeUpstreamError, "%s unreachable: %v", what, unwrapURL(err))
	e.Retryable = true
	return e
}

// unwrapURL drops the *url.Error wrapper, whose text repeats the URL (and
// with it, for some connectors, the query).
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// StatusError is the generic mapping of an unsuccessful HTTP status.
func StatusError(what string, status int, upstreamCode, msg string) *domain.Error {
	code := domain.CodeUpstreamError
	switch {
	case status == http.StatusNotFound:
		code = domain.CodeNotFound
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		code = domain.CodeAuthFailed
	case status == http.StatusTooManyRequests:
		code = domain.CodeRateLimited
	}
	e := domain.Upstream(code, status, upstreamCode, "%s: %s", what, msg)
	e.Retryable = code == domain.CodeUpstreamError && (status >= 500 || status == http.StatusRequestTimeout)
	if e.Message == what+": " {
		e.Message = fmt.Sprintf("%s answered HTTP %d", what, status)
	}
	return e
}
