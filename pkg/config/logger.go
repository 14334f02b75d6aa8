package config

import (
	"fmt"
	"io"
	"log/slog"
)

// Logger is the JSON logger every service builds from its --log-level
// setting, tagged with the service and instance.
func Logger(out io.Writer, level, service, instance string) (*slog.Logger, error) {
	lv := new(slog.LevelVar)
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: lv})).With("service", service, "instance", instance), nil
}
