package config

import (
	"fmt"
	"os"
)

// DefaultInstance is an instance name unique on this host for as long as
// the process runs: "<hostname>-<pid>", or "<fallback>-<pid>" when the
// host has no name. Services whose instances own work (offers, claims)
// default their --instance to it.
func DefaultInstance(fallback string) string {
	h, _ := os.Hostname()
	if h == "" {
		h = fallback
	}
	return fmt.Sprintf("%s-%d", h, os.Getpid())
}
