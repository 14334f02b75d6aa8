package service

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchyard-voice/switchyard/pkg/apnsfake"
	"github.com/switchyard-voice/switchyard/pkg/fcmfake"

	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/adapters/apns"
	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/domain"
)

const callID = "ecfdcace-7879-4df8-8ff8-78cb02e4a8c8"

// A call offered to a mobile agent: one VoIP push, with APNs' headers
// right, to each of the agent's iOS devices in its own environment; the
// same request again — redelivered, republished, or after a restart —
// pushes nothing more.
func TestVoIPPushIsDeliveredExactlyOnceWithAPNsHeaders(t *testing.T) {
	w := newWorld(t, nil)
	prodTok, sandTok := apnsToken("alice-prod"), apnsToken("alice-sandbox")
	w.register("alice", prodTok, domain.IOS, domain.Production)
	w.register("alice", sandTok, domain.IOS, domain.Sandbox)
	exp := time.Now().Add(20 * time.Second).UTC().Truncate(time.Second)
	req := domain.RequestData{RequestID: "offer-" + callID + "-1", User: "alice", Type: "voip", CallID: callID,
		ExpiresAt: &exp, CollapseID: "call-" + callID[:8], Data: json.RawMessage(`{"caller":"+442071234567","queue":"sales"}`)}
	w.request(req)
	var sent domain.SentData
	w.waitEvent("alice", domain.TypeSent, &sent)
	waitFor(t, 10*time.Second, "two push.sent", func() bool { return len(w.events("alice", domain.TypeSent)) == 2 })

	for _, tc := range []struct {
		fake *apnsfake.Server
		tok  string
	}{{w.apns, prodTok}, {w.sandbox, sandTok}} {
		got := tc.fake.Requests()
		if len(got) != 1 {
			t.Fatalf("fake at %s got %d requests, want 1", tc.fake.URL(), len(got))
		}
		r := got[0]
		want := apnsfake.Request{Token: tc.tok, PushType: "voip", Topic: bundle + ".voip", Priority: "10",
			Expiration: strconv.FormatInt(exp.Unix(), 10), CollapseID: "call-" + callID[:8], ApnsID: domain.MessageID(req.RequestID, domain.DeviceID(tc.tok)),
			Auth: "token", KeyID: keyID, TeamID: teamID, Proto: "HTTP/2.0", Status: 200}
		r2 := r
		r2.Payload, r2.Received, r2.Reason, r2.AnsweredID = nil, time.Time{}, "", ""
		if r2.Token != want.Token || r2.PushType != want.PushType || r2.Topic != want.Topic || r2.Priority != want.Priority ||
			r2.Expiration != want.Expiration || r2.CollapseID != want.CollapseID || !strings.EqualFold(r2.ApnsID, want.ApnsID) ||
			r2.Auth != want.Auth || r2.KeyID != want.KeyID || r2.TeamID != want.TeamID || r2.Proto != want.Proto || r2.Status != want.Status {
			t.Errorf("APNs got\n%+v\nwant\n%+v", r2, want)
		}
		var payload map[string]any
		json.Unmarshal(r.Payload, &payload)
		if payload["call_id"] != callID || payload["request_id"] != req.RequestID || payload["type"] != "voip" || payload["aps"] == nil {
			t.Errorf("payload %s", r.Payload)
		}
	}
	if sent.RequestID != req.RequestID || sent.CallID != callID || sent.APNsID == "" || sent.Attempts != 1 || sent.LatencyMS <= 0 {
		t.Errorf("push.sent %+v", sent)
	}
	if e := w.events("alice", domain.TypeSent)[0]; e.CallID != callID || e.Subject != "push.alice.sent" {
		t.Errorf("push.sent envelope callid %q subject %q", e.CallID, e.Subject)
	}

	// The same request again (a retried publish with a new event id, as
	// after a publisher restart): nothing more is pushed.
	w.request(req)
	waitFor(t, 10*time.Second, "the duplicate handled", func() bool {
		return w.metric(`switchyard_push_requests_total{outcome="duplicate"}`) == 1
	})
	// And after a restart of the notifier.
	w.stop()
	w.start()
	w.request(req)
	waitFor(t, 10*time.Second, "the duplicate handled after a restart", func() bool {
		return w.metric(`switchyard_push_requests_total{outcome="duplicate"}`) == 1
	})
	if n, m := len(w.apns.Requests()), len(w.sandbox.Requests()); n != 1 || m != 1 {
		t.Fatalf("after duplicates APNs got %d and %d pushes, want 1 and 1", n, m)
	}
	if n := len(w.events("alice", domain.TypeSent)); n != 2 {
		t.Errorf("%d push.sent events stored, want 2 (one per device)", n)
	}
	if !strings.Contains(w.logs.String(), `"callid":"`+callID+`"`) {
		t.Error("the logs do not carry the call uuid")
	}
}

