package e2e

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/fssim"
	"github.com/switchyard-voice/switchyard/pkg/testinfra"
)

// SIGTERM: the gateway stops taking calls, lets the live one finish,
// flushes its events and exits 0.
func TestGatewaySIGTERMDrainsLiveCalls(t *testing.T) {
	natsSrv := testinfra.NewNATS(t)
	sim := fssim.New(fssim.Options{}) // real time: the caller stays 1.5s
	defer sim.Close()
	gw := startGateway(t, natsSrv.URL(), "")
	sim.SetDialplan([]fssim.Route{fssim.SocketRoute(`^8084$`, gw.socket, false)})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	live, err := sim.PlaceCall(ctx, fssim.CallSpec{Destination: "8084", CallerIDNumber: "1000", HangupAfter: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	waitGateway(t, gw, func(r map[string]any) bool {
		d, _ := r["detail"].(map[string]any)
		return d != nil && d["active_sessions"] == float64(1)
	})
	gw.cmd.Process.Signal(syscall.SIGTERM)

	// New calls are no longer taken while the live one goes on.
	time.Sleep(100 * time.Millisecond)
	late, _ := sim.PlaceCall(ctx, fssim.CallSpec{Destination: "8084", CallerIDNumber: "2000"})
	select {
	case <-late.Ended:
	case <-ctx.Done():
		t.Fatal("a call placed after SIGTERM was not refused")
	}
	select {
	case <-gw.exited:
		t.Fatalf("the gateway exited while a call was live: %v\n%s", gw.exitErr, lastLines(gw.log.String(), 30))
	default:
	}
	select {
	case <-live.Ended:
	case <-ctx.Done():
		t.Fatal("the live call did not end")
	}
	select {
	case <-gw.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("the gateway did not exit after its last call")
	}
	var exit *exec.ExitError
	if errors.As(gw.exitErr, &exit) || gw.exitErr != nil {
		t.Fatalf("exit: %v\n%s", gw.exitErr, lastLines(gw.log.String(), 20))
	}
	byCall := readCallEvents(t, natsSrv.URL())
	var types []string
	for _, e := range byCall[live.UUID] {
		types = append(types, e.Type)
	}
	if strings.Join(types, " ") != "call.started call.hangup" {
		t.Fatalf("the drained call's events: %v", types)
	}
	if _, ok := byCall[late.UUID]; ok {
		t.Fatalf("a refused call reached the event log")
	}
}
