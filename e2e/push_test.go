package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/pkg/apnsfake"
	"github.com/switchyard-voice/switchyard/pkg/esl"
	"github.com/switchyard-voice/switchyard/pkg/events"
	"github.com/switchyard-voice/switchyard/pkg/fssim"
	"github.com/switchyard-voice/switchyard/pkg/testinfra"
)

// pushProc is the push-notifier running as its own process.
type pushProc struct {
	admin string
	token string
}

// startPushNotifier starts the push-notifier against natsURL and redisURL
// and waits until it is ready; extra are more KEY=value settings (the
// APNs hosts, CA and key).
func startPushNotifier(t *testing.T, natsURL, redisURL string, extra ...string) *pushProc {
	t.Helper()
	p := &pushProc{admin: testinfra.FreeAddr(t), token: "e2e-token"}
	runService(t, "push-notifier", p.admin, 10*time.Second, append([]string{"SWITCHYARD_NATS_URL=" + natsURL,
		"SWITCHYARD_REDIS_URL=" + redisURL, "SWITCHYARD_ADMIN_TOKEN=" + p.token, "SWITCHYARD_PUSH_ADMIN_ADDR=" + p.admin,
		"SWITCHYARD_PUSH_INSTANCE=push-e2e", "SWITCHYARD_PUSH_SHUTDOWN_GRACE=2s", "SWITCHYARD_LOG_LEVEL=info"}, extra...)...)
	return p
}

// adminCall calls a service's admin REST at addr with its token and
// returns the status and body; it fails t (not a parent test), so
// subtests can use it.
func adminCall(t *testing.T, addr, token, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+addr+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// adminDo is adminCall with the JSON answer decoded; want is the status
// expected (0: any).
func adminDo(t *testing.T, addr, token, method, path string, body any, want int) map[string]any {
	t.Helper()
	status, raw := adminCall(t, addr, token, method, path, body)
	if want != 0 && status != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, status, raw, want)
	}
	out := map[string]any{}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
	return out
}

func (p *pushProc) do(t *testing.T, method, path string, body any, want int) map[string]any {
	t.Helper()
	return adminDo(t, p.admin, p.token, method, path, body, want)
}

// devices lists the tokens the push-notifier holds for user.
func (p *pushProc) devices(t *testing.T, user string) []string {
	t.Helper()
	var toks []string
	list, _ := p.do(t, "GET", "/v1/users/"+user+"/devices", nil, 200)["devices"].([]any)
	for _, d := range list {
		m, _ := d.(map[string]any)
		tok, _ := m["token"].(string)
		toks = append(toks, tok)
	}
	return toks
}

const (
	pushKeyID  = "E2EKEY0001"
	pushTeamID = "E2ETEAM001"
	pushBundle = "com.switchyard.agent"
)

// startAPNsFakes starts a production and a sandbox fake APNs accepting
// provider tokens signed by a fresh P-256 key, and returns them with the
// push-notifier settings that point it at them (the .p8 key and the
// fakes' certificates written to files).
func startAPNsFakes(t *testing.T) (prod, sandbox *apnsfake.Server, env []string) {
	t.Helper()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p8 := filepath.Join(dir, "AuthKey_"+pushKeyID+".p8")
	if err := os.WriteFile(p8, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, s := range []**apnsfake.Server{&prod, &sandbox} {
		if *s, err = apnsfake.Start(apnsfake.Options{}); err != nil {
			t.Fatal(err)
		}
		(*s).AddKey(pushKeyID, pushTeamID, &key.PublicKey)
		srv := *s
		t.Cleanup(func() { srv.Close() })
	}
	ca := filepath.Join(dir, "apns-ca.pem")
	if err := os.WriteFile(ca, append(append([]byte(nil), prod.CertPEM()...), sandbox.CertPEM()...), 0o600); err != nil {
		t.Fatal(err)
	}
	env = []string{
		"SWITCHYARD_PUSH_APNS_PRODUCTION_URL=" + prod.URL(), "SWITCHYARD_PUSH_APNS_SANDBOX_URL=" + sandbox.URL(),
		"SWITCHYARD_PUSH_APNS_CA_FILE=" + ca, "SWITCHYARD_PUSH_APNS_KEY_FILE=" + p8,
		"SWITCHYARD_PUSH_APNS_KEY_ID=" + pushKeyID, "SWITCHYARD_PUSH_APNS_TEAM_ID=" + pushTeamID,
	}
	return prod, sandbox, env
}

// pushEvents reads every event of user on PUSH, in order.
func pushEvents(t *testing.T, js jetstream.JetStream, user string) []*events.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, "PUSH", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"push." + user + ".>"}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*events.Envelope
	for n := info.NumPending; n > 0; {
		batch, err := c.Fetch(int(n), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			e, err := events.Parse(m.Data())
			if err != nil {
				t.Fatalf("unparseable event on %s: %v", m.Subject(), err)
			}
			out = append(out, e)
		}
		if got == 0 {
			t.Fatalf("PUSH for %s: %d events pending but none fetched (%v)", user, n, batch.Error())
		}
		n -= uint64(got)
	}
	return out
}

