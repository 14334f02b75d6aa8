package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/dryrun"
)

// Every test in lua/tests runs its policy from lua/policies through
// `policy-runner test`, and every example policy has a test.
func TestLuaPolicies(t *testing.T) {
	root := filepath.Join("..", "..", "lua")
	tests, _ := filepath.Glob(filepath.Join(root, "tests", "*.json"))
	policies, _ := filepath.Glob(filepath.Join(root, "policies", "*.lua"))
	if len(tests) == 0 || len(policies) == 0 {
		t.Fatal("no policies or tests found under lua/")
	}
	tested := map[string]bool{}
	for _, tf := range tests {
		name := strings.TrimSuffix(filepath.Base(tf), ".json")
		t.Run(name, func(t *testing.T) {
			s, err := dryrun.LoadScript(tf)
			if err != nil {
				t.Fatal(err)
			}
			policy := s.Policy
			if policy == "" {
				policy = name
				if _, err := os.Stat(filepath.Join(root, "policies", policy+".lua")); err != nil {
					policy = name[:strings.LastIndex(name, "_")]
				}
			}
			tested[policy] = true
			var out, errOut bytes.Buffer
			code, err := run(context.Background(), []string{"test", filepath.Join(root, "policies", policy+".lua"), "--call", tf}, &out, &errOut)
			if code != 0 || err != nil {
				t.Fatalf("exit %d %v\n%s%s", code, err, out.String(), errOut.String())
			}
		})
	}
	for _, p := range policies {
		if name := strings.TrimSuffix(filepath.Base(p), ".lua"); !tested[name] {
			t.Errorf("policy %s has no test in lua/tests", name)
		}
	}
}

// The command fails, with the trace, when a policy breaks.
func TestTestCommandFailsOnABrokenPolicy(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "broken.lua"), []byte("call.answer()\nlocal x = nil\nreturn x.y\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "call.json"), []byte(`{"call":{"caller_id_number":"1"}}`), 0o644)
	var out, errOut bytes.Buffer
	code, _ := run(context.Background(), []string{"test", filepath.Join(dir, "broken.lua"), "--call", filepath.Join(dir, "call.json")}, &out, &errOut)
	if code == 0 || !strings.Contains(out.String(), "answer") || !strings.Contains(out.String(), "line 3") {
		t.Fatalf("exit %d\n%s", code, out.String())
	}
	code, err := run(context.Background(), []string{"test", filepath.Join(dir, "missing.lua"), "--call", filepath.Join(dir, "call.json")}, &out, &errOut)
	if code == 0 || err == nil {
		t.Fatal("a missing policy file passed")
	}
}
