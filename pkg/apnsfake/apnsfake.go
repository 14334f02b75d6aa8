// Package apnsfake is a fake Apple Push Notification service: the HTTP/2
// provider API (`POST /3/device/<token>`) over TLS with a self-signed
// certificate generated at start. It checks what APNs checks — the provider
// token (an ES256 JWT whose `kid` is a known key, whose `iss` is that key's
// team and whose `iat` is less than an hour old) or a client certificate,
// and the headers `apns-push-type`, `apns-topic`, `apns-priority`,
// `apns-expiration`, `apns-collapse-id` and `apns-id` — and answers with
// APNs' status codes and `{"reason":"…"}` bodies (410 with a `timestamp`).
// Responses can be scripted per device token, so tests can make APNs answer
// 503 then 200, or forget a token.
//
//	srv, err := apnsfake.Start(apnsfake.Options{})
//	defer srv.Close()
//	srv.AddKey("ABC123DEFG", "TEAM123456", &key.PublicKey)
//	srv.Script(token, apnsfake.Reply(503, "ServiceUnavailable"))
//	client.Host = srv.URL() // an apns2 client trusting srv.CertPool()
package apnsfake

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limits of the provider API.
const (
	MaxPayload     = 4096 // bytes, every push type but voip
	MaxVoIPPayload = 5120 // bytes, voip
	MaxCollapseID  = 64   // bytes
	TokenLifetime  = time.Hour
)

// Options configure the fake.
type Options struct {
	// Addr to listen on; "" is 127.0.0.1 on a free port.
	Addr string
	// ClientCAs are the roots a client certificate must chain to for
	// certificate authentication; nil accepts no certificate.
	ClientCAs *x509.CertPool
	// Now is the fake's clock (for iat freshness); nil is time.Now.
	Now func() time.Time
	// OnRequest, if set, is called with every request once it is
	// answered (benchmarks timestamp arrivals with it). It must be quick.
	OnRequest func(Request)
}

// Request is one push the fake received, with its answer.
type Request struct {
	Token      string
	PushType   string
	Topic      string
	Priority   string
	Expiration string
	CollapseID string
	ApnsID     string // as sent by the client ("" when absent)
	Payload    []byte
	Auth       string // "token" or "certificate"
	KeyID      string // token authentication
	TeamID     string
	Proto      string // "HTTP/2.0"
	Received   time.Time
	Status     int
	Reason     string
	// AnsweredID is the apns-id of the answer (the client's or a new one).
	AnsweredID string
}

// Response is a scripted answer.
type Response struct {
	Status int
	Reason string
	// Timestamp is the 410 Unregistered time; zero means now.
	Timestamp time.Time
	// Delay holds the answer back (an overloaded APNs).
	Delay time.Duration
}

// Reply is a scripted answer with a status and reason.
func Reply(status int, reason string) Response { return Response{Status: status, Reason: reason} }

// OK is a scripted 200.
var OK = Response{Status: http.StatusOK}

type key struct {
	team string
	pub  *ecdsa.PublicKey
}

// Server is a running fake APNs.
type Server struct {
	opts    Options
	ln      net.Listener
	srv     *http.Server
	pool    *x509.CertPool
	certPEM []byte

	mu           sync.Mutex
	keys         map[string]key
	verified     map[string]claims // provider tokens whose signature checked out
	scripts      map[string][]Response
	unregistered map[string]time.Time
	topics       map[string]string // token → bundle it belongs to
	requests     []Request
	conns        int
	changed      chan struct{} // closed and replaced on every request
}

// Connections counts the connections clients have opened so far.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Start generates a certificate for 127.0.0.1 and localhost and serves
// HTTP/2 over TLS.
func Start(opts Options) (*Server, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	cert, certPEM, err := SelfSigned("apnsfake")
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	s := &Server{
		opts: opts, pool: pool, certPEM: certPEM,
		keys: map[string]key{}, verified: map[string]claims{}, scripts: map[string][]Response{}, unregistered: map[string]time.Time{},
		topics: map[string]string{}, changed: make(chan struct{}),
	}
	tcfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2"},
		MinVersion:   tls.VersionTLS12,
	}
	if opts.ClientCAs != nil {
		tcfg.ClientCAs = opts.ClientCAs
		tcfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	var protos http.Protocols
	protos.SetHTTP2(true) // APNs speaks HTTP/2 only
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), TLSConfig: tcfg, Protocols: &protos, ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				s.mu.Lock()
				s.conns++
				s.mu.Unlock()
			}
		}}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("apnsfake: listen on %s: %w", opts.Addr, err)
	}
	s.ln = ln
	go s.srv.Serve(tls.NewListener(ln, tcfg))
	return s, nil
}

