// Package schedulefile serves schedule.is_open from the --schedules JSON
// file (internal/hours parses it), re-read when the file changes.
package schedulefile

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/hours"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/luaapi"
)

// File is schedule.is_open's schedules: the --schedules file,
// re-read when it changes (checked at most once a second), so operators
// edit holidays without a restart. A changed file that does not parse is
// logged and the previous schedules stay.
type File struct {
	path string
	log  *slog.Logger

	mu      sync.Mutex
	set     *hours.Set
	mtime   time.Time
	size    int64
	checked time.Time
}

// Open loads path. A file that exists but does not parse is an error (a
// start stops with the parser's message); a missing file is allowed, and
// schedule.is_open then answers "not available" until it appears.
func Open(path string, log *slog.Logger) (*File, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &File{path: path, log: log}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.reload(true); err != nil {
		return nil, fmt.Errorf("schedules %s: %w", path, err)
	}
	return f, nil
}

// reload reads the file when it changed; called with mu held.
func (f *File) reload(force bool) error {
	now := time.Now()
	if !force && now.Sub(f.checked) < time.Second {
		return nil
	}
	f.checked = now
	fi, err := os.Stat(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		f.set = nil
		return nil
	}
	if err != nil {
		return err
	}
	if !force && fi.ModTime().Equal(f.mtime) && fi.Size() == f.size {
		return nil
	}
	set, err := hours.LoadFile(f.path)
	if err != nil {
		return err
	}
	f.set, f.mtime, f.size = set, fi.ModTime(), fi.Size()
	if !force {
		f.log.Info("schedules reloaded", "file", f.path, "schedules", len(set.Names()))
	}
	return nil
}

// IsOpen implements luaapi.Schedules.
func (f *File) IsOpen(name string, t time.Time) (bool, error) {
	f.mu.Lock()
	if err := f.reload(false); err != nil {
		f.log.Error("schedules file changed but cannot be used; the previous schedules stay", "file", f.path, "err", err)
	}
	set := f.set
	f.mu.Unlock()
	if set == nil {
		return false, fmt.Errorf("%w: no schedules file (%s; --schedules)", luaapi.ErrNotAvailable, f.path)
	}
	s, ok := set.Get(name)
	if !ok {
		return false, fmt.Errorf("no schedule named %q in %s", name, f.path)
	}
	return s.IsOpen(t), nil
}
