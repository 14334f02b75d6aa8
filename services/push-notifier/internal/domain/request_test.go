package domain

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/events"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func event(t testing.TB, typ string, data any) []byte {
	t.Helper()
	e, err := events.New("ev-1", "switchyard/test/1", typ, "", "", data)
	if err != nil {
		t.Fatal(err)
	}
	e.Time = t0
	b, _ := e.Marshal()
	return b
}

func TestDecodeRequest(t *testing.T) {
	exp := t0.Add(time.Minute)
	tests := []struct {
		name    string
		subject string
		typ     string
		data    any
		field   string // "" = valid
		check   func(t *testing.T, r Request)
	}{
		{name: "minimal voip, defaults", subject: "push.alice.requested", data: map[string]any{"user": "alice"}, check: func(t *testing.T, r Request) {
			if r.ID != "ev-1" || r.Type != VoIP || r.Priority != 10 || !r.ExpiresAt.Equal(t0.Add(30*time.Second)) {
				t.Errorf("%+v", r)
			}
		}},
		{name: "alert with ttl and data", subject: "push.bob.requested", data: map[string]any{"user": "bob", "type": "alert", "title": "Missed call", "ttl_seconds": 600, "data": map[string]any{"k": "v"}, "request_id": "r-1", "call_id": "ecfdcace-7879-4df8-8ff8-78cb02e4a8c8"},
			check: func(t *testing.T, r Request) {
				if r.ID != "r-1" || !r.ExpiresAt.Equal(t0.Add(10*time.Minute)) || string(r.Data) != `{"k":"v"}` || r.CallID == "" {
					t.Errorf("%+v", r)
				}
			}},
		{name: "expires_at", data: map[string]any{"user": "u", "expires_at": exp}, check: func(t *testing.T, r Request) {
			if !r.ExpiresAt.Equal(exp) {
				t.Errorf("expires %v", r.ExpiresAt)
			}
		}},
		{name: "not a push.requested", typ: "push.sent", data: map[string]any{"user": "u"}, field: "type"},
		{name: "no user", data: map[string]any{}, field: "user"},
		{name: "user with a dot", data: map[string]any{"user": "a.b"}, field: "user"},
		{name: "subject of another user", subject: "push.mallory.requested", data: map[string]any{"user": "alice"}, field: "user"},
		{name: "unknown type", data: map[string]any{"user": "u", "type": "sms"}, field: "type"},
		{name: "bad priority", data: map[string]any{"user": "u", "priority": 7}, field: "priority"},
		{name: "both expiries", data: map[string]any{"user": "u", "ttl_seconds": 5, "expires_at": exp}, field: "ttl_seconds"},
		{name: "ttl too long", data: map[string]any{"user": "u", "ttl_seconds": 86401}, field: "ttl_seconds"},
		{name: "negative ttl", data: map[string]any{"user": "u", "ttl_seconds": -1}, field: "ttl_seconds"},
		{name: "long collapse id", data: map[string]any{"user": "u", "collapse_id": strings.Repeat("c", 65)}, field: "collapse_id"},
		{name: "alert without text", data: map[string]any{"user": "u", "type": "alert"}, field: "body"},
		{name: "data not an object", data: map[string]any{"user": "u", "data": []int{1}}, field: "data"},
		{name: "data too large", data: map[string]any{"user": "u", "data": map[string]string{"x": strings.Repeat("x", MaxDataBytes)}}, field: "data"},
		{name: "bad call id", data: map[string]any{"user": "u", "call_id": "a b"}, field: "call_id"},
		{name: "bad request id", data: map[string]any{"user": "u", "request_id": "a/b"}, field: "request_id"},
		{name: "data is a string", data: "hello", field: "data"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			typ := tc.typ
			if typ == "" {
				typ = TypeRequested
			}
			r, err := DecodeRequest(tc.subject, event(t, typ, tc.data), t0, Defaults{})
			var fe *FieldError
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
				t.Fatalf("error %v, want one about %s", err, tc.field)
			case tc.check != nil:
				tc.check(t, r)
			}
		})
	}
	if _, err := DecodeRequest("", []byte("{"), t0, Defaults{}); err == nil {
		t.Error("broken JSON accepted")
	}
}

func TestVerdicts(t *testing.T) {
	for _, tc := range []struct {
		status int
		reason string
		fcm    bool
		want   Verdict
	}{
		{200, "", false, Delivered},
		{410, "Unregistered", false, TokenDead},
		{400, "BadDeviceToken", false, TokenDead},
		{400, "DeviceTokenNotForTopic", false, Rejected},
		{403, "ExpiredProviderToken", false, RefreshAuth},
		{403, "InvalidProviderToken", false, Rejected},
		{429, "TooManyRequests", false, Retry},
		{500, "InternalServerError", false, Retry},
		{503, "ServiceUnavailable", false, Retry},
		{413, "PayloadTooLarge", false, Rejected},
		{200, "", true, Delivered},
		{404, "UNREGISTERED", true, TokenDead},
		{400, "INVALID_ARGUMENT", true, Rejected},
		{401, "UNAUTHENTICATED", true, RefreshAuth},
		{429, "QUOTA_EXCEEDED", true, Retry},
		{503, "UNAVAILABLE", true, Retry},
		{403, "SENDER_ID_MISMATCH", true, Rejected},
	} {
		judge := JudgeAPNs
		if tc.fcm {
			judge = JudgeFCM
		}
		if got := judge(tc.status, tc.reason); got != tc.want {
			t.Errorf("%d %s (fcm %v): %v, want %v", tc.status, tc.reason, tc.fcm, got, tc.want)
		}
	}
	for n := 1; n < 20; n++ {
		if d := Backoff(n, 0); d <= 0 || d > 2*time.Second {
			t.Errorf("backoff %d = %v", n, d)
		}
	}
	if d := Backoff(1, 3*time.Second); d != 3*time.Second {
		t.Errorf("retry-after ignored: %v", d)
	}
}