// A push whose claim was left by an instance that died between claiming
// and recording (the crash window) is not sent again: it fails in_doubt.
// A claim whose lease still runs is waited for.
func TestAClaimLeftByACrashedInstanceIsNotPushedAgain(t *testing.T) {
	w := newWorld(t, nil)
	tok := apnsToken("bob")
	w.register("bob", tok, domain.IOS, domain.Production)
	rdb := redis.NewClient(&redis.Options{Addr: infra.Redis.Addr()})
	defer rdb.Close()
	claim := func(reqID string, until time.Time) {
		b, _ := json.Marshal(domain.Mark{State: domain.Claimed, Owner: "dead-instance/1234", Until: until})
		if err := rdb.HSet(context.Background(), w.cfg.Prefix+"req:"+reqID, domain.DeviceID(tok), b).Err(); err != nil {
			t.Fatal(err)
		}
	}
	claim("crashed-1", time.Now().Add(-time.Second))
	w.request(domain.RequestData{RequestID: "crashed-1", User: "bob", CallID: callID})
	var failed domain.FailedData
	w.waitEvent("bob", domain.TypeFailed, &failed)
	if failed.Reason != domain.ReasonInDoubt || failed.DeviceID != domain.DeviceID(tok) {
		t.Errorf("push.failed %+v", failed)
	}
	w.waitEvent("bob", domain.TypeDeadLettered, nil)

	// A live claim (another instance is pushing): wait for its lease,
	// then judge it.
	claim("busy-1", time.Now().Add(1500*time.Millisecond))
	w.request(domain.RequestData{RequestID: "busy-1", User: "bob"})
	waitFor(t, 10*time.Second, "busy-1 settled", func() bool {
		for _, e := range w.events("bob", domain.TypeFailed) {
			var d domain.FailedData
			e.DecodeData(&d)
			if d.RequestID == "busy-1" && d.Reason == domain.ReasonInDoubt {
				return true
			}
		}
		return false
	})
	if n := len(w.apns.Requests()); n != 0 {
		t.Fatalf("APNs got %d pushes, want none", n)
	}
}

// Dead tokens are forgotten: 410 Unregistered (with APNs' timestamp) and
// 400 BadDeviceToken from APNs, UNREGISTERED from FCM.
func TestDeadTokensAreRemoved(t *testing.T) {
	w := newWorld(t, nil)
	unregAt := time.UnixMilli(1_767_225_600_000).UTC()
	for i, tc := range []struct {
		name     string
		platform string
		tok      string
		kill     func(tok string)
		reason   string
		status   int
	}{
		{"APNs 410 Unregistered", domain.IOS, apnsToken("carol-1"), func(tok string) { w.apns.Unregister(tok, unregAt) }, "Unregistered", 410},
		{"APNs 400 BadDeviceToken", domain.IOS, apnsToken("carol-2"), func(tok string) { w.apns.Script(tok, apnsfake.Reply(400, "BadDeviceToken")) }, "BadDeviceToken", 400},
		{"FCM 404 UNREGISTERED", domain.Android, "fcm-carol-3:APA91bHPRgkFLJu6Cc4c", func(tok string) { w.fcm.Unregister(tok) }, "UNREGISTERED", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user := "carol" + strconv.Itoa(i)
			w.register(user, tc.tok, tc.platform, domain.Production)
			tc.kill(tc.tok)
			w.request(domain.RequestData{User: user, CallID: callID})
			var removed domain.TokenRemovedData
			w.waitEvent(user, domain.TypeTokenRemoved, &removed)
			var failed domain.FailedData
			w.waitEvent(user, domain.TypeFailed, &failed)
			w.waitEvent(user, domain.TypeDeadLettered, nil)
			if removed.DeviceID != domain.DeviceID(tc.tok) || removed.Reason != tc.reason || removed.Platform != tc.platform {
				t.Errorf("push.token.removed %+v", removed)
			}
			if tc.status == 410 && !removed.UnregisteredAt.Equal(unregAt) {
				t.Errorf("unregistered_at %v, want %v", removed.UnregisteredAt, unregAt)
			}
			if failed.Reason != tc.reason || failed.Status != tc.status {
				t.Errorf("push.failed %+v", failed)
			}
			if st, body := w.api(http.MethodGet, "/v1/users/"+user+"/devices", nil); st != 200 || len(body["devices"].([]any)) != 0 {
				t.Errorf("devices after removal: %d %v", st, body)
			}
		})
	}
}

