// Package apptest holds the conformance suites every implementation of an
// app interface passes: one store suite for the KV bucket, the policy
// directory and core-api alike.
package apptest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/app"
)

// StoreSuite is what every policy store must do for the runner. put makes
// a new version of a policy visible to the store the way production does
// (another client writing the bucket, core-api serving a new script); the
// store may take up to five seconds to see it.
func StoreSuite(t *testing.T, s app.Store, put func(name, src string)) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Get(ctx, "absent"); !errors.Is(err, app.ErrNoPolicy) {
		t.Fatalf("missing policy: %v, want app.ErrNoPolicy", err)
	}
	for _, bad := range []string{"../etc/passwd", "", "a b", "x/y", "%2e%2e"} {
		if _, err := s.Get(ctx, bad); !errors.Is(err, app.ErrNoPolicy) {
			t.Fatalf("%q as a name: %v, want app.ErrNoPolicy", bad, err)
		}
	}
	put("greet", "call.answer()")
	var p1 app.Policy
	WaitTrue(t, func() bool { p, err := s.Get(ctx, "greet"); p1 = p; return err == nil && p.Source == "call.answer()" })
	put("greet", "call.hangup()")
	var p2 app.Policy
	WaitTrue(t, func() bool { p, err := s.Get(ctx, "greet"); p2 = p; return err == nil && p.Source == "call.hangup()" })
	if p1.Version == "" || p1.Version == p2.Version || p2.Name != "greet" {
		t.Fatalf("versions: %+v then %+v", p1, p2)
	}
	// Reading again without a change gives the same version.
	if p, err := s.Get(ctx, "greet"); err != nil || p.Version != p2.Version {
		t.Fatalf("unchanged policy read again: %+v %v, want version %s", p, err, p2.Version)
	}
}

// WaitTrue polls cond for up to five seconds.
func WaitTrue(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
