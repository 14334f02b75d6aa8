package fssim

import (
	"strings"
	"sync"

	"github.com/switchyard-voice/switchyard/pkg/esl"
)

// subscription is what one ESL listener asked for: event names in a
// format, narrowed by filters, as mod_event_socket keeps it.
type subscription struct {
	mu       sync.Mutex
	format   string
	all      bool
	names    map[string]bool
	custom   map[string]bool // CUSTOM subclasses
	filters  [][2]string
	uuidOnly string // myevents <uuid>
}

func newSubscription() *subscription {
	return &subscription{format: "plain", names: map[string]bool{}, custom: map[string]bool{}}
}

// add handles "event <format> <names...>".
func (s *subscription) add(format string, names []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.format = format
	for i := 0; i < len(names); i++ {
		switch n := names[i]; {
		case n == "ALL":
			s.all = true
		case n == "CUSTOM":
			s.names["CUSTOM"] = len(names) == i+1
			for _, sub := range names[i+1:] {
				s.custom[sub] = true
			}
			return
		default:
			s.names[n] = true
		}
	}
}

func (s *subscription) nix(names []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range names {
		if n == "ALL" {
			s.all = false
		}
		delete(s.names, n)
		delete(s.custom, n)
	}
}

func (s *subscription) clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all, s.names, s.custom, s.uuidOnly = false, map[string]bool{}, map[string]bool{}, ""
}

func (s *subscription) addFilter(h, v string) {
	s.mu.Lock()
	s.filters = append(s.filters, [2]string{h, v})
	s.mu.Unlock()
}

func (s *subscription) deleteFilter(h, v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.filters[:0]
	for _, f := range s.filters {
		if !(strings.EqualFold(f[0], h) && (v == "" || f[1] == v)) {
			kept = append(kept, f)
		}
	}
	s.filters = kept
}

// wants reports whether ev goes to this listener, and in which format.
func (s *subscription) wants(ev *esl.Event) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := ev.Name()
	ok := s.all || s.names[name]
	if name == "CUSTOM" && !s.all && !s.names["CUSTOM"] {
		ok = s.custom[ev.Get("Event-Subclass")]
	}
	if s.uuidOnly != "" && ev.UniqueID() != s.uuidOnly {
		ok = false
	}
	if ok && len(s.filters) > 0 {
		ok = false
		for _, f := range s.filters {
			if ev.Get(f[0]) == f[1] {
				ok = true
				break
			}
		}
	}
	return s.format, ok
}