// ofType keeps the events of type typ.
func ofType(es []*events.Envelope, typ string) []*events.Envelope {
	var out []*events.Envelope
	for _, e := range es {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// types lists the events' types, for failure messages.
func types(es []*events.Envelope) string {
	var s []string
	for _, e := range es {
		s = append(s, e.Type)
	}
	return strings.Join(s, " ")
}

// data decodes an event's data into a map.
func data(t *testing.T, e *events.Envelope) map[string]any {
	t.Helper()
	m := map[string]any{}
	if err := e.DecodeData(&m); err != nil {
		t.Fatalf("%s %s: %v", e.Type, e.ID, err)
	}
	return m
}

// deviceToken makes a distinct 64-hex-digit APNs device token.
func deviceToken(seed string) string {
	sum := sha256.Sum256([]byte("e2e-device/" + seed))
	return hex.EncodeToString(sum[:])
}

// deviceID is how events name a device (docs/operations/push-notifier.md):
// the first 16 hex digits of SHA-256 of its token.
func deviceID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:8])
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// pushRig is the whole path of a call to a mobile agent, every service a
// real process: fssim as FreeSWITCH, the esl-gateway, the policy-runner
// with queue_support.lua, the queue-distributor, the push-notifier and
// fake APNs (production and sandbox).
type pushRig struct {
	sim      *fssim.Sim
	qd       *qdProc
	pn       *pushProc
	apns     map[string]*apnsfake.Server // by device environment
	js       jetstream.JetStream
	mu       sync.Mutex
	bridgedB map[string]string    // caller uuid → agent leg uuid
	created  map[string]time.Time // leg uuid → when its CHANNEL_CREATE was seen
}

