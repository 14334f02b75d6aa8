package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
)

// --help lists every setting with its flag and environment variable, and
// the other commands.
func TestHelpListsEveryFlagAndVariable(t *testing.T) {
	src, err := os.ReadFile("internal/service/service.go")
	if err != nil {
		t.Fatal(err)
	}
	decls := regexp.MustCompile(`s\.\w+\(&c\.\w+, "([a-z-]+)", "([A-Z_]+)"`).FindAllStringSubmatch(string(src), -1)
	if len(decls) < 15 {
		t.Fatalf("found %d settings in service.go; the pattern is stale", len(decls))
	}
	var out, errOut bytes.Buffer
	code, _ := run(context.Background(), []string{"--help"}, &out, &errOut)
	help := out.String() + errOut.String()
	if code == 0 {
		t.Errorf("--help exited 0")
	}
	for _, d := range decls {
		if !strings.Contains(help, "--"+d[1]) || !strings.Contains(help, d[2]) {
			t.Errorf("--help does not list --%s / %s", d[1], d[2])
		}
	}
	for _, cmd := range []string{"policy-runner test", "policy-runner replay"} {
		if !strings.Contains(help, cmd) {
			t.Errorf("--help does not mention %q", cmd)
		}
	}
	// The subcommands list theirs the same way.
	for _, tc := range []struct {
		cmd  string
		want []string
	}{
		{"test", []string{"--call", "--lib", "--schedules", "--nats-url  (env SWITCHYARD_NATS_URL"}},
		{"replay", []string{"--policy", "--lib  (env SWITCHYARD_PR_LIB", "--nats-url  (env SWITCHYARD_NATS_URL"}},
	} {
		var out, errOut bytes.Buffer
		code, _ := run(context.Background(), []string{tc.cmd, "--help"}, &out, &errOut)
		for _, w := range tc.want {
			if code != 2 || !strings.Contains(errOut.String(), w) {
				t.Errorf("%s --help (exit %d) lacks %q:\n%s", tc.cmd, code, w, errOut.String())
			}
		}
	}
}

// A bad setting stops the start with a message that says what to fix.
func TestBadSettingsStopTheStart(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--admin-token", ""}, "SWITCHYARD_ADMIN_TOKEN"},
		{[]string{"--admin-token", "x", "--routes", "8084"}, "want destination=policy"},
		{[]string{"--admin-token", "x", "--routes", "~(=p"}, "pattern"},
		{[]string{"--admin-token", "x", "--policy-store", "s3"}, "kv, dir or coreapi"},
		{[]string{"--admin-token", "x", "--log-level", "loud"}, "--log-level"},
	} {
		var out bytes.Buffer
		code, err := serve(context.Background(), tc.args, func(string) string { return "" }, &out)
		if code == 0 || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: exit %d, %v; want an error naming %q", tc.args, code, err, tc.want)
		}
	}
}