// 429 and 5xx are retried with backoff until a 200: one delivery.
func TestRetryableAnswersAreRetriedAndDeliverOnce(t *testing.T) {
	w := newWorld(t, nil)
	for i, tc := range []struct {
		name    string
		script  []apnsfake.Response
		attempt int
	}{
		{"503 then 200", []apnsfake.Response{apnsfake.Reply(503, "ServiceUnavailable")}, 2},
		{"429 twice then 200", []apnsfake.Response{apnsfake.Reply(429, "TooManyRequests"), apnsfake.Reply(429, "TooManyRequests")}, 3},
		{"500 then 200", []apnsfake.Response{apnsfake.Reply(500, "InternalServerError")}, 2},
		{"ExpiredProviderToken: a new JWT, then 200", []apnsfake.Response{apnsfake.Reply(403, "ExpiredProviderToken")}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user, tok := "dave"+strconv.Itoa(i), apnsToken("dave"+strconv.Itoa(i))
			w.register(user, tok, domain.IOS, domain.Production)
			w.apns.Script(tok, tc.script...)
			w.request(domain.RequestData{User: user, CallID: callID})
			var sent domain.SentData
			w.waitEvent(user, domain.TypeSent, &sent)
			got := w.apns.RequestsFor(tok)
			accepted := 0
			for _, r := range got {
				if r.Status == 200 {
					accepted++
				}
			}
			if len(got) != tc.attempt || accepted != 1 || sent.Attempts != tc.attempt {
				t.Errorf("%d requests (%d accepted), push.sent attempts %d; want %d requests, 1 accepted", len(got), accepted, sent.Attempts, tc.attempt)
			}
			if len(w.events(user, domain.TypeFailed)) != 0 {
				t.Error("a push.failed was published")
			}
		})
	}
}

// A push whose retries outlast the consumer's ack wait is kept by its
// instance (it tells JetStream it is still working): not delivered again
// meanwhile — with one delivery allowed, a second would dead-letter it —
// and pushed once.
func TestARequestRetriedPastTheAckWaitIsNotDeliveredAgain(t *testing.T) {
	w := newWorld(t, func(c *Config) { c.ackWait, c.MaxDeliver = time.Second, 1 })
	tok := apnsToken("kept1")
	w.register("kept1", tok, domain.IOS, domain.Production)
	slow := apnsfake.Response{Status: 503, Reason: "ServiceUnavailable", Delay: 1200 * time.Millisecond}
	w.apns.Script(tok, slow, slow)
	w.request(domain.RequestData{User: "kept1", CallID: callID})
	var sent domain.SentData
	w.waitEvent("kept1", domain.TypeSent, &sent)
	if sent.Attempts != 3 || len(w.apns.RequestsFor(tok)) != 3 {
		t.Errorf("push.sent after %d attempts, %d requests at APNs; want 3 and 3", sent.Attempts, len(w.apns.RequestsFor(tok)))
	}
	if f := w.events("kept1", domain.TypeFailed); len(f) != 0 {
		t.Errorf("%d push.failed published (delivered again and dead-lettered?)", len(f))
	}
}

