package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/switchyard-voice/switchyard/pkg/config"
)

func TestHelpListsEveryFlagWithItsEnvironmentVariable(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"--help"}, func(string) string { return "" }, &out)
	if !errors.Is(err, config.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{"--socket-addr", "SWITCHYARD_GW_SOCKET_ADDR", "--nodes", "SWITCHYARD_GW_NODES", "--admin-token",
		"SWITCHYARD_ADMIN_TOKEN", "--nats-url", "SWITCHYARD_NATS_URL", "--socket-allow", "--max-sessions", "--shutdown-grace", "--api-allow"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %s", want)
		}
	}
}

func TestRefusesToStartWithoutAToken(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), nil, func(string) string { return "" }, &out)
	if err == nil || !strings.Contains(err.Error(), "SWITCHYARD_ADMIN_TOKEN") {
		t.Fatalf("got %v", err)
	}
}
