package config

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// fakeConfig is a service's config as Serve sees it.
type fakeConfig struct{ level, instance, greeting string }

func (c *fakeConfig) Flags(s *Set) {
	s.String(&c.level, "log-level", "T_LOG_LEVEL", "info", "level")
	s.String(&c.instance, "instance", "T_INSTANCE", "i1", "name")
	s.String(&c.greeting, "greeting", "T_GREETING", "hello", "what it logs")
}

type runFunc func(ctx context.Context) error

func (f runFunc) Run(ctx context.Context) error { return f(ctx) }

func TestServe(t *testing.T) {
	startErr := errors.New("listen: address in use")
	for _, tc := range []struct {
		name     string
		args     []string
		env      map[string]string
		startErr error
		wantCode int
		wantErr  error
		wantOut  []string // in errOut
		wantRuns bool
	}{
		{name: "runs with flags over environment", args: []string{"--greeting", "hi"}, env: map[string]string{"T_GREETING": "yo", "T_INSTANCE": "i9"},
			wantRuns: true, wantOut: []string{`"msg":"hi"`, `"service":"svc"`, `"instance":"i9"`}},
		{name: "help lists flags and other commands", args: []string{"--help"}, wantCode: 2, wantErr: ErrHelp,
			wantOut: []string{"--greeting", "T_GREETING", "Other commands:\n  svc other"}},
		{name: "bad flag", args: []string{"--nope"}, wantCode: 2, wantOut: []string{"nope"}},
		{name: "bad log level", args: []string{"--log-level", "loud"}, wantCode: 2},
		{name: "cannot start", startErr: startErr, wantCode: 1, wantErr: startErr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cfg fakeConfig
			var out bytes.Buffer
			ran := false
			code, err := Command{Name: "svc", Flags: cfg.Flags, LogLevel: &cfg.level, Instance: &cfg.instance, Others: "  svc other",
				Start: func(log *slog.Logger) (Runner, error) {
					if tc.startErr != nil {
						return nil, tc.startErr
					}
					return runFunc(func(context.Context) error { ran = true; log.Info(cfg.greeting); return nil }), nil
				}}.Serve(context.Background(), tc.args, func(k string) string { return tc.env[k] }, &out)
			if code != tc.wantCode || ran != tc.wantRuns || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) || (tc.wantCode != 0) != (err != nil) {
				t.Fatalf("exit %d, err %v, ran %v; want %d, %v, %v", code, err, ran, tc.wantCode, tc.wantErr, tc.wantRuns)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			if tc.wantRuns {
				var line map[string]any
				if err := json.Unmarshal(out.Bytes(), &line); err != nil {
					t.Errorf("log is not one JSON line: %v\n%s", err, out.String())
				}
			}
		})
	}
}
