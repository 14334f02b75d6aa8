package luaapi_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/luaapi"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/sandbox"
)

func TestVetFindsAPIMisuse(t *testing.T) {
	sb := sandbox.New(sandbox.Limits{})
	defer sb.Close()
	for _, tc := range []struct{ src, want string }{
		{"call.anwser()", "line 1: call.anwser is not part of the policy API (did you mean answer?)"},
		{"call.answer()\nsession:streamfile('a.wav')", "line 2: session:streamfile is not supported (did you mean streamFile?)"},
		{"print('hi')", "line 1: print is not available in policies"},
		{"local f = io.open('/etc/passwd')", "io is not available"},
		{"queue.enqeue('sales')", "queue.enqeue is not part of the policy API (did you mean enqueue?)"},
		{"os.execute('rm -rf /')", "os.execute is not part of the policy API"},
		{"kv.put('a', 'b')", "kv.put is not part of the policy API"},
	} {
		problems, err := luaapi.Vet(sb, tc.src)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range problems {
			got = append(got, p.String())
		}
		if !strings.Contains(strings.Join(got, "\n"), tc.want) {
			t.Errorf("%q: got %q, want %q", tc.src, got, tc.want)
		}
	}
	// A script's own names are its business.
	for _, ok := range []string{
		"local call = {anwser = function() end} call.anwser()",
		"function helper() end helper()",
		"local t = {} t.x = 1 return t.x",
		"local ok, err = pcall(queue.enqueue, 'sales')",
		"require('hours')",
	} {
		if problems, _ := luaapi.Vet(sb, ok); len(problems) != 0 {
			t.Errorf("%q: %v", ok, problems)
		}
	}
}

// Every shipped policy passes the vet.
func TestShippedPoliciesVetClean(t *testing.T) {
	sb := sandbox.New(sandbox.Limits{})
	defer sb.Close()
	files, _ := filepath.Glob("../../../../lua/policies/*.lua")
	if len(files) == 0 {
		t.Fatal("no policies")
	}
	for _, f := range files {
		src, _ := os.ReadFile(f)
		if problems, err := luaapi.Vet(sb, string(src)); err != nil || len(problems) != 0 {
			t.Errorf("%s: %v %v", f, problems, err)
		}
	}
}
