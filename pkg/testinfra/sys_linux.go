package testinfra

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// forker is the one goroutine, locked to its OS thread for good, that
// starts every server. Linux delivers the parent-death signal when the
// thread that forked the child exits, not the process: a server started
// from a goroutine locked to a thread that later ends would be SIGKILLed in
// the middle of a test.
var forker struct {
	once sync.Once
	reqs chan forkReq
}

type forkReq struct {
	cmd  *exec.Cmd
	done chan error
}

// startCmd starts cmd so that it dies with the test binary.
func startCmd(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	forker.once.Do(func() {
		forker.reqs = make(chan forkReq)
		go func() {
			runtime.LockOSThread() // never unlocked, so the thread never exits
			for r := range forker.reqs {
				r.done <- r.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	forker.reqs <- forkReq{cmd, done}
	return <-done
}

// portRange is where ports are picked: below the ephemeral range when there
// is room, else above it.
func portRange() (lo, hi int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 10000, 32767
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 10000, 32767
	}
	elo, err1 := strconv.Atoi(f[0])
	ehi, err2 := strconv.Atoi(f[1])
	switch {
	case err1 != nil || err2 != nil:
		return 10000, 32767
	case elo-1-10000 >= 1000:
		return 10000, elo - 1
	case 65535-(ehi+1) >= 1000:
		return ehi + 1, 65535
	default:
		return 1024, 65535
	}
}

// fOFDSetlk is F_OFD_SETLK, which package syscall does not define. Open
// file description locks conflict between two opens in the same process
// too, so a test binary's own servers are kept apart as well as other
// binaries'; the kernel drops them when the process dies, so a crashed test
// binary holds no ports.
const fOFDSetlk = 37

// reservePort takes an exclusive lock on byte port of a lock file shared by
// every user of this package on the machine. ok is false when someone else
// holds it. Where the lock file cannot be used (another user's, old
// kernel), reservation is skipped and the bind check alone decides.
func reservePort(port int) (release func(), ok bool) {
	path := filepath.Join(os.TempDir(), "switchyard-testinfra-ports.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return func() {}, true
	}
	f.Chmod(0o666) // so other users can lock it too; fails unless it is ours
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: io.SeekStart, Start: int64(port), Len: 1}
	if err := syscall.FcntlFlock(f.Fd(), fOFDSetlk, &lk); err != nil {
		f.Close()
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) {
			return nil, false
		}
		return func() {}, true
	}
	return func() { f.Close() }, true
}
