package domain

import "time"

// Mark is one field of a request's idempotency record: a claim ("this
// instance is pushing to this device, until its lease ends") or the
// outcome.
type Mark struct {
	State   string    `json:"state"` // claimed, done
	Owner   string    `json:"owner,omitempty"`
	Until   time.Time `json:"until,omitzero"`
	Outcome *Outcome  `json:"outcome,omitempty"`
	// Raw is the stored form, which compare-and-set matches.
	Raw string `json:"-"`
}

// Mark states.
const (
	Claimed = "claimed"
	Done    = "done"
)

// RequestField is the record's field for outcomes of the whole request.
const RequestField = "_request"

// Started is a fresh request taken in at once: the user's devices, and
// the claims written for them (device id → claim) — normally one for each.
type Started struct {
	Devices []Device
	Claims  map[string]Mark
}
