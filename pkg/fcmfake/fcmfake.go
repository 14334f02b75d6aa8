// Package fcmfake is a fake Firebase Cloud Messaging: the HTTP v1 send
// endpoint (`POST /v1/projects/{project}/messages:send`) and the Google
// OAuth 2.0 token endpoint a service account trades a signed JWT for an
// access token at (`POST /token`, the JWT bearer grant), over HTTP/2 and
// TLS. It checks the assertion (RS256 by the account's key, iss, aud,
// scope, iat/exp), the bearer token on every send, and the message as FCM
// does, and answers with FCM's status codes and error bodies
// (`{"error":{"code":404,"status":"NOT_FOUND","details":[{"@type":"…FcmError","errorCode":"UNREGISTERED"}]}}`).
// Answers can be scripted per registration token.
//
//	srv := fcmfake.Start()
//	defer srv.Close()
//	keyJSON, _ := srv.NewServiceAccount("my-project") // token_uri points at srv
//	srv.Unregister(regToken)
package fcmfake

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Scope is the OAuth scope sending needs.
const Scope = "https://www.googleapis.com/auth/firebase.messaging"

// MaxMessage bounds a message's data and notification, as FCM does.
const MaxMessage = 4096

// Message is the part of an FCM v1 message the fake understands.
type Message struct {
	Token        string            `json:"token,omitempty"`
	Topic        string            `json:"topic,omitempty"`
	Condition    string            `json:"condition,omitempty"`
	Data         map[string]string `json:"data,omitempty"`
	Notification *struct {
		Title string `json:"title,omitempty"`
		Body  string `json:"body,omitempty"`
	} `json:"notification,omitempty"`
	Android *struct {
		Priority              string `json:"priority,omitempty"`
		TTL                   string `json:"ttl,omitempty"`
		CollapseKey           string `json:"collapse_key,omitempty"`
		RestrictedPackageName string `json:"restricted_package_name,omitempty"`
	} `json:"android,omitempty"`
}

// Request is one send the fake received, with its answer.
type Request struct {
	Project  string
	Message  Message
	Raw      []byte
	Proto    string
	Received time.Time
	Status   int
	Code     string // FcmError errorCode, "" on success
	Name     string // the message name answered on success
}

// Response is a scripted answer: one of FCM's error codes (UNREGISTERED,
// INVALID_ARGUMENT, QUOTA_EXCEEDED, UNAVAILABLE, INTERNAL,
// SENDER_ID_MISMATCH, THIRD_PARTY_AUTH_ERROR), or "" for success.
type Response struct {
	Code  string
	Delay time.Duration
}

var codes = map[string]struct {
	status int
	grpc   string
	msg    string
}{
	"UNREGISTERED":           {404, "NOT_FOUND", "Requested entity was not found."},
	"INVALID_ARGUMENT":       {400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token"},
	"QUOTA_EXCEEDED":         {429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Send requests'."},
	"UNAVAILABLE":            {503, "UNAVAILABLE", "The service is currently unavailable."},
	"INTERNAL":               {500, "INTERNAL", "Internal error encountered."},
	"SENDER_ID_MISMATCH":     {403, "PERMISSION_DENIED", "SenderId mismatch"},
	"THIRD_PARTY_AUTH_ERROR": {401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service"},
}

type account struct {
	project string
	pub     *rsa.PublicKey
}

type accessToken struct {
	project string
	expires time.Time
}

// Server is a running fake FCM.
type Server struct {
	srv *httptest.Server
	// TokenTTL is the lifetime of issued access tokens (default an hour).
	TokenTTL time.Duration

	mu           sync.Mutex
	accounts     map[string]account // client_email → account
	tokens       map[string]accessToken
	scripts      map[string][]Response
	unregistered map[string]bool
	requests     []Request
	tokenGrants  int
	changed      chan struct{}
}

// Start serves HTTP/2 over TLS on 127.0.0.1 (httptest's certificate).
func Start() *Server {
	s := &Server{
		TokenTTL: time.Hour, accounts: map[string]account{}, tokens: map[string]accessToken{},
		scripts: map[string][]Response{}, unregistered: map[string]bool{}, changed: make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.token)
	mux.HandleFunc("POST /v1/projects/{project}/messages:send", s.send)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, 404, "NOT_FOUND", "no such endpoint: "+r.URL.Path, "")
	})
	s.srv = httptest.NewUnstartedServer(mux)
	s.srv.EnableHTTP2 = true
	s.srv.StartTLS()
	return s
}

