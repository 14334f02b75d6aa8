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
		"--nats-url", "SWITCHYARD_NATS_URL", "--admin-addr", "SWITCHYARD_CP_ADMIN_ADDR", `"127.0.0.1:9104"`,
		"--admin-token", "SWITCHYARD_ADMIN_TOKEN", "--instance", "SWITCHYARD_CP_INSTANCE", "--log-level", "SWITCHYARD_LOG_LEVEL",
		"--kv-bucket", "SWITCHYARD_CP_KV_BUCKET", "--config-key", "SWITCHYARD_CP_CONFIG_KEY",
		"--default-timeout", "SWITCHYARD_CP_DEFAULT_TIMEOUT", "--max-timeout", "SWITCHYARD_CP_MAX_TIMEOUT",
		"--max-in-flight-per-org", "SWITCHYARD_CP_MAX_IN_FLIGHT_PER_ORG", "--max-pending", "SWITCHYARD_CP_MAX_PENDING",
		"--cache-ttl", "SWITCHYARD_CP_CACHE_TTL", "--stale-for", "SWITCHYARD_CP_STALE_FOR", "--cache-max-mb", "SWITCHYARD_CP_CACHE_MAX_MB",
		"--retries", "SWITCHYARD_CP_RETRIES", "--retry-backoff", "SWITCHYARD_CP_RETRY_BACKOFF",
		"--breaker-failures", "SWITCHYARD_CP_BREAKER_FAILURES", "--breaker-open", "SWITCHYARD_CP_BREAKER_OPEN",
		"--breaker-slow-call", "SWITCHYARD_CP_BREAKER_SLOW_CALL", "--max-request-bytes", "SWITCHYARD_CP_MAX_REQUEST_BYTES",
		"--max-result-bytes", "SWITCHYARD_CP_MAX_RESULT_BYTES", "--salesforce-api-version", "SWITCHYARD_CP_SALESFORCE_API_VERSION",
		"--shutdown-grace", "SWITCHYARD_CP_SHUTDOWN_GRACE", "--core-api-url", "SWITCHYARD_CP_CORE_API_URL",
		"--core-api-token", "SWITCHYARD_CP_CORE_API_TOKEN",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %s:\n%s", want, out.String())
		}
	}
}

func TestSettingsAreChecked(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	for _, tc := range []struct {
		args []string
		env  func(string) string
		code int
		want string
	}{
		{[]string{"--admin-addr", "127.0.0.1:0"}, env(), 1, "SWITCHYARD_ADMIN_TOKEN"},
		{[]string{"--admin-token", "t", "--config-key", "c2hvcnQ="}, env(), 1, "--config-key"},
		{[]string{"--admin-token", "t", "--retries", "9"}, env(), 1, "--retries"},
		{[]string{"--admin-token", "t", "--default-timeout", "20s"}, env(), 1, "--default-timeout"},
		{nil, env("SWITCHYARD_CP_CACHE_TTL", "soon"), 2, "SWITCHYARD_CP_CACHE_TTL"},
		{[]string{"--log-level", "loud"}, env(), 2, "--log-level"},
		{[]string{"--admin-token", "t", "--core-api-url", "core-api:8080"}, env(), 1, "--core-api-url"},
		{[]string{"extra"}, env(), 2, "unexpected arguments"},
	} {
		var out bytes.Buffer
		code, err := run(context.Background(), tc.args, tc.env, &out)
		if code != tc.code || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: exit %d, %v; want %d and %q", tc.args, code, err, tc.code, tc.want)
		}
	}
}