// URL is the fake's base URL, to set as an apns2 Client's Host.
func (s *Server) URL() string { return "https://" + s.ln.Addr().String() }

// CertPEM is the server certificate, PEM-encoded (a CA file for clients).
func (s *Server) CertPEM() []byte { return s.certPEM }

// CertPool holds the server certificate, for a client's RootCAs.
func (s *Server) CertPool() *x509.CertPool { return s.pool }

// Close stops the server and its connections.
func (s *Server) Close() error { return s.srv.Close() }

// AddKey accepts provider tokens signed by pub under keyID for teamID.
func (s *Server) AddKey(keyID, teamID string, pub *ecdsa.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[keyID] = key{team: teamID, pub: pub}
	clear(s.verified)
}

// Script queues answers for pushes to token, used in order; when they are
// used up, pushes to token are answered as usual (200 unless unregistered).
func (s *Server) Script(token string, rs ...Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scripts[token] = append(s.scripts[token], rs...)
}

// Unregister makes every later push to token answer 410 Unregistered with
// the time at.
func (s *Server) Unregister(token string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unregistered[token] = at
}

// BindTopic says token belongs to the app bundle: a push to it whose topic
// is neither the bundle nor one of its suffixed topics (bundle.voip, …)
// answers 400 DeviceTokenNotForTopic. Unbound tokens accept any topic.
func (s *Server) BindTopic(token, bundle string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.topics[token] = bundle
}

// Requests returns every request received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// RequestsFor returns the requests to one device token.
func (s *Server) RequestsFor(token string) []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.Token == token {
			out = append(out, r)
		}
	}
	return out
}

// Changed returns a channel closed at the next request, so tests wait for
// a condition without sleeping.
func (s *Server) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Reset forgets requests, scripts, bindings and unregistered tokens (keys stay).
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
	s.scripts = map[string][]Response{}
	s.unregistered = map[string]time.Time{}
	s.topics = map[string]string{}
}

var (
	hexToken  = regexp.MustCompile(`^[0-9a-fA-F]{64,200}$`)
	uuidRe    = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	pushTypes = map[string]string{ // push type → topic suffix
		"alert": "", "background": "", "location": ".location-query", "voip": ".voip",
		"complication": ".complication", "fileprovider": ".pushkit.fileprovider", "mdm": "",
		"liveactivity": ".push-type.liveactivity", "pushtotalk": ".voip-ptt",
	}
)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	req := Request{
		PushType: r.Header.Get("apns-push-type"), Topic: r.Header.Get("apns-topic"),
		Priority: r.Header.Get("apns-priority"), Expiration: r.Header.Get("apns-expiration"),
		CollapseID: r.Header.Get("apns-collapse-id"), ApnsID: r.Header.Get("apns-id"),
		Proto: r.Proto, Received: time.Now(),
	}
	req.Token, _ = strings.CutPrefix(r.URL.Path, "/3/device/")
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxVoIPPayload+1))
	if err != nil {
		req.Status, req.Reason = http.StatusBadRequest, "BadPayload"
	}
	req.Payload = body
	req.AnsweredID = req.ApnsID
	if req.AnsweredID == "" {
		req.AnsweredID = newUUID()
	}
	var unregAt time.Time
	var delay time.Duration
	if req.Status == 0 {
		req.Status, req.Reason, unregAt, delay = s.answer(r, &req)
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
		}
	}
	w.Header().Set("apns-id", req.AnsweredID)
	if req.Status == http.StatusOK {
		w.WriteHeader(http.StatusOK)
	} else {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(req.Status)
		b := map[string]any{"reason": req.Reason}
		if req.Status == http.StatusGone {
			b["timestamp"] = unregAt.UnixMilli()
		}
		json.NewEncoder(w).Encode(b)
	}
	s.record(req)
}

func (s *Server) record(req Request) {
	s.mu.Lock()
	s.requests = append(s.requests, req)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	if s.opts.OnRequest != nil {
		s.opts.OnRequest(req)
	}
}

