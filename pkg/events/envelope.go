// Package events is Switchyard's event envelope: CloudEvents 1.0 in JSON
// structured mode, with the FreeSWITCH call UUID as the `callid` extension.
// Every service publishes and consumes through it, so docs/events.md has one
// shape to describe.
package events

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// SpecVersion is the CloudEvents version we emit.
const SpecVersion = "1.0"

// Envelope is one event.
type Envelope struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	CallID          string          `json:"callid,omitempty"`
	Data            json.RawMessage `json:"data"`
}

// New builds an envelope around data (marshalled to JSON). id should be
// deterministic where a retry could publish the event twice (it is the
// Nats-Msg-Id JetStream de-duplicates on); "" draws a random one.
func New(id, source, typ, subject, callID string, data any) (*Envelope, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("event %s: marshal data: %w", typ, err)
	}
	if id == "" {
		id = NewID()
	}
	return &Envelope{
		SpecVersion: SpecVersion, ID: id, Source: source, Type: typ, Subject: subject,
		Time: time.Now().UTC(), DataContentType: "application/json", CallID: callID, Data: raw,
	}, nil
}

// NewID returns a random 128-bit id in hex.
func NewID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Marshal encodes the envelope; time is RFC 3339 with nanoseconds.
func (e *Envelope) Marshal() ([]byte, error) {
	type wire Envelope
	return json.Marshal(struct {
		*wire
		Time string `json:"time"`
	}{(*wire)(e), e.Time.UTC().Format(time.RFC3339Nano)})
}

// MaxSize bounds an envelope read from the network.
const MaxSize = 1 << 20

// Parse decodes and validates an envelope from the network.
func Parse(b []byte) (*Envelope, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("event of %d bytes exceeds %d", len(b), MaxSize)
	}
	var e Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("event is not a JSON CloudEvent: %w", err)
	}
	var problems []string
	if e.SpecVersion != SpecVersion {
		problems = append(problems, fmt.Sprintf("specversion %q, want %q", e.SpecVersion, SpecVersion))
	}
	if e.ID == "" {
		problems = append(problems, "id is empty")
	}
	if e.Source == "" {
		problems = append(problems, "source is empty")
	}
	if e.Type == "" {
		problems = append(problems, "type is empty")
	}
	if y := e.Time.UTC().Year(); y < 0 || y > 9999 {
		// RFC 3339 has four-digit years: an offset can carry a time
		// outside them, which could not be written out again.
		problems = append(problems, fmt.Sprintf("time %s is outside RFC 3339's years once in UTC", e.Time.Format(time.RFC3339)))
	}
	if len(problems) > 0 {
		return nil, errors.New("invalid event: " + strings.Join(problems, "; "))
	}
	return &e, nil
}

// DecodeData unmarshals the data into v.
func (e *Envelope) DecodeData(v any) error {
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("event %s data: %w", e.Type, err)
	}
	return nil
}