func newPushRig(t *testing.T) *pushRig {
	t.Helper()
	natsSrv := testinfra.NewNATS(t)
	redisSrv := testinfra.NewRedis(t)
	prod, sandbox, apnsEnv := startAPNsFakes(t)
	r := &pushRig{apns: map[string]*apnsfake.Server{"production": prod, "sandbox": sandbox}, bridgedB: map[string]string{}, created: map[string]time.Time{}}
	r.sim = fssim.New(fssim.Options{Hostname: "fs1"})
	t.Cleanup(func() { r.sim.Close() })
	fsLn, err := r.sim.ListenInbound("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, natsSrv.URL(), "fs1="+fsLn.Addr().String()+":ClueCon")
	startPolicyRunner(t, natsSrv.URL())
	r.pn = startPushNotifier(t, natsSrv.URL(), redisSrv.URL(), apnsEnv...)
	r.qd = startQueueDistributor(t, natsSrv.URL(), redisSrv.URL(), "qd-push-e2e")
	r.sim.SetDialplan([]fssim.Route{
		fssim.SocketRoute(`^8090$`, gw.socket, false, "switchyard_policy=queue_support"),
		reachedRoute("voicemail"),
	})
	stop := r.sim.Watch(func(e *esl.Event) {
		r.mu.Lock()
		defer r.mu.Unlock()
		switch e.Name() {
		case "CHANNEL_CREATE":
			r.created[e.Get("Unique-ID")] = time.Now()
		case "CHANNEL_BRIDGE":
			r.bridgedB[e.Get("Bridge-A-Unique-ID")] = e.Get("Bridge-B-Unique-ID")
		}
	})
	t.Cleanup(stop)
	nc, err := nats.Connect(natsSrv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if r.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	r.qd.do("PUT", "/v1/queues/support", map[string]any{"strategy": "longest-idle-agent"}, 201)
	return r
}

// mobileAgent configures agent as a mobile agent (contact, push_user,
// ring timeout) in the support queue, logged out. Every tier is set
// before the first call: once a member has been through a queue, the
// distributor answers 409 to config writes on it (the queue's version in
// Redis ignores member events, which share its concurrency subject).
func (r *pushRig) mobileAgent(agent, contact, user string, ringTimeout int) {
	r.qd.do("PUT", "/v1/agents/"+agent, map[string]any{"contact": contact, "push_user": user, "ring_timeout_seconds": ringTimeout}, 201)
	r.qd.do("PUT", "/v1/queues/support/tiers/"+agent, map[string]any{"level": 1}, 200)
}

// login makes agent the one logged in to the queue until the subtest ends.
func (r *pushRig) login(t *testing.T, agent string) {
	t.Helper()
	adminDo(t, r.qd.admin, r.qd.token, "POST", "/v1/agents/"+agent+"/login", nil, 200)
	t.Cleanup(func() { adminDo(t, r.qd.admin, r.qd.token, "POST", "/v1/agents/"+agent+"/logout", nil, 200) })
}

// agentState is the agent's state as the distributor's REST shows it.
func (r *pushRig) agentState(t *testing.T, agent string) string {
	t.Helper()
	state, _ := adminDo(t, r.qd.admin, r.qd.token, "GET", "/v1/agents/"+agent, nil, 200)["state"].(string)
	return state
}

// call places a call to the support queue and waits for its end; the
// agent answers it (a push that fails does not stop the ring). It returns
// the caller's uuid and the agent leg's.
func (r *pushRig) call(t *testing.T, callerNumber, agent string) (callID, leg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	call, err := r.sim.PlaceCall(ctx, fssim.CallSpec{Destination: "8090", CallerIDNumber: callerNumber})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-call.Ended:
	case <-ctx.Done():
		call.Hangup("")
		t.Fatal("the queued call did not end: the agent never answered, or the policy never heard")
	}
	outcome, _ := call.Var("queue_outcome")
	by, _ := call.Var("queue_agent")
	if outcome != "answered" || by != agent {
		t.Fatalf("the policy saw outcome %q agent %q, want answered by %s", outcome, by, agent)
	}
	r.mu.Lock()
	leg = r.bridgedB[call.UUID]
	r.mu.Unlock()
	if leg == "" {
		t.Fatalf("the caller %s was never bridged to an agent leg", call.UUID)
	}
	return call.UUID, leg
}

// A call offered to a mobile agent wakes the agent's app with one Apple
// VoIP push before the ring, every service a real process: the dialplan
// hands the caller to the gateway, queue_support.lua queues them, the
// distributor publishes push.requested for the agent's push_user and
// rings the agent, the push-notifier pushes the registered device at the
// fake APNs. A token APNs calls Unregistered is forgotten; a 503 is
// retried and the push still delivered once.
func TestPushWakesMobileAgentOnOffer(t *testing.T) {
	r := newPushRig(t)
	unregAt := time.UnixMilli(1_767_225_600_000).UTC()
	cases := []struct {
		name     string
		env      string // the device's APNs environment
		apns     func(f *apnsfake.Server, token string)
		statuses []int // APNs' answers, in order, to the one push
		removed  bool  // APNs killed the token: forgotten, not sent
	}{
		{name: "one VoIP push per offer", env: "production", statuses: []int{200}},
		{name: "410 Unregistered removes the token", env: "production", statuses: []int{410}, removed: true,
			apns: func(f *apnsfake.Server, tok string) { f.Unregister(tok, unregAt) }},
		{name: "503 then 200 delivers once", env: "sandbox", statuses: []int{503, 200},
			apns: func(f *apnsfake.Server, tok string) { f.Script(tok, apnsfake.Reply(503, "ServiceUnavailable")) }},
	}
	// Each case has its own mobile agent (m1, m2, …, alone logged in
	// during its case), push user and device.
	names := func(i int) (agent, user, contact, caller string, ringTimeout int) {
		return fmt.Sprintf("m%d", i+1), fmt.Sprintf("mobile-%d", i+1), fmt.Sprintf("user/20%02d", i+1), fmt.Sprintf("+4420700000%02d", i+1), 20 + i
	}
	for i := range cases {
		agent, user, contact, _, ringTimeout := names(i)
		r.mobileAgent(agent, contact, user, ringTimeout)
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			agent, user, contact, caller, ringTimeout := names(i)
			tok := deviceToken(user)
			fake, other := r.apns[tc.env], r.apns["production"]
			if tc.env == "production" {
				other = r.apns["sandbox"]
			}
			if tc.apns != nil {
				tc.apns(fake, tok)
			}
			r.pn.do(t, "PUT", "/v1/users/"+user+"/devices/"+tok,
				map[string]string{"platform": "ios", "environment": tc.env, "bundle": pushBundle}, 201)
			if got := r.pn.devices(t, user); !slices.Equal(got, []string{tok}) {
				t.Fatalf("devices of %s after registering: %v", user, got)
			}
			r.login(t, agent)
			r.sim.SetEndpoint(contact, fssim.Endpoint{AnswerAfter: 300 * time.Millisecond, HangupAfter: 500 * time.Millisecond})

			callID, leg := r.call(t, caller, agent)
			reqID := "offer-" + leg

			// Wait for the push's outcome on PUSH.
			outcome := "push.sent"
			if tc.removed {
				outcome = "push.deadlettered"
			}
			var evs []*events.Envelope
			eventually(t, 10*time.Second, outcome+" for "+user, func() bool {
				evs = pushEvents(t, r.js, user)
				return len(ofType(evs, outcome)) > 0
			})

			// The distributor asked once, for this offer.
			reqs := ofType(evs, "push.requested")
			if len(reqs) != 1 {
				t.Fatalf("%d push.requested for %s, want 1 (events: %s)", len(reqs), user, types(evs))
			}
			rq := data(t, reqs[0])
			if rq["request_id"] != reqID || rq["call_id"] != callID || rq["type"] != "voip" || rq["user"] != user ||
				rq["ttl_seconds"] != float64(ringTimeout) || reqs[0].CallID != callID {
				t.Errorf("push.requested %v (callid %q), want request %s for call %s, ttl %d", rq, reqs[0].CallID, reqID, callID, ringTimeout)
			}
			r.mu.Lock()
			rang := r.created[leg]
			r.mu.Unlock()
			if rang.IsZero() || !reqs[0].Time.Before(rang) {
				t.Errorf("push requested at %v, the agent's leg created at %v: the app must be woken before the ring", reqs[0].Time, rang)
			}

			// APNs saw exactly the attempts scripted, all of one push, and
			// nothing went to the other environment.
			got := fake.RequestsFor(tok)
			var statuses []int
			for _, a := range got {
				statuses = append(statuses, a.Status)
			}
			if !slices.Equal(statuses, tc.statuses) {
				t.Fatalf("%s APNs answered %v to the device, want %v (exactly these attempts)", tc.env, statuses, tc.statuses)
			}
			if n := len(other.RequestsFor(tok)); n != 0 {
				t.Errorf("the %s device was pushed %d times through the other environment's APNs", tc.env, n)
			}
			wantExp := reqs[0].Time.Add(time.Duration(ringTimeout) * time.Second).Unix()
			for n, a := range got {
				exp, _ := strconv.ParseInt(a.Expiration, 10, 64)
				if a.PushType != "voip" || a.Topic != pushBundle+".voip" || a.Priority != "10" || a.CollapseID != callID ||
					a.Auth != "token" || a.KeyID != pushKeyID || a.TeamID != pushTeamID || a.Proto != "HTTP/2.0" ||
					exp < wantExp-1 || exp > wantExp+1 || !uuidRE.MatchString(a.ApnsID) {
					t.Errorf("attempt %d: push type %q topic %q priority %q collapse %q auth %s/%s/%s %s expiration %s (want ~%d) apns-id %q",
						n+1, a.PushType, a.Topic, a.Priority, a.CollapseID, a.Auth, a.KeyID, a.TeamID, a.Proto, a.Expiration, wantExp, a.ApnsID)
				}
				if a.ApnsID != got[0].ApnsID {
					t.Errorf("attempt %d carries apns-id %s, the first %s: one push must keep its id", n+1, a.ApnsID, got[0].ApnsID)
				}
				var p struct {
					APS       map[string]any `json:"aps"`
					RequestID string         `json:"request_id"`
					Type      string         `json:"type"`
					User      string         `json:"user"`
					CallID    string         `json:"call_id"`
					Data      map[string]any `json:"data"`
				}
				if err := json.Unmarshal(a.Payload, &p); err != nil {
					t.Fatalf("attempt %d payload %s: %v", n+1, a.Payload, err)
				}
				if p.APS == nil || p.RequestID != reqID || p.Type != "voip" || p.User != user || p.CallID != callID ||
					p.Data["call_id"] != callID || p.Data["agent"] != agent || p.Data["queue"] != "support" || p.Data["caller_id_number"] != caller {
					t.Errorf("attempt %d payload %s", n+1, a.Payload)
				}
			}

			sent, failed, removed := ofType(evs, "push.sent"), ofType(evs, "push.failed"), ofType(evs, "push.token.removed")
			if !tc.removed {
				if len(sent) != 1 || len(failed) != 0 || len(removed) != 0 {
					t.Fatalf("events for %s: %s; want one push.sent and no failure", user, types(evs))
				}
				d := data(t, sent[0])
				accepted := got[len(got)-1]
				if d["request_id"] != reqID || d["call_id"] != callID || d["type"] != "voip" || d["device_id"] != deviceID(tok) ||
					d["platform"] != "ios" || d["environment"] != tc.env || !strings.EqualFold(fmt.Sprint(d["apns_id"]), accepted.AnsweredID) ||
					d["attempts"] != float64(len(tc.statuses)) || sent[0].CallID != callID || sent[0].Subject != "push."+user+".sent" {
					t.Errorf("push.sent %v (callid %q subject %q); APNs accepted apns-id %s", d, sent[0].CallID, sent[0].Subject, accepted.AnsweredID)
				}
				if lat, _ := d["latency_ms"].(float64); lat <= 0 {
					t.Errorf("push.sent latency_ms %v", d["latency_ms"])
				}
				if got := r.pn.devices(t, user); !slices.Equal(got, []string{tok}) {
					t.Errorf("devices of %s after a delivered push: %v", user, got)
				}
				return
			}

			// A dead token: forgotten, reported, not retried.
			if len(sent) != 0 || len(failed) != 1 || len(removed) != 1 {
				t.Fatalf("events for %s: %s; want one push.failed, one push.token.removed, no push.sent", user, types(evs))
			}
			rm := data(t, removed[0])
			if rm["user"] != user || rm["device_id"] != deviceID(tok) || rm["platform"] != "ios" || rm["environment"] != tc.env ||
				rm["reason"] != "Unregistered" || rm["request_id"] != reqID || removed[0].Subject != "push."+user+".token.removed" {
				t.Errorf("push.token.removed %v (subject %q)", rm, removed[0].Subject)
			}
			if at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(rm["unregistered_at"])); err != nil || !at.Equal(unregAt) {
				t.Errorf("push.token.removed unregistered_at %v, want APNs' %v", rm["unregistered_at"], unregAt)
			}
			if f := data(t, failed[0]); f["reason"] != "Unregistered" || f["status"] != float64(410) || f["request_id"] != reqID || f["device_id"] != deviceID(tok) {
				t.Errorf("push.failed %v", f)
			}
			if got := r.pn.devices(t, user); len(got) != 0 {
				t.Fatalf("devices of %s after APNs said Unregistered: %v, want none", user, got)
			}

			// And it stays forgotten: the next call offered to the agent
			// asks for a push that finds no device; APNs hears nothing.
			eventually(t, 10*time.Second, agent+" idle again", func() bool { return r.agentState(t, agent) == "idle" })
			callID2, leg2 := r.call(t, caller, agent)
			eventually(t, 10*time.Second, "the second push's outcome", func() bool {
				for _, e := range ofType(pushEvents(t, r.js, user), "push.failed") {
					if d := data(t, e); d["request_id"] == "offer-"+leg2 {
						if d["reason"] != "no_devices" || d["call_id"] != callID2 {
							t.Fatalf("second offer's push.failed %v, want no_devices for call %s", d, callID2)
						}
						return true
					}
				}
				return false
			})
			if n := len(fake.RequestsFor(tok)) + len(other.RequestsFor(tok)); n != 1 {
				t.Fatalf("APNs got %d pushes to the removed token, want only the first", n)
			}
		})
	}
}
