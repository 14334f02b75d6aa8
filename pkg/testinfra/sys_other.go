//go:build !linux

package testinfra

import "os/exec"

// startCmd starts cmd. Without Linux's parent-death signal a server
// outlives a test binary that crashes before its cleanup runs.
func startCmd(cmd *exec.Cmd) error { return cmd.Start() }

// portRange is below the ephemeral ranges of macOS and the BSDs.
func portRange() (lo, hi int) { return 10000, 32767 }

// reservePort reserves nothing: the bind check alone decides.
func reservePort(int) (release func(), ok bool) { return func() {}, true }
