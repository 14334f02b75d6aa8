package domain

import "time"

// Outcome is what became of a request's push to one device, or of the
// whole request (Device "" : no_devices, rate_limited, expired). It is
// kept in the idempotency ledger and becomes the push.sent / push.failed
// / push.token.removed events, so a redelivery republishes the same ones.
type Outcome struct {
	Result         string    `json:"result"` // sent, failed
	Reason         string    `json:"reason,omitempty"`
	Detail         string    `json:"detail,omitempty"`
	Status         int       `json:"status,omitempty"`
	ProviderID     string    `json:"provider_id,omitempty"` // apns-id, FCM message name
	LatencyMS      float64   `json:"latency_ms,omitempty"`
	SinceRequestMS float64   `json:"since_request_ms,omitempty"`
	Attempts       int       `json:"attempts,omitempty"`
	TokenRemoved   bool      `json:"token_removed,omitempty"`
	UnregisteredAt time.Time `json:"unregistered_at,omitzero"`
	DeviceID       string    `json:"device_id,omitempty"`
	Platform       string    `json:"platform,omitempty"`
	Environment    string    `json:"environment,omitempty"`
	At             time.Time `json:"at"`
}

// Reasons of failures that are ours, not a provider's (those pass
// APNs' reason or FCM's errorCode through).
const (
	ReasonNoDevices     = "no_devices"
	ReasonRateLimited   = "rate_limited"
	ReasonExpired       = "expired"
	ReasonInDoubt       = "in_doubt"
	ReasonInvalid       = "invalid_request"
	ReasonNoProvider    = "no_provider"
	ReasonMaxDeliveries = "max_deliveries"
	ReasonUndeliverable = "undeliverable"
	ResultSent          = "sent"
	ResultFailed        = "failed"
)

// SentData is push.sent's data.
type SentData struct {
	RequestID      string  `json:"request_id"`
	User           string  `json:"user"`
	CallID         string  `json:"call_id,omitempty"`
	Type           string  `json:"type"`
	DeviceID       string  `json:"device_id"`
	Platform       string  `json:"platform"`
	Environment    string  `json:"environment"`
	APNsID         string  `json:"apns_id,omitempty"`
	FCMMessage     string  `json:"fcm_message,omitempty"`
	LatencyMS      float64 `json:"latency_ms"`
	SinceRequestMS float64 `json:"since_request_ms"`
	Attempts       int     `json:"attempts"`
}

// FailedData is push.failed's data.
type FailedData struct {
	RequestID   string `json:"request_id"`
	User        string `json:"user"`
	CallID      string `json:"call_id,omitempty"`
	Type        string `json:"type,omitempty"`
	DeviceID    string `json:"device_id,omitempty"`
	Platform    string `json:"platform,omitempty"`
	Environment string `json:"environment,omitempty"`
	Reason      string `json:"reason"`
	Detail      string `json:"detail,omitempty"`
	Status      int    `json:"status,omitempty"`
	Attempts    int    `json:"attempts,omitempty"`
}

// TokenRemovedData is push.token.removed's data.
type TokenRemovedData struct {
	User           string    `json:"user"`
	DeviceID       string    `json:"device_id"`
	Platform       string    `json:"platform"`
	Environment    string    `json:"environment"`
	Reason         string    `json:"reason"`
	RequestID      string    `json:"request_id"`
	UnregisteredAt time.Time `json:"unregistered_at,omitzero"`
}

// DeadLetterData is push.deadlettered's data: the request that could not
// be delivered, why, and what each device answered.
type DeadLetterData struct {
	RequestID string            `json:"request_id,omitempty"`
	User      string            `json:"user,omitempty"`
	CallID    string            `json:"call_id,omitempty"`
	Reason    string            `json:"reason"`
	Detail    string            `json:"detail,omitempty"`
	Devices   map[string]string `json:"devices,omitempty"` // device id → reason
	Request   []byte            `json:"request,omitempty"` // the push.requested event as received (base64)
}