// A request past its expiry is not pushed; one whose retries reach its
// expiry stops: push.failed expired and a dead letter either way.
func TestExpiredPushesFailAndAreDeadLettered(t *testing.T) {
	w := newWorld(t, nil)
	tok := apnsToken("erin")
	w.register("erin", tok, domain.IOS, domain.Production)
	past := time.Now().Add(-time.Second)
	w.request(domain.RequestData{RequestID: "late-1", User: "erin", ExpiresAt: &past})
	var failed domain.FailedData
	w.waitEvent("erin", domain.TypeFailed, &failed)
	var dead domain.DeadLetterData
	w.waitEvent("erin", domain.TypeDeadLettered, &dead)
	if failed.Reason != domain.ReasonExpired || dead.Reason != domain.ReasonExpired || dead.RequestID != "late-1" || len(dead.Request) == 0 {
		t.Errorf("push.failed %+v, dead letter %+v", failed, dead)
	}
	if n := len(w.apns.Requests()); n != 0 {
		t.Fatalf("an expired request was pushed (%d)", n)
	}

	unavailable := make([]apnsfake.Response, 100)
	for i := range unavailable {
		unavailable[i] = apnsfake.Reply(503, "ServiceUnavailable")
	}
	w.apns.Script(tok, unavailable...)
	w.request(domain.RequestData{RequestID: "down-1", User: "erin", TTLSeconds: 1})
	waitFor(t, 10*time.Second, "down-1 failed", func() bool { return len(w.events("erin", domain.TypeFailed)) == 2 })
	w.events("erin", domain.TypeFailed)[1].DecodeData(&failed)
	if failed.Reason != domain.ReasonExpired || failed.Status != 503 || failed.Attempts < 2 || !strings.Contains(failed.Detail, "ServiceUnavailable") {
		t.Errorf("push.failed %+v", failed)
	}
	waitFor(t, 5*time.Second, "two dead letters", func() bool { return len(w.events("erin", domain.TypeDeadLettered)) == 2 })
}

// An Android device is pushed through FCM HTTP v1 with a service
// account's access token.
func TestAndroidDevicesArePushedThroughFCM(t *testing.T) {
	w := newWorld(t, nil)
	tok := "fcm-frank:APA91bHPRgkFLJu6Cc4cXYZ_0123456789"
	w.register("frank", tok, domain.Android, "")
	w.fcm.Script(tok, fcmfake.Response{Code: "UNAVAILABLE"})
	w.request(domain.RequestData{User: "frank", CallID: callID, TTLSeconds: 20, CollapseID: "c1"})
	var sent domain.SentData
	w.waitEvent("frank", domain.TypeSent, &sent)
	got := w.fcm.Requests()
	if len(got) != 2 || got[1].Status != 200 {
		t.Fatalf("FCM got %+v", got)
	}
	m := got[1].Message
	if m.Token != tok || m.Android == nil || m.Android.Priority != "HIGH" || m.Android.CollapseKey != "c1" || m.Android.RestrictedPackageName != bundle ||
		m.Data["call_id"] != callID || m.Data["type"] != "voip" || got[1].Proto != "HTTP/2.0" {
		t.Errorf("FCM message %+v (proto %s)", m, got[1].Proto)
	}
	if ttl, _ := strconv.Atoi(strings.TrimSuffix(m.Android.TTL, "s")); ttl < 15 || ttl > 20 {
		t.Errorf("ttl %s", m.Android.TTL)
	}
	if sent.Platform != domain.Android || !strings.HasPrefix(sent.FCMMessage, "projects/switchyard-test/messages/") || sent.Attempts != 2 {
		t.Errorf("push.sent %+v", sent)
	}
	// An expired access token is renewed.
	grants := w.fcm.TokenGrants()
	w.fcm.ExpireTokens()
	w.request(domain.RequestData{User: "frank", Type: "alert", Title: "Missed call", Body: "from +44 20 7123 4567"})
	waitFor(t, 10*time.Second, "second push.sent", func() bool { return len(w.events("frank", domain.TypeSent)) == 2 })
	if w.fcm.TokenGrants() != grants+1 {
		t.Errorf("token grants %d → %d", grants, w.fcm.TokenGrants())
	}
	last := w.fcm.Requests()[len(w.fcm.Requests())-1].Message
	if last.Notification == nil || last.Notification.Title != "Missed call" {
		t.Errorf("alert message %+v", last)
	}
}