// answer validates the request as APNs does, in APNs' order of checks
// (path, auth, headers, payload, token state) and then applies a script.
func (s *Server) answer(r *http.Request, req *Request) (status int, reason string, unregAt time.Time, delay time.Duration) {
	if !strings.HasPrefix(r.URL.Path, "/3/device/") {
		return http.StatusNotFound, "BadPath", unregAt, 0
	}
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, "MethodNotAllowed", unregAt, 0
	}
	if r.ProtoMajor != 2 {
		return http.StatusBadRequest, "BadPath", unregAt, 0
	}
	if st, rs := s.authenticate(r, req); st != 0 {
		return st, rs, unregAt, 0
	}
	if req.Token == "" {
		return http.StatusBadRequest, "MissingDeviceToken", unregAt, 0
	}
	suffix, ok := pushTypes[req.PushType]
	if !ok {
		return http.StatusBadRequest, "InvalidPushType", unregAt, 0
	}
	if req.Topic == "" && req.Auth == "token" {
		return http.StatusBadRequest, "MissingTopic", unregAt, 0
	}
	if suffix != "" && req.Topic != "" && !strings.HasSuffix(req.Topic, suffix) {
		return http.StatusBadRequest, "BadTopic", unregAt, 0
	}
	switch req.Priority {
	case "", "1", "5", "10":
	default:
		return http.StatusBadRequest, "BadPriority", unregAt, 0
	}
	if req.Expiration != "" {
		if _, err := strconv.ParseInt(req.Expiration, 10, 64); err != nil {
			return http.StatusBadRequest, "BadExpirationDate", unregAt, 0
		}
	}
	if len(req.CollapseID) > MaxCollapseID {
		return http.StatusBadRequest, "BadCollapseId", unregAt, 0
	}
	if req.ApnsID != "" && !uuidRe.MatchString(req.ApnsID) {
		return http.StatusBadRequest, "BadMessageId", unregAt, 0
	}
	if len(req.Payload) == 0 {
		return http.StatusBadRequest, "PayloadEmpty", unregAt, 0
	}
	max := MaxPayload
	if req.PushType == "voip" {
		max = MaxVoIPPayload
	}
	if len(req.Payload) > max {
		return http.StatusRequestEntityTooLarge, "PayloadTooLarge", unregAt, 0
	}
	if !json.Valid(req.Payload) {
		return http.StatusBadRequest, "BadPayload", unregAt, 0 // not one of APNs' documented reasons, but what it does
	}
	if !hexToken.MatchString(req.Token) {
		return http.StatusBadRequest, "BadDeviceToken", unregAt, 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.topics[req.Token]; ok && req.Topic != "" && req.Topic != b+suffix {
		return http.StatusBadRequest, "DeviceTokenNotForTopic", unregAt, 0
	}
	if q := s.scripts[req.Token]; len(q) > 0 {
		resp := q[0]
		s.scripts[req.Token] = q[1:]
		if resp.Status == 0 {
			resp.Status = http.StatusOK
		}
		at := resp.Timestamp
		if at.IsZero() {
			at = s.opts.Now()
		}
		return resp.Status, resp.Reason, at, resp.Delay
	}
	if at, ok := s.unregistered[req.Token]; ok {
		return http.StatusGone, "Unregistered", at, 0
	}
	return http.StatusOK, "", unregAt, 0
}

// authenticate checks the provider token or the client certificate and
// fills req's auth fields; status 0 means authenticated.
func (s *Server) authenticate(r *http.Request, req *Request) (int, string) {
	authz := r.Header.Get("authorization")
	if authz == "" {
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
			req.Auth = "certificate"
			return 0, ""
		}
		return http.StatusForbidden, "MissingProviderToken"
	}
	scheme, jwt, ok := strings.Cut(authz, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return http.StatusForbidden, "InvalidProviderToken"
	}
	req.Auth = "token"
	// A provider token is reused for up to an hour: verify its signature
	// once (as APNs does), check its age every time.
	s.mu.Lock()
	claims, ok := s.verified[jwt]
	s.mu.Unlock()
	if !ok {
		var err error
		claims, err = verifyES256(jwt, func(kid string) (*ecdsa.PublicKey, string, bool) {
			s.mu.Lock()
			defer s.mu.Unlock()
			k, ok := s.keys[kid]
			return k.pub, k.team, ok
		})
		if err != nil {
			return http.StatusForbidden, "InvalidProviderToken"
		}
		s.mu.Lock()
		if len(s.verified) > 1000 {
			clear(s.verified)
		}
		s.verified[jwt] = claims
		s.mu.Unlock()
	}
	req.KeyID, req.TeamID = claims.kid, claims.iss
	age := s.opts.Now().Sub(time.Unix(claims.iat, 0))
	if age > TokenLifetime || age < -5*time.Minute {
		return http.StatusForbidden, "ExpiredProviderToken"
	}
	return 0, ""
}

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
