package domain

import "time"

// Push is one request to one device, as handed to a provider.
type Push struct {
	Request   Request
	Device    Device
	MessageID string // apns-id (see MessageID)
}

// Answer is what a provider made of one attempt.
type Answer struct {
	Verdict        Verdict
	Status         int    // HTTP status, 0 when no answer came
	Reason         string // APNs reason, FCM errorCode, or the transport error
	ProviderID     string // apns-id / FCM message name on success
	UnregisteredAt time.Time
	RetryAfter     time.Duration
	Latency        time.Duration
}