// Requests beyond the user's rate, to users without devices, and that
// are not valid are dead-lettered with their reason.
func TestUndeliverableRequestsAreDeadLettered(t *testing.T) {
	w := newWorld(t, func(c *Config) { c.RateLimit = 2 })
	w.register("gina", apnsToken("gina"), domain.IOS, domain.Production)
	for i := range 3 {
		w.request(domain.RequestData{RequestID: "g-" + strconv.Itoa(i), User: "gina"})
		waitFor(t, 10*time.Second, "request handled", func() bool {
			return len(w.events("gina", domain.TypeSent))+len(w.events("gina", domain.TypeFailed)) == i+1
		})
	}
	var dead domain.DeadLetterData
	w.waitEvent("gina", domain.TypeDeadLettered, &dead)
	if dead.Reason != domain.ReasonRateLimited || dead.RequestID != "g-2" || len(w.apns.Requests()) != 2 {
		t.Errorf("dead letter %+v after %d pushes", dead, len(w.apns.Requests()))
	}

	w.request(domain.RequestData{User: "nobody"})
	w.waitEvent("nobody", domain.TypeDeadLettered, &dead)
	if dead.Reason != domain.ReasonNoDevices {
		t.Errorf("no devices: %+v", dead)
	}

	// Not valid: a user with a dot cannot even be a subject token, so a
	// bad priority stands in; the raw event is kept.
	w.request(domain.RequestData{User: "hank", Priority: 7})
	w.waitEvent("hank", domain.TypeDeadLettered, &dead)
	var failed domain.FailedData
	w.waitEvent("hank", domain.TypeFailed, &failed)
	if dead.Reason != domain.ReasonInvalid || !strings.Contains(dead.Detail, "priority") || len(dead.Request) == 0 || failed.Reason != domain.ReasonInvalid {
		t.Errorf("invalid: dead letter %+v, failed %+v", dead, failed)
	}
}

// The admin API: bearer token, validation naming the field, register,
// list, move between users, unregister, a test push and its record.
func TestDeviceRegistryAPI(t *testing.T) {
	w := newWorld(t, nil)
	tok := apnsToken("ivy")
	req, _ := http.NewRequest(http.MethodGet, "http://"+w.svc.AdminAddr()+"/v1/users/ivy/devices", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("no token: %v %v", resp.StatusCode, err)
	}
	for _, tc := range []struct {
		method, path string
		body         any
		status       int
		code         string
	}{
		{"PUT", "/v1/users/ivy/devices/" + tok, map[string]string{"platform": "ios", "bundle": bundle}, 201, ""},
		{"PUT", "/v1/users/ivy/devices/" + tok, map[string]string{"platform": "ios", "bundle": bundle, "environment": "sandbox"}, 200, ""},
		{"PUT", "/v1/users/ivy/devices/zz", map[string]string{"platform": "ios", "bundle": bundle}, 400, "invalid_token"},
		{"PUT", "/v1/users/ivy/devices/" + tok, map[string]string{"platform": "ios"}, 400, "invalid_bundle"},
		{"PUT", "/v1/users/ivy/devices/" + tok, map[string]string{"platform": "blackberry"}, 400, "invalid_platform"},
		{"PUT", "/v1/users/ivy/devices/" + tok, map[string]any{"platform": "ios", "colour": "red"}, 400, "invalid_body"},
		{"PUT", "/v1/users/i.v.y/devices/" + tok, map[string]string{"platform": "ios", "bundle": bundle}, 400, "invalid_user"},
		{"DELETE", "/v1/users/ivy/devices/" + apnsToken("other"), nil, 404, "not_found"},
		{"POST", "/v1/users/ivy/pushes", map[string]any{"type": "alert"}, 400, "invalid_body"},
		{"POST", "/v1/users/ivy/pushes", map[string]any{"user": "jack"}, 400, "invalid_user"},
	} {
		st, body := w.api(tc.method, tc.path, tc.body)
		code := ""
		if e, ok := body["error"].(map[string]any); ok {
			code, _ = e["code"].(string)
		}
		if st != tc.status || code != tc.code {
			t.Errorf("%s %s %v: %d %v, want %d %s", tc.method, tc.path, tc.body, st, body, tc.status, tc.code)
		}
	}
	st, body := w.api("GET", "/v1/users/ivy/devices", nil)
	devs, _ := body["devices"].([]any)
	if st != 200 || len(devs) != 1 || devs[0].(map[string]any)["environment"] != "sandbox" || devs[0].(map[string]any)["id"] != domain.DeviceID(tok) {
		t.Fatalf("list: %d %v", st, body)
	}
	// The device signs in as jack: it moves.
	st, body = w.api("PUT", "/v1/users/jack/devices/"+tok, map[string]string{"platform": "ios", "bundle": bundle})
	if st != 201 || body["moved_from"] != "ivy" {
		t.Fatalf("move: %d %v", st, body)
	}
	if _, body := w.api("GET", "/v1/users/ivy/devices", nil); len(body["devices"].([]any)) != 0 {
		t.Fatalf("ivy still has %v", body)
	}
	st, body = w.api("POST", "/v1/users/jack/pushes", map[string]any{"type": "alert", "body": "test push"})
	if st != 202 {
		t.Fatalf("test push: %d %v", st, body)
	}
	w.waitEvent("jack", domain.TypeSent, nil)
	id := body["request_id"].(string)
	st, body = w.api("GET", "/v1/pushes/"+id, nil)
	rec, _ := body["devices"].(map[string]any)[domain.DeviceID(tok)].(map[string]any)
	if st != 200 || rec["state"] != "done" || rec["outcome"].(map[string]any)["result"] != "sent" {
		t.Fatalf("record: %d %v", st, body)
	}
	if st, _ := w.api("DELETE", "/v1/users/jack/devices/"+tok, nil); st != 204 {
		t.Fatalf("unregister: %d", st)
	}
	if n := len(w.sandbox.Requests()); n != 0 {
		t.Errorf("the production device was pushed through the sandbox")
	}
}

