// Package adminhttp is the gateway's admin REST API (docs/api/esl-gateway.yaml).
package adminhttp

import (
	"context"
	"errors"
	"net/http"
	"regexp"

	"github.com/switchyard-voice/switchyard/pkg/admin"
	"github.com/switchyard-voice/switchyard/pkg/esl"

	"github.com/switchyard-voice/switchyard/services/esl-gateway/internal/adapters/freeswitch"
	"github.com/switchyard-voice/switchyard/services/esl-gateway/internal/app"
	"github.com/switchyard-voice/switchyard/services/esl-gateway/internal/domain/originate"
)

var (
	uuidRE  = regexp.MustCompile(`^[A-Za-z0-9\-]{1,64}$`)
	causeRE = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,63}$`)
)

// Nodes is what the API needs of the node manager.
type Nodes interface {
	Status() []freeswitch.Status
	Subscriptions(node string) ([]string, error)
	Subscribe(ctx context.Context, node string, events []string) error
	Unsubscribe(ctx context.Context, node, event string) (bool, error)
}

// Register adds the gateway's routes to srv.
func Register(srv *admin.Server, gw *app.Gateway, nodes Nodes) {
	srv.Handle("GET /v1/nodes", func(w http.ResponseWriter, r *http.Request) error {
		admin.WriteJSON(w, http.StatusOK, map[string]any{"nodes": nodes.Status()})
		return nil
	})
	srv.Handle("GET /v1/nodes/{node}/subscriptions", func(w http.ResponseWriter, r *http.Request) error {
		subs, err := nodes.Subscriptions(r.PathValue("node"))
		if err != nil {
			return nodeError(err)
		}
		admin.WriteJSON(w, http.StatusOK, map[string]any{"node": r.PathValue("node"), "events": subs})
		return nil
	})
	srv.Handle("POST /v1/nodes/{node}/subscriptions", func(w http.ResponseWriter, r *http.Request) error {
		var in struct {
			Events []string `json:"events"`
		}
		if err := admin.DecodeJSON(r, &in); err != nil {
			return err
		}
		if len(in.Events) == 0 || len(in.Events) > 64 {
			return admin.Invalid("events", "give 1 to 64 event names, e.g. [\"CHANNEL_ANSWER\"]")
		}
		if err := nodes.Subscribe(r.Context(), r.PathValue("node"), in.Events); err != nil {
			return nodeError(err)
		}
		subs, _ := nodes.Subscriptions(r.PathValue("node"))
		admin.WriteJSON(w, http.StatusOK, map[string]any{"node": r.PathValue("node"), "events": subs})
		return nil
	})
	srv.Handle("DELETE /v1/nodes/{node}/subscriptions/{event}", func(w http.ResponseWriter, r *http.Request) error {
		found, err := nodes.Unsubscribe(r.Context(), r.PathValue("node"), r.PathValue("event"))
		if err != nil {
			return nodeError(err)
		}
		if !found {
			return admin.Errorf(http.StatusNotFound, "subscription_not_found", "node %s has no subscription to %s", r.PathValue("node"), r.PathValue("event"))
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	srv.Handle("GET /v1/calls", func(w http.ResponseWriter, r *http.Request) error {
		admin.WriteJSON(w, http.StatusOK, map[string]any{"calls": gw.Calls()})
		return nil
	})
	srv.Handle("POST /v1/calls", func(w http.ResponseWriter, r *http.Request) error {
		var req originate.Request
		if err := admin.DecodeJSON(r, &req); err != nil {
			return err
		}
		uuid, err := gw.Originate(r.Context(), req)
		if err != nil {
			return originateError(err, uuid)
		}
		admin.WriteJSON(w, http.StatusCreated, map[string]string{"call_id": uuid})
		return nil
	})
	srv.Handle("POST /v1/calls/{uuid}/hangup", func(w http.ResponseWriter, r *http.Request) error {
		var in struct {
			Cause string `json:"cause"`
		}
		if r.ContentLength != 0 {
			if err := admin.DecodeJSON(r, &in); err != nil {
				return err
			}
		}
		if !uuidRE.MatchString(r.PathValue("uuid")) {
			return admin.Invalid("uuid", "not a call UUID")
		}
		if in.Cause != "" && !causeRE.MatchString(in.Cause) {
			return admin.Invalid("cause", "not a hangup cause such as NORMAL_CLEARING")
		}
		err := gw.Hangup(r.Context(), r.PathValue("uuid"), in.Cause)
		switch {
		case errors.Is(err, app.ErrCallNotFound):
			return admin.Errorf(http.StatusNotFound, "call_not_found", "no FreeSWITCH node knows call %s", r.PathValue("uuid"))
		case errors.Is(err, esl.ErrInjection):
			return admin.Invalid("cause", "not a hangup cause")
		case err != nil:
			return unavailable(err)
		}
		admin.WriteJSON(w, http.StatusOK, map[string]string{"call_id": r.PathValue("uuid"), "status": "hangup_sent"})
		return nil
	})
}

func nodeError(err error) error {
	switch {
	case errors.Is(err, freeswitch.ErrUnknownNode):
		return admin.Errorf(http.StatusNotFound, "node_not_found", "%v", err)
	case errors.Is(err, freeswitch.ErrBadEvent):
		return admin.Invalid("events", "%v", err)
	}
	return unavailable(err)
}

func unavailable(err error) error {
	if errors.Is(err, esl.ErrNotConnected) {
		return admin.Errorf(http.StatusServiceUnavailable, "node_unavailable", "%v", err)
	}
	return admin.Errorf(http.StatusBadGateway, "freeswitch_error", "%v", err)
}

func originateError(err error, uuid string) error {
	var fe *originate.FieldError
	var oe *app.OriginateError
	switch {
	case errors.As(err, &fe):
		return admin.Invalid(fe.Field, "%s", fe.Message)
	case errors.As(err, &oe):
		return &admin.Error{Status: oe.Failure.Status, Code: oe.Failure.Code,
			Message: "FreeSWITCH could not place the call: " + oe.Cause,
			Details: map[string]string{"cause": oe.Cause, "call_id": uuid}}
	case errors.Is(err, app.ErrNoNode):
		return admin.Errorf(http.StatusServiceUnavailable, "no_node", "no FreeSWITCH node is configured; set --nodes")
	case errors.Is(err, context.DeadlineExceeded):
		return admin.Errorf(http.StatusGatewayTimeout, "timeout", "FreeSWITCH did not answer the originate in time")
	}
	return unavailable(err)
}
