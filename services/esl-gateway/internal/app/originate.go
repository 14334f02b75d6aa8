package app

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/switchyard-voice/switchyard/pkg/esl"

	"github.com/switchyard-voice/switchyard/services/esl-gateway/internal/domain/originate"
)

// OriginateError is a call FreeSWITCH would not place: its cause, and the
// HTTP answer that fits it.
type OriginateError struct {
	Cause   string
	Failure originate.Failure
}

func (e *OriginateError) Error() string { return "originate failed: " + e.Cause }

// ErrCallNotFound: no node knows the call.
var ErrCallNotFound = errors.New("no such call")

// ErrNoNode: the request named no node and none is configured.
var ErrNoNode = errors.New("no FreeSWITCH node configured")

// Originate places a call and returns its UUID, chosen by the gateway so
// that it is known even if the call fails later. It runs as bgapi: an
// originate can take as long as the far end rings.
func (g *Gateway) Originate(ctx context.Context, req originate.Request) (string, error) {
	node, err := g.pickNode(req.Node)
	if err != nil {
		return "", err
	}
	uuid := esl.NewUUID()
	args, err := originate.Command(req, uuid)
	if err != nil {
		return "", err
	}
	out, err := g.cfg.Nodes.Exec(ctx, node, "originate "+args, true)
	var ce *esl.CommandError
	if errors.As(err, &ce) {
		cause := ce.Cause()
		f := originate.FailureFor(cause)
		g.originated(f.Code)
		return uuid, &OriginateError{Cause: cause, Failure: f}
	}
	if err != nil {
		g.originated("unavailable")
		return "", fmt.Errorf("originate on %s: %w", node, err)
	}
	g.originated("ok")
	if got := strings.TrimSpace(strings.TrimPrefix(out, "+OK")); got != "" && got != uuid {
		g.cfg.Logger.Warn("FreeSWITCH answered originate with another UUID", "want", uuid, "got", got)
		uuid = got
	}
	return uuid, nil
}

func (g *Gateway) pickNode(node string) (string, error) {
	if node != "" {
		if !g.cfg.Nodes.Has(node) {
			return "", &originate.FieldError{Field: "node", Message: fmt.Sprintf("unknown node %q (configured: %s)", node, strings.Join(g.cfg.Nodes.Names(), ", "))}
		}
		return node, nil
	}
	names := g.cfg.Nodes.Names()
	if len(names) == 0 {
		return "", ErrNoNode
	}
	return names[0], nil
}

// Hangup hangs a call up: through its socket session if this gateway holds
// it, otherwise with uuid_kill on every node until one knows it.
func (g *Gateway) Hangup(ctx context.Context, uuid, cause string) error {
	if cause == "" {
		cause = "NORMAL_CLEARING"
	}
	if c := g.call(uuid); c != nil {
		return c.sess.Hangup(ctx, cause)
	}
	var lastErr error
	for _, node := range g.cfg.Nodes.Names() {
		_, err := g.cfg.Nodes.Exec(ctx, node, "uuid_kill "+uuid+" "+cause, false)
		var ce *esl.CommandError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &ce):
			continue // "-ERR No such channel!": try the next node
		default:
			lastErr = err
		}
	}
	if lastErr != nil {
		return fmt.Errorf("hangup %s: %w", uuid, lastErr)
	}
	return ErrCallNotFound
}

func (g *Gateway) originated(result string) {
	if g.cfg.Hooks.Originated != nil {
		g.cfg.Hooks.Originated(result)
	}
}