// Certificate authentication: the client certificate is presented in the
// TLS handshake and no provider token is sent.
func TestCertificateAuthentication(t *testing.T) {
	certPEM, keyPEM, err := apnsfake.SelfSignedPEM(bundle)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	fake, err := apnsfake.Start(apnsfake.Options{ClientCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	dir := t.TempDir()
	certFile, ca := filepath.Join(dir, "apns.pem"), filepath.Join(dir, "ca.pem")
	write(t, certFile, append(certPEM, keyPEM...))
	write(t, ca, fake.CertPEM())
	w := newWorld(t, func(c *Config) {
		c.APNs = apns.Config{CertFile: certFile, ProductionURL: fake.URL(), SandboxURL: fake.URL(), CAFile: ca}
	})
	tok := apnsToken("kim")
	w.register("kim", tok, domain.IOS, domain.Production)
	w.request(domain.RequestData{User: "kim", CallID: callID})
	w.waitEvent("kim", domain.TypeSent, nil)
	got := fake.Requests()
	if len(got) != 1 || got[0].Auth != "certificate" || got[0].Topic != bundle+".voip" {
		t.Fatalf("APNs got %+v", got)
	}
}

// SIGTERM while a push is between retries: its claim is released and the
// message handed back, so the next instance delivers it — once.
func TestShutdownHandsBackAPushBetweenRetries(t *testing.T) {
	w := newWorld(t, func(c *Config) { c.ShutdownGrace = 50 * time.Millisecond })
	tok := apnsToken("lena")
	w.register("lena", tok, domain.IOS, domain.Production)
	busy := make([]apnsfake.Response, 8)
	for i := range busy {
		busy[i] = apnsfake.Reply(503, "ServiceUnavailable")
	}
	w.apns.Script(tok, busy...)
	w.request(domain.RequestData{RequestID: "sigterm-1", User: "lena", TTLSeconds: 30})
	waitFor(t, 10*time.Second, "a first attempt", func() bool { return len(w.apns.RequestsFor(tok)) >= 2 })
	w.stop()
	rdb := redis.NewClient(&redis.Options{Addr: infra.Redis.Addr()})
	defer rdb.Close()
	if n, _ := rdb.HLen(context.Background(), w.cfg.Prefix+"req:sigterm-1").Result(); n != 0 {
		t.Fatalf("the claim was not released at shutdown (%d fields)", n)
	}
	w.start()
	var sent domain.SentData
	w.waitEvent("lena", domain.TypeSent, &sent)
	accepted := 0
	for _, r := range w.apns.RequestsFor(tok) {
		if r.Status == 200 {
			accepted++
		}
	}
	if accepted != 1 || len(w.events("lena", domain.TypeFailed)) != 0 {
		t.Fatalf("%d pushes accepted, %d failures; want 1 and 0", accepted, len(w.events("lena", domain.TypeFailed)))
	}
}
