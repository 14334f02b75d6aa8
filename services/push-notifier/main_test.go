package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestHelpListsEveryFlagWithItsEnvironmentVariable(t *testing.T) {
	var out bytes.Buffer
	code, _ := run(context.Background(), []string{"--help"}, func(string) string { return "" }, &out)
	if code != 2 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"--nats-url", "SWITCHYARD_NATS_URL", "--redis-url", "SWITCHYARD_REDIS_URL", "--redis-prefix", "SWITCHYARD_PUSH_REDIS_PREFIX",
		"--admin-addr", "SWITCHYARD_PUSH_ADMIN_ADDR", `"127.0.0.1:9105"`, "--admin-token", "SWITCHYARD_ADMIN_TOKEN", "--instance", "--workers", "--shutdown-grace",
		"--apns-key-file", "SWITCHYARD_PUSH_APNS_KEY_FILE", "--apns-key-id", "--apns-team-id", "--apns-cert-file", "--apns-cert-password",
		"--apns-production-url", "--apns-sandbox-url", "--apns-ca-file", "--fcm-credentials-file", "SWITCHYARD_PUSH_FCM_CREDENTIALS_FILE",
		"--fcm-project", "--fcm-url", "--fcm-ca-file", "--attempt-timeout", "--max-retry-window", "--voip-ttl", "--alert-ttl",
		"--rate-limit", "--rate-window", "--max-devices", "--max-deliver", "--log-level",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %s:\n%s", want, out.String())
		}
	}
}

func TestBadSettingsAreRefusedWithAHint(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		code int
		want string
	}{
		{[]string{"--admin-addr", "127.0.0.1:0"}, nil, 1, "SWITCHYARD_ADMIN_TOKEN"},
		{[]string{"--admin-token", "t", "--workers", "0"}, nil, 1, "--workers"},
		{[]string{"--admin-token", "t", "--apns-key-file", "/nonexistent.p8", "--apns-key-id", "K", "--apns-team-id", "T"}, nil, 1, "--apns-key-file"},
		{[]string{"--admin-token", "t", "--apns-key-file", "/x.p8"}, nil, 1, "--apns-key-id"},
		{nil, map[string]string{"SWITCHYARD_PUSH_WORKERS": "many"}, 2, "SWITCHYARD_PUSH_WORKERS"},
		{[]string{"--log-level", "loud"}, nil, 2, "--log-level"},
	} {
		var out bytes.Buffer
		code, err := run(context.Background(), tc.args, func(k string) string { return tc.env[k] }, &out)
		if code != tc.code || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: exit %d err %v, want %d and %s", tc.args, tc.env, code, err, tc.code, tc.want)
		}
	}
}
