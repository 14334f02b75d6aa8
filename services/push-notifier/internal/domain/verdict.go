package domain

import (
	"math/rand/v2"
	"time"
)

// Verdict is what a provider's answer means for the push.
type Verdict int

const (
	// Delivered: the provider accepted the push.
	Delivered Verdict = iota
	// Retry: not accepted for now (429, 5xx, or a connection that never
	// carried the request); try again with backoff within the expiry.
	Retry
	// RefreshAuth: our provider credentials are stale; renew them and
	// try again once.
	RefreshAuth
	// TokenDead: the token will never work again (410 Unregistered, 400
	// BadDeviceToken, FCM UNREGISTERED); forget it.
	TokenDead
	// Rejected: permanent for this push (bad topic, payload, …).
	Rejected
	// InDoubt: the request may have reached the provider but no answer
	// came (timeout, connection lost mid-request); not retried, because
	// a retry could deliver the push twice.
	InDoubt
)

func (v Verdict) String() string {
	switch v {
	case Delivered:
		return "delivered"
	case Retry:
		return "retry"
	case RefreshAuth:
		return "refresh_auth"
	case TokenDead:
		return "token_dead"
	case Rejected:
		return "rejected"
	case InDoubt:
		return "in_doubt"
	}
	return "unknown"
}

// JudgeAPNs reads an APNs answer.
func JudgeAPNs(status int, reason string) Verdict {
	switch {
	case status == 200:
		return Delivered
	case status == 410, status == 400 && reason == "BadDeviceToken":
		return TokenDead
	case status == 403 && reason == "ExpiredProviderToken":
		return RefreshAuth
	case status == 429, status >= 500:
		return Retry
	}
	return Rejected
}

// JudgeFCM reads an FCM v1 answer; code is the FcmError errorCode, or the
// Google status when there is none.
func JudgeFCM(status int, code string) Verdict {
	switch {
	case status == 200:
		return Delivered
	case code == "UNREGISTERED", status == 404:
		return TokenDead
	case status == 401:
		return RefreshAuth
	case status == 429, status >= 500:
		return Retry
	}
	return Rejected
}

// Backoff is the wait before attempt n+1 (n ≥ 1): exponential from 50 ms,
// capped at 2 s, with jitter, never below a provider's Retry-After.
func Backoff(n int, retryAfter time.Duration) time.Duration {
	d := 50 * time.Millisecond << min(n-1, 6)
	d = min(d, 2*time.Second)
	d = d/2 + rand.N(d/2+1)
	return max(d, retryAfter)
}
