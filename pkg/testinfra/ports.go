package testinfra

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
)

// pickPort returns a loopback port that nothing listens on, outside the
// kernel's ephemeral range, and reserved for this caller until release is
// called. The server may still lose the port to an unrelated process before
// it binds; newServer retries then.
func pickPort() (port int, release func(), err error) {
	lo, hi := portRange()
	for range 200 {
		p := lo + rand.IntN(hi-lo+1)
		release, ok := reservePort(p)
		if !ok {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			release()
			continue
		}
		ln.Close()
		return p, release, nil
	}
	return 0, nil, fmt.Errorf("no free loopback port in %d-%d after 200 tries", lo, hi)
}

// FreeAddr returns a loopback "host:port" for a process the test starts
// itself. The port lies outside the kernel's ephemeral range, so outgoing
// connections of this or any other test cannot take it between the pick and
// the child's bind, and it stays reserved against every other user of this
// package on the machine until the test ends. A net.Listen on ":0" is the
// better choice when the listener lives in the test's own process.
func FreeAddr(t testing.TB) string {
	t.Helper()
	port, release, err := pickPort()
	if err != nil {
		t.Fatalf("testinfra: %v", err)
	}
	t.Cleanup(release)
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}
