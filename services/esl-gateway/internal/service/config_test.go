package service

import (
	"strings"
	"testing"
)

func TestConfigValidation(t *testing.T) {
	base := func() Config {
		return Config{AdminToken: "t", SocketAllow: []string{"127.0.0.0/8"}, MaxSessions: 10, NodePassword: "ClueCon",
			Nodes: []string{"fs1=127.0.0.1:8021", "fs2=10.0.0.2:8021:s3cret"}}
	}
	c := base()
	nodes, err := c.NodeConfigs()
	if err != nil || len(nodes) != 2 || nodes[0].Password != "ClueCon" || nodes[1].Password != "s3cret" || nodes[1].Addr != "10.0.0.2:8021" {
		t.Fatalf("nodes %+v %v", nodes, err)
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"no token", func(c *Config) { c.AdminToken = "" }, "SWITCHYARD_ADMIN_TOKEN"},
		{"bad CIDR", func(c *Config) { c.SocketAllow = []string{"10.0.0.0/33"} }, "--socket-allow"},
		{"node without address", func(c *Config) { c.Nodes = []string{"fs1"} }, "name=host:port"},
		{"node with a bad port", func(c *Config) { c.Nodes = []string{"fs1=host:notaport:pw"} }, "bad host or port"},
		{"no sessions", func(c *Config) { c.MaxSessions = 0 }, "--max-sessions"},
	}
	for _, tt := range tests {
		c := base()
		tt.mutate(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v", tt.name, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: the error shows a password: %v", tt.name, err)
		}
	}
}
