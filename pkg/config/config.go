// Package config reads a service's settings from flags and environment
// variables, in one place, so that `--help` can list every flag with its
// environment variable and default, and a service reads no os.Getenv
// anywhere else. A flag given on the command line wins over the environment,
// which wins over the default.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Set declares settings and parses them.
type Set struct {
	name     string
	fs       *flag.FlagSet
	envs     map[string]string // flag name → env var
	defaults map[string]string // defaults flag.Func cannot show
	secrets  map[string]bool   // never printed
	errs     []error
	getenv   func(string) string
}

// New starts a set for the program name.
func New(name string) *Set {
	s := &Set{name: name, fs: flag.NewFlagSet(name, flag.ContinueOnError), envs: map[string]string{}, defaults: map[string]string{}, secrets: map[string]bool{}, getenv: os.Getenv}
	s.fs.Usage = func() { s.PrintUsage(s.fs.Output()) }
	return s
}

// Getenv replaces os.Getenv (tests).
func (s *Set) Getenv(f func(string) string) { s.getenv = f }

// declare records a setting's variable; env "" is a flag-only setting (a
// subcommand's argument, say).
func (s *Set) declare(name, env string) (string, bool) {
	s.envs[name] = env
	if env == "" {
		return "", false
	}
	v := s.getenv(env)
	return v, v != ""
}

// String declares a string setting.
func (s *Set) String(p *string, name, env, def, usage string) {
	if v, ok := s.declare(name, env); ok {
		def = v
	}
	s.fs.StringVar(p, name, def, usage)
}

// Secret declares a string setting whose value --help never shows
// (passwords, tokens).
func (s *Set) Secret(p *string, name, env, def, usage string) {
	s.secrets[name] = true
	s.String(p, name, env, def, usage)
}

// SecretList is List whose value --help never shows.
func (s *Set) SecretList(p *[]string, name, env, def, usage string) {
	s.secrets[name] = true
	s.List(p, name, env, def, usage)
}

// Int declares an integer setting.
func (s *Set) Int(p *int, name, env string, def int, usage string) {
	if v, ok := s.declare(name, env); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s=%q: not an integer", env, v))
		} else {
			def = n
		}
	}
	s.fs.IntVar(p, name, def, usage)
}

// Bool declares a boolean setting.
func (s *Set) Bool(p *bool, name, env string, def bool, usage string) {
	if v, ok := s.declare(name, env); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s=%q: not a boolean (true/false)", env, v))
		} else {
			def = b
		}
	}
	s.fs.BoolVar(p, name, def, usage)
}

// Duration declares a duration setting ("250ms", "5s").
func (s *Set) Duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	if v, ok := s.declare(name, env); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s=%q: not a duration (e.g. 250ms, 5s)", env, v))
		} else {
			def = d
		}
	}
	s.fs.DurationVar(p, name, def, usage)
}

// List declares a comma-separated list setting.
func (s *Set) List(p *[]string, name, env, def, usage string) {
	if v, ok := s.declare(name, env); ok {
		def = v
	}
	*p = splitList(def)
	s.fs.Func(name, usage+" (comma-separated)", func(v string) error {
		*p = splitList(v)
		return nil
	})
	s.defaults[name] = def
}

func splitList(v string) []string {
	var out []string
	for _, x := range strings.Split(v, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// ErrHelp is returned by Parse when --help was asked for; the usage has
// been printed.
var ErrHelp = flag.ErrHelp

// Parse reads args (without the program name). Environment variables that
// do not parse are reported together.
func (s *Set) Parse(args []string) error {
	if err := s.fs.Parse(args); err != nil {
		return err
	}
	if s.fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v (settings are flags: see --help)", s.fs.Args())
	}
	return errors.Join(s.errs...)
}

// Args returns the arguments left after the flags (for subcommands).
func (s *Set) Args() []string { return s.fs.Args() }

// SetOutput redirects usage output.
func (s *Set) SetOutput(w io.Writer) { s.fs.SetOutput(w) }

// PrintUsage lists every flag with its environment variable and default.
func (s *Set) PrintUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s [flags]\n\nA flag can also be set by the environment variable shown.\n\n", s.name)
	var names []string
	s.fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	sort.Strings(names)
	for _, n := range names {
		f := s.fs.Lookup(n)
		def := f.DefValue
		if d, ok := s.defaults[n]; ok {
			def = d
		}
		var notes []string
		if env := s.envs[n]; env != "" {
			notes = append(notes, "env "+env)
		}
		switch {
		case s.secrets[n]:
			notes = append(notes, "secret")
		case def != "":
			notes = append(notes, fmt.Sprintf("default %q", def))
		}
		fmt.Fprintf(w, "  --%s", n)
		if len(notes) > 0 {
			fmt.Fprintf(w, "  (%s)", strings.Join(notes, ", "))
		}
		fmt.Fprintf(w, "\n      %s\n", f.Usage)
	}
}