func TestDeviceValidation(t *testing.T) {
	hex64 := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		d     Device
		field string
	}{
		{Device{Token: hex64, Platform: IOS, Bundle: "com.example.phone"}, ""},
		{Device{Token: hex64, Platform: IOS, Bundle: "com.example.phone", Environment: Sandbox}, ""},
		{Device{Token: "fcm-token:APA91bHabcdefghijk", Platform: Android}, ""},
		{Device{Token: hex64, Platform: IOS}, "bundle"},
		{Device{Token: "xyz", Platform: IOS, Bundle: "com.example.phone"}, "token"},
		{Device{Token: hex64 + "a", Platform: IOS, Bundle: "com.example.phone"}, "token"},
		{Device{Token: hex64, Platform: "windows"}, "platform"},
		{Device{Token: hex64, Platform: IOS, Bundle: "nodots"}, "bundle"},
		{Device{Token: "fcm-token:APA91bHabcdefghijk", Platform: Android, Environment: Sandbox}, "environment"},
		{Device{Token: hex64, Platform: IOS, Bundle: "com.example.phone", Environment: "staging"}, "environment"},
	} {
		err := tc.d.Validate()
		var fe *FieldError
		if (tc.field == "") != (err == nil) || (err != nil && (!errors.As(err, &fe) || fe.Field != tc.field)) {
			t.Errorf("%+v: %v, want field %q", tc.d, err, tc.field)
		}
	}
}

func TestAPNsPayload(t *testing.T) {
	r := Request{ID: "r1", User: "u", Type: VoIP, CallID: "c1", Data: json.RawMessage(`{"from":"+44"}`)}
	if got := string(APNsPayload(r)); got != `{"aps":{},"request_id":"r1","type":"voip","user":"u","call_id":"c1","data":{"from":"+44"}}` {
		t.Errorf("voip payload %s", got)
	}
	r.Type, r.Title = Alert, "Hi"
	if got := string(APNsPayload(r)); !strings.HasPrefix(got, `{"aps":{"alert":{"title":"Hi"},"sound":"default"}`) {
		t.Errorf("alert payload %s", got)
	}
	if a, b := MessageID("r1", "d1"), MessageID("r1", "d1"); a != b || len(a) != 36 || a == MessageID("r1", "d2") {
		t.Errorf("message ids %s %s", a, b)
	}
}

// FuzzDecodeRequest: any bytes on push.*.requested decode or fail with a
// FieldError, never panic; what decodes obeys the limits and survives a
// round trip through its wire form.
func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(event(f, TypeRequested, map[string]any{"user": "alice", "type": "voip", "call_id": "abc-1", "data": map[string]any{"x": 1}})))
	f.Add([]byte(event(f, TypeRequested, map[string]any{"user": "bob", "type": "alert", "body": "b", "ttl_seconds": 60, "priority": 5, "collapse_id": "c"})))
	f.Add([]byte(`{"specversion":"1.0","id":"x","source":"s","type":"push.requested","data":{"user":"u","expires_at":"2026-03-01T12:00:00Z"}}`))
	f.Add([]byte(`{"specversion":"1.0","id":"x","source":"s","type":"push.requested","data":null}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRequest("", b, t0, Defaults{})
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error is not a FieldError: %v", err)
			}
			return
		}
		if ValidUser("user", r.User) != nil || (r.Type != VoIP && r.Type != Alert) || len(r.CollapseID) > MaxCollapseID || len(r.Data) > MaxDataBytes {
			t.Fatalf("decoded an invalid request %+v", r)
		}
		if r.Priority != 1 && r.Priority != 5 && r.Priority != 10 {
			t.Fatalf("priority %d", r.Priority)
		}
		if len(APNsPayload(r)) > r.MaxPayload() {
			t.Fatalf("payload over the limit")
		}
		again, err := r.Wire().Validate(r.EventID, r.RequestedAt, Defaults{})
		if err != nil {
			t.Fatalf("wire form of %+v does not validate: %v", r, err)
		}
		if again.ID != r.ID || again.User != r.User || !again.ExpiresAt.Equal(r.ExpiresAt) || string(again.Data) != string(r.Data) {
			t.Fatalf("round trip changed %+v into %+v", r, again)
		}
	})
}
