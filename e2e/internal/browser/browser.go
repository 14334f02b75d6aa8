// Package browser drives a headless Chromium for e2e tests of the pages the
// services serve (the queue-distributor's wallboard): open a URL, wait for a
// JavaScript condition, read values out of the page. It runs Debian's
// chromium package through chromedp, one browser per Browser, and makes sure
// no Chromium process outlives the test.
package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const (
	// defaultExecPath is where Debian's chromium package puts the browser
	// (a shell script that execs /usr/lib/chromium/chromium).
	defaultExecPath = "/usr/bin/chromium"

	// startTimeout bounds the launch: a cold Chromium on a busy 2-core CI
	// runner takes a few seconds, a broken one never answers.
	startTimeout = 30 * time.Second

	// pollEvery is how often WaitFor evaluates its condition.
	pollEvery = 50 * time.Millisecond

	// keepConsole is how many console lines a Page keeps for error reports.
	keepConsole = 50
)

// Browser is one headless Chromium with its own temporary profile.
type Browser struct {
	t           testing.TB
	ctx         context.Context // the browser's root chromedp context
	cancel      context.CancelFunc
	allocCancel context.CancelFunc
	root        string         // temporary: profile, config and cache
	pgid        int            // Chromium's own process group; 0 before it started
	readers     sync.WaitGroup // the pages' console readers
	closeOnce   sync.Once
}

// New starts Chromium and stops it when the test ends (or at Close). Without
// a chromium binary it skips the test, unless the environment variable CI is
// set: on CI a missing browser is a broken setup and fails the test.
func New(t testing.TB) *Browser {
	t.Helper()
	exe, err := execPath()
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("chromium is not installed (%v); run make setup to install it", err)
		}
		t.Fatalf("chromium is not installed and CI is set: run make setup (%v)", err)
	}
	root, err := os.MkdirTemp("", "switchyard-chromium-")
	if err != nil {
		t.Fatal(err)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", "new"),
		// As root in a container there is no user namespace for the sandbox.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		// A container's /dev/shm is often 64 MB, too small for Chromium.
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1920, 1080), // a wall TV
		chromedp.UserDataDir(filepath.Join(root, "profile")),
		// Debian's build starts a crash handler that keeps its database
		// under $XDG_CONFIG_HOME, not in the profile: keep it in root too,
		// out of the user's home and findable by its command line.
		chromedp.Env("XDG_CONFIG_HOME="+filepath.Join(root, "config"), "XDG_CACHE_HOME="+filepath.Join(root, "cache")),
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			// Its own process group holds every helper process, including
			// the GPU and network ones whose command lines name nothing of
			// ours; Pdeathsig kills the browser if the test binary dies.
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		}),
	)
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	b := &Browser{t: t, ctx: ctx, cancel: cancel, allocCancel: allocCancel, root: root}
	t.Cleanup(b.Close)

	// The first Run launches the browser; its context must live as long as
	// the browser, so the launch is bounded by a timer and not a deadline.
	timer := time.AfterFunc(startTimeout, cancel)
	err = chromedp.Do(ctx)
	if !timer.Stop() && err == nil {
		err = errors.New("timed out")
	}
	if p := chromedp.FromContext(ctx).Browser; p != nil && p.Process() != nil {
		b.pgid = p.Process().Pid
	}
	if err != nil {
		t.Fatalf("start %s: %v", exe, err)
	}
	return b
}

// Close stops the browser and every process it started, and removes its
// profile. Open pages end with it. It is safe to call more than once.
func (b *Browser) Close() {
	b.closeOnce.Do(func() {
		b.cancel()      // kills the browser: the first context owns it
		b.allocCancel() // waits for it to exit
		b.readers.Wait()
		if left := b.killLeftovers(); len(left) > 0 {
			b.t.Errorf("browser: chromium processes %v are still running after Close", left)
			return // removing the directory under them would only fail
		}
		if err := os.RemoveAll(b.root); err != nil {
			b.t.Errorf("browser: remove %s: %v", b.root, err)
		}
	})
}