// URL is the base URL (the send endpoint is URL()+"/v1/projects/…").
func (s *Server) URL() string { return s.srv.URL }

// TokenURL is the OAuth token endpoint.
func (s *Server) TokenURL() string { return s.srv.URL + "/token" }

// CertPEM is the server's certificate (a CA file for clients).
func (s *Server) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
}

// CertPool trusts the server's certificate.
func (s *Server) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.srv.Certificate())
	return p
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// NewServiceAccount makes a service account of project with a fresh RSA
// key and returns its JSON key file, whose token_uri is this fake.
func (s *Server) NewServiceAccount(project string) ([]byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	var id [8]byte
	rand.Read(id[:])
	email := fmt.Sprintf("push-%s@%s.iam.gserviceaccount.com", hex.EncodeToString(id[:4]), project)
	s.mu.Lock()
	s.accounts[email] = account{project: project, pub: &key.PublicKey}
	s.mu.Unlock()
	return json.MarshalIndent(map[string]string{
		"type": "service_account", "project_id": project, "private_key_id": hex.EncodeToString(id[:]),
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": email, "client_id": "1" + hex.EncodeToString(id[:]),
		"auth_uri": s.URL() + "/auth", "token_uri": s.TokenURL(),
	}, "", "  ")
}

// Script queues answers for sends to the registration token.
func (s *Server) Script(token string, rs ...Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scripts[token] = append(s.scripts[token], rs...)
}

// Unregister makes sends to token answer 404 UNREGISTERED.
func (s *Server) Unregister(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unregistered[token] = true
}

// ExpireTokens makes every issued access token invalid (401).
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = map[string]accessToken{}
}

// TokenGrants counts access tokens issued.
func (s *Server) TokenGrants() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenGrants
}

// Requests returns every send received.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Changed returns a channel closed at the next send.
func (s *Server) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		oauthError(w, "invalid_request", err.Error())
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		oauthError(w, "unsupported_grant_type", "grant_type "+gt)
		return
	}
	c, err := verifyRS256(r.PostForm.Get("assertion"), func(iss string) (*rsa.PublicKey, bool) {
		s.mu.Lock()
		defer s.mu.Unlock()
		a, ok := s.accounts[iss]
		return a.pub, ok
	})
	if err != nil {
		oauthError(w, "invalid_grant", "Invalid JWT Signature: "+err.Error())
		return
	}
	now := time.Now()
	switch {
	case c.Aud != s.TokenURL():
		oauthError(w, "invalid_grant", "Invalid JWT: aud "+c.Aud)
		return
	case !strings.Contains(" "+c.Scope+" ", " "+Scope+" "):
		oauthError(w, "invalid_scope", "scope lacks "+Scope)
		return
	case c.Exp <= now.Unix() || c.Iat > now.Unix()+300 || c.Exp-c.Iat > 3600:
		oauthError(w, "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe")
		return
	}
	var b [24]byte
	rand.Read(b[:])
	tok := "ya29.fake-" + hex.EncodeToString(b[:])
	s.mu.Lock()
	s.tokens[tok] = accessToken{project: s.accounts[c.Iss].project, expires: now.Add(s.TokenTTL)}
	s.tokenGrants++
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(s.TokenTTL.Seconds())})
}

