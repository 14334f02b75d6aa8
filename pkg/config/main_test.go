package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"testing"
)

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		code    int
		err     error
		want    int
		printed string
	}{
		{0, nil, 0, ""},
		{3, nil, 3, ""},
		{2, ErrHelp, 2, ""},
		{0, fmt.Errorf("parse: %w", flag.ErrHelp), 0, ""},
		{0, errors.New("listen: address in use"), 1, "svc: listen: address in use\n"},
		{2, errors.New("--workers: not a number"), 2, "svc: --workers: not a number\n"},
	} {
		var out bytes.Buffer
		if got := exitCode("svc", tc.code, tc.err, &out); got != tc.want || out.String() != tc.printed {
			t.Errorf("exitCode(%d, %v) = %d, printed %q; want %d, %q", tc.code, tc.err, got, out.String(), tc.want, tc.printed)
		}
	}
}
