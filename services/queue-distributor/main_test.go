package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestHelpListsEveryFlagWithItsEnvironmentVariable(t *testing.T) {
	var out bytes.Buffer
	code, _ := run(context.Background(), []string{"--help"}, func(string) string { return "" }, &out, &out)
	if code != 2 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"--nats-url", "SWITCHYARD_NATS_URL", "--redis-url", "SWITCHYARD_REDIS_URL", "--admin-addr", "SWITCHYARD_QD_ADMIN_ADDR",
		"--admin-token", "SWITCHYARD_ADMIN_TOKEN", "--instance", "--workers", "--stats-window", "--shutdown-grace", "--redis-prefix", "rebuild"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %s:\n%s", want, out.String())
		}
	}
}

func TestNoTokenIsRefusedWithAHint(t *testing.T) {
	var out bytes.Buffer
	code, err := run(context.Background(), []string{"--admin-addr", "127.0.0.1:0"}, func(string) string { return "" }, &out, &out)
	if code != 1 || err == nil || !strings.Contains(err.Error(), "SWITCHYARD_ADMIN_TOKEN") {
		t.Fatalf("exit %d err %v", code, err)
	}
}
