package testinfra

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
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
