package service

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/config"

	"github.com/switchyard-voice/switchyard/services/esl-gateway/internal/adapters/freeswitch"
)

// Config is every setting of the gateway.
type Config struct {
	SocketAddr     string
	SocketAllow    []string
	MaxSessions    int
	ConnectTimeout time.Duration
	NATSURL        string
	Nodes          []string
	NodePassword   string
	APIAllow       []string
	Subscriptions  []string
	AdminAddr      string
	AdminToken     string
	Instance       string
	ShutdownGrace  time.Duration
	MaxFrameBytes  int
	MaxPending     int
	LogLevel       string
}

// DefaultAPIAllow are the api commands fs.<node>.api runs unless configured.
const DefaultAPIAllow = "status,show,originate,uuid_answer,uuid_bridge,uuid_kill,uuid_broadcast,uuid_send_dtmf,uuid_setvar,uuid_getvar,uuid_break,uuid_transfer,uuid_exists,uuid_hold,uuid_park,hupall,sofia,reloadxml,global_getvar,version"

// Flags declares the settings on s.
func (c *Config) Flags(s *config.Set) {
	host, _ := os.Hostname()
	s.String(&c.SocketAddr, "socket-addr", "SWITCHYARD_GW_SOCKET_ADDR", "127.0.0.1:8084", "where FreeSWITCH's dialplan `socket` application connects")
	s.List(&c.SocketAllow, "socket-allow", "SWITCHYARD_GW_SOCKET_ALLOW", "127.0.0.0/8,::1/128", "CIDRs allowed to connect to the socket listener")
	s.Int(&c.MaxSessions, "max-sessions", "SWITCHYARD_GW_MAX_SESSIONS", 5000, "concurrent calls held; connections beyond are refused")
	s.Duration(&c.ConnectTimeout, "connect-timeout", "SWITCHYARD_GW_CONNECT_TIMEOUT", 5*time.Second, "time FreeSWITCH has to answer `connect`")
	s.String(&c.NATSURL, "nats-url", "SWITCHYARD_NATS_URL", "nats://127.0.0.1:4222", "NATS server")
	s.SecretList(&c.Nodes, "nodes", "SWITCHYARD_GW_NODES", "fs1=127.0.0.1:8021", "FreeSWITCH nodes as name=host:port[:password]")
	s.Secret(&c.NodePassword, "node-password", "SWITCHYARD_GW_NODE_PASSWORD", "ClueCon", "event socket password for nodes that name none")
	s.List(&c.APIAllow, "api-allow", "SWITCHYARD_GW_API_ALLOW", DefaultAPIAllow, "api commands fs.<node>.api may run (* for all)")
	s.List(&c.Subscriptions, "subscribe", "SWITCHYARD_GW_SUBSCRIBE", "", "FreeSWITCH events bridged to fs.<node>.events.<NAME> from the start")
	s.String(&c.AdminAddr, "admin-addr", "SWITCHYARD_GW_ADMIN_ADDR", "127.0.0.1:9101", "admin REST listen address")
	s.Secret(&c.AdminToken, "admin-token", "SWITCHYARD_ADMIN_TOKEN", "", "bearer token for /v1/ (required)")
	s.String(&c.Instance, "instance", "SWITCHYARD_GW_INSTANCE", host, "this gateway's name in events")
	s.Duration(&c.ShutdownGrace, "shutdown-grace", "SWITCHYARD_GW_SHUTDOWN_GRACE", 30*time.Second, "on SIGTERM, how long live calls may finish")
	s.Int(&c.MaxFrameBytes, "max-frame-bytes", "SWITCHYARD_GW_MAX_FRAME_BYTES", 1<<20, "largest ESL frame accepted")
	s.Int(&c.MaxPending, "max-pending-events", "SWITCHYARD_GW_MAX_PENDING_EVENTS", 1_000_000, "events held while NATS is away before new ones are dropped")
	s.String(&c.LogLevel, "log-level", "SWITCHYARD_LOG_LEVEL", "info", "debug, info, warn or error")
}

// Validate checks the settings and says what to fix.
func (c *Config) Validate() error {
	if c.AdminToken == "" {
		return fmt.Errorf("no admin token: set SWITCHYARD_ADMIN_TOKEN (or --admin-token) to protect the /v1/ API")
	}
	if _, err := c.allowPrefixes(); err != nil {
		return err
	}
	if _, err := c.NodeConfigs(); err != nil {
		return err
	}
	if c.MaxSessions < 1 {
		return fmt.Errorf("--max-sessions must be at least 1")
	}
	return nil
}

func (c *Config) allowPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range c.SocketAllow {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("--socket-allow %q: not a CIDR such as 10.0.0.0/8", s)
		}
		out = append(out, p)
	}
	return out, nil
}

// NodeConfigs parses --nodes.
func (c *Config) NodeConfigs() ([]freeswitch.NodeConfig, error) {
	var out []freeswitch.NodeConfig
	for _, spec := range c.Nodes {
		name, rest, ok := strings.Cut(spec, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--nodes entry %q: want name=host:port[:password]", redactSpec(spec))
		}
		host, portPass, ok := strings.Cut(rest, ":")
		if !ok {
			return nil, fmt.Errorf("--nodes entry for %s: want name=host:port[:password]", name)
		}
		port, pass, hasPass := strings.Cut(portPass, ":")
		if !hasPass {
			pass = c.NodePassword
		}
		if _, err := net.LookupPort("tcp", port); err != nil || host == "" {
			return nil, fmt.Errorf("--nodes entry for %s: bad host or port", name)
		}
		out = append(out, freeswitch.NodeConfig{Name: name, Addr: net.JoinHostPort(host, port), Password: pass})
	}
	return out, nil
}

func redactSpec(s string) string {
	if i := strings.LastIndex(s, ":"); strings.Count(s, ":") >= 2 {
		return s[:i] + ":<redacted>"
	}
	return s
}
