// Package natsrpc serves the gateway's request-reply subjects on core NATS:
// callctl.<uuid> for each live call this instance holds, and fs.<node>.api
// for the configured FreeSWITCH nodes.
package natsrpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard-voice/switchyard/pkg/esl"

	"github.com/switchyard-voice/switchyard/services/esl-gateway/internal/adapters/freeswitch"
)

// Router subscribes callctl.<uuid> per call.
type Router struct {
	nc  *nats.Conn
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewRouter serves on nc; requests in flight are cancelled by Close.
func NewRouter(nc *nats.Conn, log *slog.Logger) *Router {
	ctx, cancel := context.WithCancel(context.Background())
	return &Router{nc: nc, log: log, ctx: ctx, cancel: cancel}
}

// Serve answers callctl.<callID> with h until stop. Each request runs on
// its own goroutine: a long playback never holds up a break or a hangup.
func (r *Router) Serve(callID string, h func(ctx context.Context, req []byte) []byte) (func(), error) {
	sub, err := r.nc.Subscribe("callctl."+callID, func(m *nats.Msg) {
		if m.Reply == "" {
			return // nobody to answer: a publish, not a request
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			m.Respond(h(r.ctx, m.Data))
		}()
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe callctl.%s: %w", callID, err)
	}
	return func() { sub.Unsubscribe() }, nil
}

// Close cancels requests in flight and waits for their answers.
func (r *Router) Close() {
	r.cancel()
	r.wg.Wait()
}

// NodeAPI runs api commands on nodes (adapters/freeswitch).
type NodeAPI interface {
	API(ctx context.Context, node, cmd string, background bool) (string, error)
	Names() []string
}

// APIRequest is what fs.<node>.api accepts.
type APIRequest struct {
	Command    string `json:"command"`
	Background bool   `json:"background,omitempty"`
	TimeoutMS  int    `json:"timeout_ms,omitempty"`
}

// APIReply answers it.
type APIReply struct {
	Output string    `json:"output,omitempty"`
	Error  *APIError `json:"error,omitempty"`
}

// APIError is a failed api request.
type APIError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Cause   string `json:"cause,omitempty"`
}

// ServeNodeAPI subscribes fs.<node>.api for every node, in the queue group
// "esl-gateway" so that one gateway instance answers each request.
func ServeNodeAPI(nc *nats.Conn, nodes NodeAPI, log *slog.Logger) (stop func(), err error) {
	var subs []*nats.Subscription
	stop = func() {
		for _, s := range subs {
			s.Unsubscribe()
		}
	}
	for _, node := range nodes.Names() {
		sub, err := nc.QueueSubscribe("fs."+node+".api", "esl-gateway", func(m *nats.Msg) {
			if m.Reply == "" {
				return
			}
			go func() {
				b, _ := json.Marshal(runAPI(nodes, node, m.Data, log))
				m.Respond(b)
			}()
		})
		if err != nil {
			stop()
			return nil, fmt.Errorf("subscribe fs.%s.api: %w", node, err)
		}
		subs = append(subs, sub)
	}
	return stop, nil
}

const maxAPITimeout = 10 * time.Minute

func runAPI(nodes NodeAPI, node string, raw []byte, log *slog.Logger) APIReply {
	var req APIRequest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if len(raw) > 64<<10 {
		return APIReply{Error: &APIError{Code: "invalid_request", Message: "request exceeds 64 KiB"}}
	}
	if err := dec.Decode(&req); err != nil {
		return APIReply{Error: &APIError{Code: "invalid_request", Message: "want {\"command\":\"status\"}: " + err.Error()}}
	}
	if strings.TrimSpace(req.Command) == "" {
		return APIReply{Error: &APIError{Code: "invalid_request", Message: "command is empty"}}
	}
	if strings.ContainsAny(req.Command, "\r\n\x00") {
		return APIReply{Error: &APIError{Code: "invalid_request", Message: "command must be one line"}}
	}
	timeout := 30 * time.Second
	if req.TimeoutMS > 0 {
		timeout = min(time.Duration(req.TimeoutMS)*time.Millisecond, maxAPITimeout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := nodes.API(ctx, node, req.Command, req.Background)
	if err != nil {
		reply := APIReply{Error: apiError(err)}
		log.Warn("fs api request failed", "node", node, "command", firstWord(req.Command), "code", reply.Error.Code, "err", err)
		return reply
	}
	return APIReply{Output: out}
}

func apiError(err error) *APIError {
	var ce *esl.CommandError
	switch {
	case errors.As(err, &ce):
		return &APIError{Code: "command_failed", Message: ce.Reply, Cause: ce.Cause()}
	case errors.Is(err, freeswitch.ErrUnknownNode):
		return &APIError{Code: "unknown_node", Message: err.Error()}
	case errors.Is(err, esl.ErrNotConnected):
		return &APIError{Code: "node_unavailable", Message: err.Error()}
	case errors.Is(err, esl.ErrInjection):
		return &APIError{Code: "invalid_request", Message: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return &APIError{Code: "timeout", Message: err.Error()}
	case errors.Is(err, freeswitch.ErrNotAllowed):
		return &APIError{Code: "not_allowed", Message: err.Error()}
	}
	return &APIError{Code: "failed", Message: err.Error()}
}

func firstWord(s string) string {
	w, _, _ := strings.Cut(strings.TrimSpace(s), " ")
	return w
}
