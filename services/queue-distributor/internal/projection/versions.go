package projection

import (
	"context"
	"strings"
	"sync"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/domain"
)

// versions remembers, per agent, the sequence of the last event this
// Store saw applied to it while it exists: the version a command on the
// agent appends after. An agent's status change is the first hop from
// "agent becomes available" to its phone ringing, and reading the
// version from Redis was a round trip on that path (~0.1 ms, 0.3 ms at
// p99) that this saves.
//
// A remembered version is never ahead of the log — it comes from events
// the log holds — but may be behind it: another instance's event this
// instance's follower has not delivered yet, an event the projection
// ignored. That costs no correctness: the append expects the version
// (Nats-Expected-Last-Subject-Sequence), JetStream refuses a stale one,
// and the command reads the projection and tries again. What must never
// be remembered is an agent that is not there: an entry is made only by
// an event applied to an existing agent (or a read of it) and removed by
// its deletion or by any event the projection ignored (which may have
// been about an agent already gone); events noted out of order can only
// leave an entry behind the log, never wrong about the agent's
// existence at the sequence it names.
type versions struct {
	mu sync.Mutex
	m  map[string]uint64
}

// noted records what applying ev did (status as Apply reports it).
func (v *versions) noted(ev Event, status string) {
	if !strings.HasPrefix(ev.Type, "agent.") {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case status == Applied && ev.Type != domain.AgentDeleted:
		v.raiseLocked(ev.ID, ev.Seq)
	case status == Applied || status == Ignored:
		delete(v.m, ev.ID)
	}
	// Dup: applied before, noted then. Gap: not applied.
}

// saw records a version read from the projection.
func (v *versions) saw(id string, seq uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.raiseLocked(id, seq)
}

func (v *versions) raiseLocked(id string, seq uint64) {
	if v.m == nil {
		v.m = map[string]uint64{}
	}
	if seq > v.m[id] {
		v.m[id] = seq
	}
}

func (v *versions) get(id string) (uint64, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	seq, ok := v.m[id]
	return seq, ok
}

// AgentVersion is the version of an existing agent (ErrNotFound: the
// projection does not hold it). remembered takes the version of the last
// event this Store applied to the agent, without asking Redis, when it
// has one: use it for a first try whose append checks the version, and
// read the projection (remembered false) after a conflict.
func (s *Store) AgentVersion(ctx context.Context, id string, remembered bool) (uint64, error) {
	if remembered {
		if v, ok := s.versions.get(id); ok {
			return v, nil
		}
	}
	a, err := s.Agent(ctx, id)
	if err != nil {
		return 0, err
	}
	s.versions.saw(id, a.Version)
	return a.Version, nil
}
