package callctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// NodeAPI is freeswitch.API():execute for policies: the gateway's
// fs.<node>.api on the node the call came from. The gateway's allow-list
// decides which commands run.
type NodeAPI struct {
	nc      *nats.Conn
	node    string
	timeout time.Duration
}

// NewNodeAPI runs api commands on node, each bounded by timeout.
func NewNodeAPI(nc *nats.Conn, node string, timeout time.Duration) *NodeAPI {
	return &NodeAPI{nc: nc, node: node, timeout: timeout}
}

// API runs cmd and returns its output.
func (a *NodeAPI) API(ctx context.Context, cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	b, _ := json.Marshal(map[string]any{"command": cmd, "timeout_ms": a.timeout.Milliseconds()})
	m, err := a.nc.RequestWithContext(ctx, "fs."+a.node+".api", b)
	if errors.Is(err, nats.ErrNoResponders) {
		return "", fmt.Errorf("no esl-gateway serves node %q", a.node)
	}
	if err != nil {
		return "", fmt.Errorf("api on %s: %w", a.node, err)
	}
	var r struct {
		Output string `json:"output"`
		Error  *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return "", fmt.Errorf("api on %s: unreadable reply: %w", a.node, err)
	}
	if r.Error != nil {
		return "", fmt.Errorf("%s: %s", r.Error.Code, r.Error.Message)
	}
	return r.Output, nil
}
