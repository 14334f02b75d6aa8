package domain

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
)

// APNsPayload is the JSON body of the push to an Apple device: the aps
// dictionary (empty for voip: PushKit wakes the app, which reports the
// call to CallKit; an alert for alert pushes) and Switchyard's keys at
// the top level, where the app reads them.
func APNsPayload(r Request) []byte {
	type alert struct {
		Title string `json:"title,omitempty"`
		Body  string `json:"body,omitempty"`
	}
	type aps struct {
		Alert *alert `json:"alert,omitempty"`
		Sound string `json:"sound,omitempty"`
	}
	p := struct {
		APS       aps             `json:"aps"`
		RequestID string          `json:"request_id"`
		Type      string          `json:"type"`
		User      string          `json:"user"`
		CallID    string          `json:"call_id,omitempty"`
		Data      json.RawMessage `json:"data,omitempty"`
	}{RequestID: r.ID, Type: r.Type, User: r.User, CallID: r.CallID, Data: r.Data}
	if r.Type == Alert {
		p.APS = aps{Alert: &alert{Title: r.Title, Body: r.Body}, Sound: "default"}
	}
	b, _ := json.Marshal(p) // only strings and validated JSON
	return b
}

// FCMData is the data map of the message to an Android device: FCM data
// values are strings, so the request's data travels as a JSON string.
func FCMData(r Request) map[string]string {
	m := map[string]string{"request_id": r.ID, "type": r.Type, "user": r.User}
	if r.CallID != "" {
		m["call_id"] = r.CallID
	}
	if len(r.Data) > 0 {
		m["data"] = string(r.Data)
	}
	return m
}

// MessageID is the apns-id of a request's push to one device: a UUID
// derived from both, so every attempt and every redelivery of the same
// push carries the same id (APNs' logs and the app can match them).
func MessageID(requestID, deviceID string) string {
	sum := sha256.Sum256([]byte(requestID + "\x00" + deviceID))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x50 // version 5-like: name-based
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
