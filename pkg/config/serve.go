package config

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
)

// Runner is a service: it runs until its context ends.
type Runner interface {
	Run(ctx context.Context) error
}

// Command is a service's main command: its flags, the logger they
// configure, and the service they start.
type Command struct {
	Name string
	// Flags declares the service's flags (its Config.Flags).
	Flags func(*Set)
	// LogLevel and Instance are the config's fields Flags fills: read
	// once the flags are parsed, for the logger.
	LogLevel, Instance *string
	// Start builds the service from its parsed config.
	Start func(*slog.Logger) (Runner, error)
	// Others lists the binary's other commands, printed after --help.
	Others string
}

// Serve parses args (and the environment through getenv), makes the
// JSON logger and runs the service until ctx ends. Bad flags and --help
// return 2 (--help's error is ErrHelp), a service that cannot start 1.
func (c Command) Serve(ctx context.Context, args []string, getenv func(string) string, errOut io.Writer) (int, error) {
	set := New(c.Name)
	set.Getenv(getenv)
	set.SetOutput(errOut)
	c.Flags(set)
	if err := set.Parse(args); err != nil {
		if errors.Is(err, ErrHelp) && c.Others != "" {
			fmt.Fprintln(errOut, "\nOther commands:\n"+c.Others)
		}
		return 2, err
	}
	log, err := Logger(errOut, *c.LogLevel, c.Name, *c.Instance)
	if err != nil {
		return 2, err
	}
	svc, err := c.Start(log)
	if err != nil {
		return 1, err
	}
	return 0, svc.Run(ctx)
}
