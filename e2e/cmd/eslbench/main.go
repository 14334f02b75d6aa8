// Command eslbench races pkg/esl against modesl, the independent Node.js ESL
// library, on the same recorded FreeSWITCH bytes (the plain-event call of
// transcript inbound/06), one core each, side by side in one run. It ends
// with "ratio: N.NN", pkg/esl's events/s divided by modesl's.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/esl"
	"github.com/switchyard-voice/switchyard/pkg/esl/transcript"
)

type result struct {
	Impl         string  `json:"impl"`
	Version      string  `json:"version"`
	Events       int64   `json:"events"`
	Frames       int64   `json:"frames"`
	Bytes        int64   `json:"bytes"`
	Seconds      float64 `json:"seconds"`
	EventsPerSec float64 `json:"events_per_sec"`
	MBPerSec     float64 `json:"mb_per_sec"`
	AllocsPerEv  float64 `json:"allocs_per_event,omitempty"`
	BytesPerEv   float64 `json:"bytes_per_event,omitempty"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "eslbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	seconds := flag.Float64("seconds", 3, "how long each decoder runs (env ESLBENCH_SECONDS)")
	name := flag.String("transcript", "inbound/06-events-plain-call", "recorded exchange whose FreeSWITCH bytes are decoded")
	node := flag.String("node", "node", "Node.js binary")
	flag.Parse()
	if v := os.Getenv("ESLBENCH_SECONDS"); v != "" {
		fmt.Sscanf(v, "%g", seconds)
	}
	tr, err := transcript.Load(*name)
	if err != nil {
		return err
	}
	stream := tr.Stream(transcript.FromFS)
	dir, err := os.MkdirTemp("", "eslbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	raw := filepath.Join(dir, "stream.bin")
	if err := os.WriteFile(raw, stream, 0o600); err != nil {
		return err
	}

	fmt.Printf("input: %s, %d bytes per pass; each decoder runs %.1fs on one core\n", *name, len(stream), *seconds)
	goRes, err := benchGo(stream, time.Duration(*seconds*float64(time.Second)))
	if err != nil {
		return fmt.Errorf("pkg/esl: %w", err)
	}
	nodeRes, err := benchModesl(ctx, *node, raw, *seconds)
	if err != nil {
		return fmt.Errorf("modesl: %w (run `make setup` to install it)", err)
	}
	fmt.Printf("%-8s %-10s %12s %10s %14s %14s\n", "impl", "version", "events/s", "MB/s", "allocs/event", "bytes/event")
	for _, r := range []result{goRes, nodeRes} {
		allocs, b := "-", "-"
		if r.AllocsPerEv > 0 {
			allocs, b = fmt.Sprintf("%.1f", r.AllocsPerEv), fmt.Sprintf("%.0f", r.BytesPerEv)
		}
		fmt.Printf("%-8s %-10s %12.0f %10.1f %14s %14s\n", r.Impl, r.Version, r.EventsPerSec, r.MBPerSec, allocs, b)
	}
	if nodeRes.EventsPerSec <= 0 {
		return errors.New("modesl decoded no events")
	}
	fmt.Printf("ratio: %.2f\n", goRes.EventsPerSec/nodeRes.EventsPerSec)
	return nil
}

// benchGo decodes the stream over and over for d on one core, as a client
// reading a socket would: frame, decode the event, look its name up.
func benchGo(stream []byte, d time.Duration) (result, error) {
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	src := bytes.NewReader(stream)
	var res result
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	for time.Since(start) < d {
		src.Reset(stream)
		r := esl.NewReader(src, esl.Limits{})
		for {
			m, err := r.ReadMessage()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return res, err
			}
			res.Frames++
			if ev, err := m.Event(); err == nil && ev.Name() != "" {
				res.Events++
			}
		}
		res.Bytes += int64(len(stream))
	}
	res.Seconds = time.Since(start).Seconds()
	runtime.ReadMemStats(&after)
	res.Impl, res.Version = "pkg/esl", runtime.Version()
	res.EventsPerSec = float64(res.Events) / res.Seconds
	res.MBPerSec = float64(res.Bytes) / res.Seconds / 1e6
	res.AllocsPerEv = float64(after.Mallocs-before.Mallocs) / float64(res.Events)
	res.BytesPerEv = float64(after.TotalAlloc-before.TotalAlloc) / float64(res.Events)
	return res, nil
}

func benchModesl(ctx context.Context, node, raw string, seconds float64) (result, error) {
	script, err := modeslDir()
	if err != nil {
		return result{}, err
	}
	cmd := exec.CommandContext(ctx, node, filepath.Join(script, "bench-decode.js"), raw, "--seconds", fmt.Sprint(seconds))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return result{}, err
	}
	var res result
	if err := json.Unmarshal(bytes.TrimSpace(out), &res); err != nil {
		return result{}, fmt.Errorf("reading its result %q: %w", out, err)
	}
	return res, nil
}

// modeslDir finds e2e/modesl next to this source file.
func modeslDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate e2e/modesl")
	}
	dir := filepath.Join(filepath.Dir(file), "..", "..", "modesl")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "modesl")); err != nil {
		return "", fmt.Errorf("modesl is not installed in %s", dir)
	}
	return dir, nil
}
