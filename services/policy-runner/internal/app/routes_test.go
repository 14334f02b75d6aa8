package app

import (
	"errors"
	"testing"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/luaapi"
)

func TestRouteTableChoosesInOrder(t *testing.T) {
	r := &Runner{cfg: Config{Default: "default"}}
	err := r.SetRoutes([]Route{
		{"8084", "exact"}, {"80*", "short_prefix"}, {"808*", "long_prefix"},
		{"~^1800[0-9]{7}$", "tollfree"}, {"~^[0-9]{3}$", "three_digits"}, {"*", "catch_all_prefix"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ dest, vars, want string }{
		{"8084", "", "exact"},
		{"8085", "", "long_prefix"},
		{"8000", "", "short_prefix"},
		{"18005551234", "", "catch_all_prefix"}, // a prefix ("*") beats a pattern
		{"8084", "forced", "forced"},
	} {
		c := luaapi.Call{DestinationNumber: tc.dest}
		if tc.vars != "" {
			c.Variables = map[string]string{"switchyard_policy": tc.vars}
		}
		if got := r.Choose(c); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.dest, got, tc.want)
		}
	}
	r.SetRoutes([]Route{{"~^1800[0-9]{7}$", "tollfree"}, {"~^[0-9]{3}$", "three_digits"}})
	for dest, want := range map[string]string{"18005551234": "tollfree", "123": "three_digits", "1234": "default"} {
		if got := r.Choose(luaapi.Call{DestinationNumber: dest}); got != want {
			t.Errorf("%s: got %s, want %s", dest, got, want)
		}
	}
}

func TestBadRoutesAreRefusedWhole(t *testing.T) {
	r := &Runner{cfg: Config{Default: "default"}}
	r.SetRoutes([]Route{{"1", "one"}})
	for _, bad := range [][]Route{
		{{"1", "one"}, {"~(", "broken_regex"}},
		{{"1", "../etc"}},
		{{"", "empty"}},
		{{"1 2", "space"}},
		{{"1", "a"}, {"1", "b"}},
	} {
		if err := r.SetRoutes(bad); !errors.Is(err, ErrBadRoute) {
			t.Errorf("%v: %v", bad, err)
		}
	}
	if got := r.Choose(luaapi.Call{DestinationNumber: "1"}); got != "one" {
		t.Fatalf("a refused table replaced the good one: %s", got)
	}
}