// killLeftovers kills Chromium's helper processes, which can outlive the
// browser a while and fork as it dies, until none has been seen for a few
// passes; it returns those still alive after five seconds.
func (b *Browser) killLeftovers() []int {
	const quietPasses = 3
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for quiet := 0; quiet < quietPasses; {
		pids := b.processes()
		if len(pids) == 0 {
			quiet++
		} else {
			quiet = 0
			for _, pid := range pids {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		select {
		case <-deadline.C:
			return b.processes()
		case <-tick.C:
		}
	}
	return nil
}

// processes lists the live processes of this browser: those in its process
// group, and those whose command line names its directory (the crash
// handler starts its own session).
func (b *Browser) processes() []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone
		}
		// "pid (comm) state ppid pgrp ...": comm may hold spaces and parens.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue // dead, waiting to be reaped
		}
		if pgrp, _ := strconv.Atoi(f[2]); b.pgid != 0 && pgrp == b.pgid {
			pids = append(pids, pid)
			continue
		}
		if cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && bytes.Contains(cmdline, []byte(b.root)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Page is one tab.
type Page struct {
	ctx    context.Context // the tab's chromedp context
	cancel context.CancelFunc

	mu      sync.Mutex
	console []string // the last keepConsole console lines and exceptions
}

// Open opens url in a new tab and waits for it to load.
func (b *Browser) Open(ctx context.Context, url string) (*Page, error) {
	tabCtx, cancel := chromedp.NewContext(b.ctx)
	// The first Run on a tab creates it and ties it to the context it gets,
	// so that context is the tab's own; ctx only cancels the attempt.
	stop := context.AfterFunc(ctx, cancel)
	err := chromedp.Do(tabCtx)
	if !stop() {
		err = ctx.Err()
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open a tab: %w", err)
	}
	p := &Page{ctx: tabCtx, cancel: cancel}

	messages := chromedp.Console(tabCtx) // subscribed now, before the page runs
	b.readers.Go(func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			p.note(m.String())
		}
	})

	if _, err := run(ctx, p, chromedp.Navigate(url)); err != nil {
		p.Close()
		return nil, fmt.Errorf("open %s: %w", url, err)
	}
	return p, nil
}

// Close closes the tab.
func (p *Page) Close() { p.cancel() }

// WaitFor evaluates the JavaScript expression jsCondition every 50 ms until
// it is truthy, or ctx ends. An expression that throws counts as false; the
// error on timeout carries its last exception and the page's console.
func (p *Page) WaitFor(ctx context.Context, jsCondition string) error {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	var last error
	for {
		ok, err := run(ctx, p, chromedp.Evaluate[bool]("!!("+jsCondition+")"))
		switch {
		case err == nil && ok:
			return nil
		case ctx.Err() != nil:
			return p.failure(fmt.Errorf("waiting for %s: %w (last error: %v)", jsCondition, ctx.Err(), last))
		case err != nil:
			var exc *chromedp.ExceptionError
			if !errors.As(err, &exc) {
				return p.failure(fmt.Errorf("waiting for %s: %w", jsCondition, err))
			}
			last = err
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// Eval evaluates the JavaScript expression js, awaiting it if it is a
// promise, and decodes its JSON value into out (ignored when out is nil).
func (p *Page) Eval(ctx context.Context, js string, out any) error {
	raw, err := run(ctx, p, chromedp.Evaluate[[]byte](js, chromedp.EvalAwaitPromise))
	if err != nil {
		return p.failure(fmt.Errorf("evaluate %s: %w", js, err))
	}
	if out == nil {
		return nil
	}
	if len(raw) == 0 {
		return fmt.Errorf("evaluate %s: the result is undefined", js)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("evaluate %s: decode %s: %w", js, raw, err)
	}
	return nil
}

// Console returns the page's last console lines and uncaught exceptions.
func (p *Page) Console() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.console...)
}

func (p *Page) note(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.console) == keepConsole {
		p.console = append(p.console[:0], p.console[1:]...)
	}
	p.console = append(p.console, line)
}

// failure adds the console to err: the page's own view of what went wrong.
func (p *Page) failure(err error) error {
	if c := p.Console(); len(c) > 0 {
		return fmt.Errorf("%w\npage console:\n  %s", err, strings.Join(c, "\n  "))
	}
	return err
}

// run runs a on the tab until ctx ends. Actions run on a child of the tab's
// context: a chromedp context that ends closes its tab, a child does not.
func run[T any](ctx context.Context, p *Page, a chromedp.Action[T]) (T, error) {
	rctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()
	v, err := chromedp.Run(rctx, a)
	if err != nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	return v, err
}

func execPath() (string, error) {
	if p, err := exec.LookPath("chromium"); err == nil {
		return p, nil
	}
	if _, err := os.Stat(defaultExecPath); err != nil {
		return "", fmt.Errorf("no chromium in PATH or at %s", defaultExecPath)
	}
	return defaultExecPath, nil
}
