package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func TestPrecedenceFlagOverEnvOverDefault(t *testing.T) {
	env := map[string]string{"X_ADDR": "10.0.0.1:1", "X_TIMEOUT": "2s", "X_NODES": "a, b"}
	var addr, other string
	var timeout time.Duration
	var nodes []string
	s := New("x")
	s.Getenv(func(k string) string { return env[k] })
	s.String(&addr, "addr", "X_ADDR", "127.0.0.1:8084", "listen address")
	s.String(&other, "other", "X_OTHER", "dflt", "other")
	s.Duration(&timeout, "timeout", "X_TIMEOUT", time.Second, "timeout")
	s.List(&nodes, "nodes", "X_NODES", "", "nodes")
	if err := s.Parse([]string{"--addr", "0.0.0.0:9"}); err != nil {
		t.Fatal(err)
	}
	if addr != "0.0.0.0:9" || other != "dflt" || timeout != 2*time.Second || strings.Join(nodes, "|") != "a|b" {
		t.Fatalf("addr %q other %q timeout %v nodes %v", addr, other, timeout, nodes)
	}
}

func TestBadEnvIsReportedWithItsName(t *testing.T) {
	var n int
	var d time.Duration
	s := New("x")
	s.Getenv(func(k string) string { return map[string]string{"X_N": "many", "X_D": "soon"}[k] })
	s.Int(&n, "n", "X_N", 1, "n")
	s.Duration(&d, "d", "X_D", 0, "d")
	err := s.Parse(nil)
	if err == nil || !strings.Contains(err.Error(), "X_N") || !strings.Contains(err.Error(), "X_D") {
		t.Fatalf("got %v", err)
	}
}

func TestHelpListsFlagsEnvsAndHidesSecrets(t *testing.T) {
	var addr, token string
	s := New("svc")
	s.Getenv(func(k string) string { return map[string]string{"SVC_TOKEN": "s3cret"}[k] })
	s.String(&addr, "addr", "SVC_ADDR", "127.0.0.1:1", "where to listen")
	s.Secret(&token, "token", "SVC_TOKEN", "", "admin token")
	var out bytes.Buffer
	s.SetOutput(&out)
	if err := s.Parse([]string{"--help"}); !errors.Is(err, ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	help := out.String()
	for _, want := range []string{"--addr", "SVC_ADDR", `"127.0.0.1:1"`, "--token", "SVC_TOKEN", "secret"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q:\n%s", want, help)
		}
	}
	if strings.Contains(help, "s3cret") {
		t.Fatalf("help prints a secret:\n%s", help)
	}
	if token != "s3cret" {
		t.Fatalf("secret not read from env")
	}
}

// A flag-only setting (no variable) never reads the environment and its
// help line names no variable.
func TestFlagOnlySetting(t *testing.T) {
	var call string
	s := New("x test")
	s.Getenv(func(k string) string {
		if k == "" {
			return "from-an-empty-name"
		}
		return ""
	})
	s.String(&call, "call", "", "", "call.json")
	var out bytes.Buffer
	s.SetOutput(&out)
	if err := s.Parse(nil); err != nil || call != "" {
		t.Fatalf("call %q %v", call, err)
	}
	s.PrintUsage(&out)
	if !strings.Contains(out.String(), "  --call\n      call.json") || strings.Contains(out.String(), "env )") {
		t.Fatalf("help:\n%s", out.String())
	}
}

func TestDefaultInstance(t *testing.T) {
	got := DefaultInstance("qd")
	h, _ := os.Hostname()
	if h == "" {
		h = "qd"
	}
	if want := fmt.Sprintf("%s-%d", h, os.Getpid()); got != want {
		t.Fatalf("DefaultInstance = %q, want %q", got, want)
	}
}
