// Package e2e holds the end-to-end tests: every part as it runs for real.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/fssim"
	"github.com/switchyard-voice/switchyard/pkg/testinfra"
)

type step map[string]any

// nodeScript starts one of the modesl harness scripts and returns its
// output lines as they come.
func nodeScript(t *testing.T, ctx context.Context, script string, args ...string) <-chan step {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node not found: run \"make setup\" or \"sudo apt-get install nodejs npm\"")
	}
	dir, _ := filepath.Abs("modesl")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "modesl")); err != nil {
		t.Fatal("modesl is not installed: run \"make setup\" (npm ci in e2e/modesl)")
	}
	cmd := exec.CommandContext(ctx, node, append([]string{filepath.Join(dir, script)}, args...)...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	out := make(chan step, 64)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var s step
			if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
				s = step{"step": "unparsable", "line": sc.Text()}
			}
			out <- s
		}
	}()
	return out
}

func collect(t *testing.T, steps <-chan step, until string) []step {
	t.Helper()
	var all []step
	for s := range steps {
		all = append(all, s)
		if s["step"] == "error" {
			t.Fatalf("modesl: %v (after %v)", s["message"], all)
		}
		if s["step"] == until {
			return all
		}
	}
	t.Fatalf("modesl stopped before %q: %v", until, all)
	return nil
}

// modesl's inbound Connection works against the simulator as against
// FreeSWITCH: auth (and refusal), api, bgapi originate with channel
// variables, events, uuid_kill.
func TestModeslInboundAgainstSimulator(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sim := fssim.New(fssim.Options{TimeScale: 0.01})
	defer sim.Close()
	ln, err := sim.ListenInbound("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	steps := collect(t, nodeScript(t, ctx, "inbound-check.js", "--host", host, "--port", port, "--password", "ClueCon"), "done")

	var bgapiUUID string
	events := map[string]bool{}
	for _, s := range steps {
		switch s["step"] {
		case "auth_wrong_password":
			if s["ok"] != false {
				t.Errorf("wrong password: %v", s)
			}
		case "api":
			body, _ := s["body"].(string)
			switch s["cmd"] {
			case "status":
				if !strings.Contains(body, "is ready") {
					t.Errorf("status: %q", body)
				}
			case "originate user/nobody":
				if body != "-ERR SUBSCRIBER_ABSENT\n" {
					t.Errorf("failing originate: %q", body)
				}
			case "uuid_kill":
				if body != "+OK\n" {
					t.Errorf("uuid_kill: %q", body)
				}
			}
		case "bgapi":
			body, _ := s["body"].(string)
			if !strings.HasPrefix(body, "+OK ") {
				t.Fatalf("bgapi originate: %q", body)
			}
			bgapiUUID = strings.TrimSpace(strings.TrimPrefix(body, "+OK "))
		case "event":
			events[fmt.Sprint(s["name"], ":", s["uuid"])] = true
		}
	}
	for _, name := range []string{"CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_HANGUP"} {
		if !events[name+":"+bgapiUUID] {
			t.Errorf("modesl did not receive %s for %s (got %v)", name, bgapiUUID, events)
		}
	}
}

// modesl's outbound Server takes the simulator's socket calls and answers,
// plays and hangs them up.
func TestModeslOutboundServerTakesSimulatedCalls(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, port, _ := net.SplitHostPort(testinfra.FreeAddr(t))
	const calls = 3
	steps := nodeScript(t, ctx, "outbound-check.js", "--port", port, "--calls", fmt.Sprint(calls))
	collect(t, steps, "listening")

	sim := fssim.New(fssim.Options{TimeScale: 0.01, Dialplan: fssim.DefaultDialplan("127.0.0.1:" + port)})
	defer sim.Close()
	var chans []*fssim.Channel
	for i := 0; i < calls; i++ {
		c, err := sim.PlaceCall(ctx, fssim.CallSpec{Destination: "8084", CallerIDNumber: fmt.Sprintf("+4412345%d", i), CallerIDName: "Alice"})
		if err != nil {
			t.Fatal(err)
		}
		chans = append(chans, c)
	}
	got := collect(t, steps, "done")
	connects, answered, played, hungup := 0, 0, 0, 0
	for _, s := range got {
		switch s["step"] {
		case "connect":
			connects++
			if s["destination"] != "8084" || !strings.HasPrefix(fmt.Sprint(s["caller"]), "+4412345") {
				t.Errorf("channel data as modesl read it: %v", s)
			}
		case "executed":
			switch {
			case s["app"] == "answer" && s["response"] == "_none_":
				answered++
			case s["app"] == "playback" && s["response"] == "FILE PLAYED":
				played++
			default:
				t.Errorf("execute: %v", s)
			}
		case "hungup":
			hungup++
		}
	}
	if connects != calls || answered != calls || played != calls || hungup != calls {
		t.Fatalf("connect %d answer %d playback %d hungup %d, want %d each", connects, answered, played, hungup, calls)
	}
	for _, c := range chans {
		select {
		case <-c.Ended:
		case <-ctx.Done():
			t.Fatal("a call did not end")
		}
		if c.Cause() != "NORMAL_CLEARING" || !c.Answered() {
			t.Errorf("call %s: cause %q answered %v", c.UUID, c.Cause(), c.Answered())
		}
	}
}
