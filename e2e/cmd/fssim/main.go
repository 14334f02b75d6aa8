// Command fssim runs the FreeSWITCH simulator on its own, for demos and load:
// an event socket to point esl-gateway's --nodes at, a dialplan that hands
// 8084 to a socket listener, and optionally a stream of sample callers.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/fssim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "fssim:", err)
		os.Exit(1)
	}
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("fssim", flag.ContinueOnError)
	listen := fs.String("listen", env("FSSIM_LISTEN", "127.0.0.1:8021"), "event socket address (env FSSIM_LISTEN)")
	password := fs.String("password", env("FSSIM_PASSWORD", "ClueCon"), "event socket password (env FSSIM_PASSWORD)")
	socket := fs.String("socket", env("FSSIM_SOCKET", "127.0.0.1:8084"), "where the dialplan's socket application connects (env FSSIM_SOCKET)")
	calls := fs.Int("calls", 0, "sample calls to place to 8084, 0 for none (env FSSIM_CALLS)")
	rate := fs.Float64("rate", 10, "sample calls per second (env FSSIM_RATE)")
	hold := fs.Duration("hold", 5*time.Second, "how long each sample caller stays (env FSSIM_HOLD)")
	scale := fs.Float64("time-scale", 1, "multiplies every simulated duration (env FSSIM_TIME_SCALE)")
	fmt.Sscan(env("FSSIM_CALLS", "0"), calls)
	fmt.Sscan(env("FSSIM_RATE", "10"), rate)
	if d, err := time.ParseDuration(env("FSSIM_HOLD", "5s")); err == nil {
		*hold = d
	}
	fmt.Sscan(env("FSSIM_TIME_SCALE", "1"), scale)
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	sim := fssim.New(fssim.Options{Password: *password, TimeScale: *scale, Logger: log, Dialplan: fssim.DefaultDialplan(*socket)})
	defer sim.Close()
	ln, err := sim.ListenInbound(*listen)
	if err != nil {
		return err
	}
	log.Info("fssim ready", "event_socket", ln.Addr().String(), "socket_target", *socket)
	if *calls > 0 && *rate > 0 {
		tick := time.NewTicker(time.Duration(float64(time.Second) / *rate))
		defer tick.Stop()
		for i := 1; i <= *calls; i++ {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			}
			if _, err := sim.PlaceCall(ctx, fssim.CallSpec{Destination: "8084", CallerIDNumber: fmt.Sprintf("+4420%08d", i), HangupAfter: *hold}); err != nil {
				return err
			}
		}
		log.Info("all sample calls placed", "calls", *calls)
	}
	<-ctx.Done()
	return nil
}
