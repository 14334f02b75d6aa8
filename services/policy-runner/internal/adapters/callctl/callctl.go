// Package callctl drives one call through the esl-gateway's
// callctl.<uuid> request-reply subject (docs/events.md, "Call control").
package callctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/luaapi"
)

// ErrCallGone: the gateway no longer holds the call (it hung up).
var ErrCallGone = errors.New("the call has hung up")

// Call is luaapi.CallControl over NATS.
type Call struct {
	nc      *nats.Conn
	id      string
	timeout time.Duration
	gone    atomic.Bool
}

// New drives call id; timeout bounds one command that has no deadline of
// its own (a playback, a bridge).
func New(nc *nats.Conn, id string, timeout time.Duration) *Call {
	return &Call{nc: nc, id: id, timeout: timeout}
}

type command struct {
	Op          string   `json:"op"`
	App         string   `json:"app,omitempty"`
	Arg         string   `json:"arg,omitempty"`
	Vars        []string `json:"vars,omitempty"`
	Cause       string   `json:"cause,omitempty"`
	Name        string   `json:"name,omitempty"`
	Value       string   `json:"value,omitempty"`
	Destination string   `json:"destination,omitempty"`
	Dialplan    string   `json:"dialplan,omitempty"`
	Context     string   `json:"context,omitempty"`
	TimeoutMS   int      `json:"timeout_ms,omitempty"`
}

type reply struct {
	OK     bool `json:"ok"`
	Result *struct {
		Application string            `json:"application"`
		Response    string            `json:"response"`
		Vars        map[string]string `json:"vars"`
		Value       *string           `json:"value"`
	} `json:"result"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (c *Call) do(ctx context.Context, cmd command) (*reply, error) {
	if c.gone.Load() {
		return nil, ErrCallGone
	}
	cmd.TimeoutMS = int(c.timeout.Milliseconds())
	body, _ := json.Marshal(cmd)
	rctx, cancel := context.WithTimeout(ctx, c.timeout+5*time.Second)
	defer cancel()
	msg, err := c.nc.RequestWithContext(rctx, "callctl."+c.id, body)
	if errors.Is(err, nats.ErrNoResponders) {
		c.gone.Store(true)
		return nil, ErrCallGone
	}
	if err != nil {
		return nil, fmt.Errorf("callctl %s: %w", cmd.Op, err)
	}
	var r reply
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return nil, fmt.Errorf("callctl %s: unreadable reply: %w", cmd.Op, err)
	}
	if !r.OK {
		if r.Error != nil && r.Error.Code == "call_gone" {
			c.gone.Store(true)
			return nil, ErrCallGone
		}
		if r.Error != nil {
			return nil, fmt.Errorf("callctl %s: %s: %s", cmd.Op, r.Error.Code, r.Error.Message)
		}
		return nil, fmt.Errorf("callctl %s: failed", cmd.Op)
	}
	return &r, nil
}

// Execute runs an application and waits for its completion.
func (c *Call) Execute(ctx context.Context, app, arg string, vars []string) (luaapi.Result, error) {
	r, err := c.do(ctx, command{Op: "execute", App: app, Arg: arg, Vars: vars})
	if err != nil {
		return luaapi.Result{}, err
	}
	out := luaapi.Result{Application: app, Vars: map[string]string{}}
	if r.Result != nil {
		out.Response = r.Result.Response
		for k, v := range r.Result.Vars {
			out.Vars[k] = v
		}
	}
	if app == "hangup" {
		c.gone.Store(true)
	}
	return out, nil
}

// Hangup hangs the call up.
func (c *Call) Hangup(ctx context.Context, cause string) error {
	_, err := c.do(ctx, command{Op: "hangup", Cause: cause})
	c.gone.Store(true)
	if errors.Is(err, ErrCallGone) {
		return nil
	}
	return err
}

// Set sets a channel variable.
func (c *Call) Set(ctx context.Context, name, value string) error {
	_, err := c.do(ctx, command{Op: "set", Name: name, Value: value})
	return err
}

// Get reads a channel variable.
func (c *Call) Get(ctx context.Context, name string) (string, bool, error) {
	r, err := c.do(ctx, command{Op: "get", Name: name})
	if err != nil || r.Result == nil || r.Result.Value == nil {
		return "", false, err
	}
	return *r.Result.Value, true, nil
}

// Transfer sends the call to the dialplan; the policy is done with it.
func (c *Call) Transfer(ctx context.Context, dest, dialplan, context string) error {
	_, err := c.do(ctx, command{Op: "transfer", Destination: dest, Dialplan: dialplan, Context: context})
	if err == nil {
		c.gone.Store(true)
	}
	return err
}

// Ready is false once the call is known to be gone.
func (c *Call) Ready() bool { return !c.gone.Load() }