func oauthError(w http.ResponseWriter, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

var (
	ttlRe      = regexp.MustCompile(`^[0-9]{1,10}(\.[0-9]{1,9})?s$`)
	regTokenRe = regexp.MustCompile(`^[A-Za-z0-9_:.-]{20,1000}$`)
)

func (s *Server) send(w http.ResponseWriter, r *http.Request) {
	req := Request{Project: r.PathValue("project"), Proto: r.Proto, Received: time.Now()}
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	req.Raw = raw
	req.Status, req.Code, req.Name = s.answer(r, &req)
	var delay time.Duration
	if req.Status == 0 { // scripted
		q := s.popScript(req.Message.Token)
		req.Code, delay = q.Code, q.Delay
		req.Status = 200
		if c, ok := codes[q.Code]; ok {
			req.Status = c.status
		}
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
		}
	}
	if req.Status == 200 {
		if req.Name == "" {
			var b [8]byte
			rand.Read(b[:])
			req.Name = "projects/" + req.Project + "/messages/0:" + hex.EncodeToString(b[:])
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"name": req.Name})
	} else if c, ok := codes[req.Code]; ok {
		writeError(w, c.status, c.grpc, c.msg, req.Code)
	} else {
		writeError(w, req.Status, grpcStatus(req.Status), req.Code, "")
	}
	s.mu.Lock()
	s.requests = append(s.requests, req)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *Server) popScript(token string) Response {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q := s.scripts[token]; len(q) > 0 {
		s.scripts[token] = q[1:]
		return q[0]
	}
	if s.unregistered[token] {
		return Response{Code: "UNREGISTERED"}
	}
	return Response{}
}

// answer authenticates and validates; status 0 means valid (the script
// or the token state decide). A non-FCM-code failure carries its message
// in code.
func (s *Server) answer(r *http.Request, req *Request) (status int, code, name string) {
	bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	tok, known := s.tokens[bearer]
	s.mu.Unlock()
	if !ok || !known || time.Now().After(tok.expires) {
		return 401, "Request had invalid authentication credentials. Expected OAuth 2 access token.", ""
	}
	if tok.project != req.Project {
		return 403, "SENDER_ID_MISMATCH", ""
	}
	var body struct {
		ValidateOnly bool    `json:"validate_only"`
		Message      Message `json:"message"`
	}
	dec := json.NewDecoder(strings.NewReader(string(req.Raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return 400, "Invalid JSON payload received. " + err.Error(), ""
	}
	req.Message = body.Message
	m := body.Message
	targets := 0
	for _, t := range []string{m.Token, m.Topic, m.Condition} {
		if t != "" {
			targets++
		}
	}
	if targets != 1 {
		return 400, "Exactly one of token, topic or condition must be set", ""
	}
	if m.Android != nil {
		if p := m.Android.Priority; p != "" && p != "HIGH" && p != "NORMAL" {
			return 400, "Invalid value at 'message.android.priority'", ""
		}
		if t := m.Android.TTL; t != "" && !ttlRe.MatchString(t) {
			return 400, "Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration)", ""
		}
	}
	size := 0
	for k, v := range m.Data {
		size += len(k) + len(v)
	}
	if m.Notification != nil {
		size += len(m.Notification.Title) + len(m.Notification.Body)
	}
	if size > MaxMessage {
		return 400, "INVALID_ARGUMENT", ""
	}
	if m.Token != "" && !regTokenRe.MatchString(m.Token) {
		return 400, "INVALID_ARGUMENT", ""
	}
	if body.ValidateOnly {
		return 200, "", "projects/" + req.Project + "/messages/fake_message_id"
	}
	return 0, "", ""
}

func grpcStatus(status int) string {
	switch status {
	case 400:
		return "INVALID_ARGUMENT"
	case 401:
		return "UNAUTHENTICATED"
	case 403:
		return "PERMISSION_DENIED"
	case 404:
		return "NOT_FOUND"
	}
	return "UNKNOWN"
}

// writeError writes Google's error shape; fcmCode adds the FcmError detail.
func writeError(w http.ResponseWriter, status int, grpc, msg, fcmCode string) {
	e := map[string]any{"code": status, "message": msg, "status": grpc}
	if fcmCode != "" {
		e["details"] = []map[string]string{{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": fcmCode}}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": e})
}
