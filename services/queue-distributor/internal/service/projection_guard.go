package service

import (
	"context"
	"fmt"
	"time"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/distributor"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/rebuild"
)

// The projection in Redis is derived state that can vanish under a
// running service: FLUSHALL, a Redis restarted without persistence, a
// fail-over to an empty replica. Whoever builds the projection (a rebuild,
// or the first start on empty streams) leaves a mark in it
// (ProjectionMark); the mark goes with everything else. The service looks
// for it before each batch its followers apply, whenever the projection
// says "not found", and every half second; missing, it pauses its
// decisions, rebuilds the projection from QUEUES and AGENTS under the
// rebuild lock (or waits for whoever holds it), follows the streams again
// from where the projection then is, and resumes.

var projectionStreams = []string{"QUEUES", "AGENTS"}

// projectionCheckEvery is how often the mark is looked for (a loss while
// events flow is seen at once by the followers).
const projectionCheckEvery = 500 * time.Millisecond

// follow (re)starts following both streams from where the projection is.
func (s *Service) follow(ctx context.Context) error {
	s.followMu.Lock()
	defer s.followMu.Unlock()
	s.unfollowLocked()
	for _, stream := range projectionStreams {
		from, err := s.store.LastApplied(ctx, stream)
		if err != nil {
			s.unfollowLocked()
			return err
		}
		f := s.newFollower()
		stop, err := s.elog.Follow(ctx, stream, from, f.deliver)
		if err != nil {
			f.stop()
			s.unfollowLocked()
			return err
		}
		s.followStops = append(s.followStops, func() { stop(); f.stop() })
	}
	return nil
}

func (s *Service) unfollow() {
	s.followMu.Lock()
	defer s.followMu.Unlock()
	s.unfollowLocked()
}

func (s *Service) unfollowLocked() {
	for _, stop := range s.followStops {
		stop()
	}
	s.followStops = nil
}

// present reports whether the projection bears its mark. An error (Redis
// unreachable) is not a loss: the caller goes on and meets the error.
func (s *Service) present(ctx context.Context) bool {
	n, err := s.rdb.Exists(ctx, ProjectionMark(s.cfg.Prefix)).Result()
	return err != nil || n == 1
}

// lost reports whether the projection cannot be trusted now — being
// rebuilt, or found without its mark (then decisions pause and the
// rebuild starts). It is the distributor's check of a "not found".
func (s *Service) lost(ctx context.Context) bool {
	if s.d.Paused() {
		return true
	}
	if s.present(ctx) {
		return false
	}
	s.pauseAndRestore()
	return true
}

// pauseAndRestore pauses decisions and has the guard restore the
// projection.
func (s *Service) pauseAndRestore() {
	s.d.Pause()
	select {
	case s.lostC <- struct{}{}:
	default:
	}
}

// guard restores the projection whenever it is found lost: by a
// follower, by the distributor reading it, by the periodic look, or by
// another process announcing a rebuild.
func (s *Service) guard(ctx context.Context) {
	t := time.NewTicker(projectionCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.lostC:
		case <-t.C:
			if s.present(ctx) {
				continue
			}
		}
		s.recoverProjection(ctx)
	}
}

// recoverProjection pauses decisions, restores the projection (rebuilt
// here, or by whoever holds the rebuild lock), follows the streams again
// and resumes.
func (s *Service) recoverProjection(ctx context.Context) {
	select {
	case <-s.lostC: // what brought us here; a later one comes round again
	default:
	}
	s.d.Pause()
	s.unfollow()
	for ctx.Err() == nil {
		err := s.restore(ctx, false)
		if err == nil {
			break
		}
		s.log.Error("cannot restore the projection; offers stay paused; retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	if ctx.Err() == nil {
		s.d.Resume(ctx)
	}
}

// restore takes the rebuild lock (waiting while another process
// rebuilds), rebuilds the projection if it bears no mark, and follows the
// streams from where it is.
func (s *Service) restore(ctx context.Context, starting bool) error {
	unlock, err := LockRebuild(ctx, s.rdb, s.cfg.Prefix, s.cfg.Instance, func(by string) {
		s.log.Warn("waiting for the projection rebuild under way", "holder", by)
	})
	if err != nil {
		return err
	}
	defer unlock()
	n, err := s.rdb.Exists(ctx, ProjectionMark(s.cfg.Prefix)).Result()
	if err != nil {
		return fmt.Errorf("look for the projection's mark: %w", err)
	}
	switch {
	case n == 1 && starting:
	case n == 1:
		s.log.Warn("the projection was rebuilt meanwhile (by another instance or `queue-distributor rebuild`); following the streams again")
	default:
		if err := s.rebuild(ctx, starting); err != nil {
			return err
		}
	}
	return s.follow(ctx)
}

// rebuild replays the streams into the projection (or marks an empty one
// built when the streams are empty too), announced to the others.
func (s *Service) rebuild(ctx context.Context, starting bool) error {
	var events uint64
	for _, stream := range projectionStreams {
		last, err := s.elog.Last(ctx, stream)
		if err != nil {
			return err
		}
		events += last
	}
	if events == 0 {
		return MarkProjection(ctx, s.rdb, s.cfg.Prefix, s.cfg.Instance)
	}
	if starting {
		s.log.Warn("the projection in Redis bears no mark of a complete build (Redis emptied, or written by an older version): rebuilding it from QUEUES and AGENTS before serving")
	} else {
		s.log.Error("the projection in Redis is gone (Redis flushed, restarted empty, or failed over?): rebuilding it from QUEUES and AGENTS; offers are paused until it is done")
	}
	if err := AnnounceRebuild(ctx, s.nc, s.cfg.Prefix, s.cfg.Instance); err != nil {
		s.log.Warn("other distributors may not pause for the rebuild", "err", err)
	}
	start := time.Now()
	res, err := rebuild.Run(ctx, s.js, s.store)
	if err != nil {
		return fmt.Errorf("rebuild the projection: %w", err)
	}
	if err := MarkProjection(ctx, s.rdb, s.cfg.Prefix, s.cfg.Instance); err != nil {
		return err
	}
	// The reset took every heartbeat with it: say at once that this
	// instance lives, so nobody takes its running offers over.
	_ = s.store.Heartbeat(ctx, s.cfg.Instance, 3*distributor.Heartbeat)
	s.rebuilds.Inc()
	s.log.Warn("projection rebuilt from the event log; offers resume", "events", res.Events, "skipped", res.Skipped, "malformed", res.Malformed,
		"took", time.Since(start).Round(time.Millisecond).String(), "checksum", res.Checksum)
	return nil
}

// catchUp waits until the projection holds what the streams held when
// called: a started instance decides nothing on a projection that is
// still being filled. Progress is logged; a follower that makes none
// for 10 s is not waited for (a stream's last message deleted would keep
// its position short for ever).
func (s *Service) catchUp(ctx context.Context) error {
	for _, stream := range projectionStreams {
		target, err := s.elog.Last(ctx, stream)
		if err != nil {
			return err
		}
		last, since, told := uint64(0), time.Now(), time.Now()
		for {
			have, err := s.store.LastApplied(ctx, stream)
			if err != nil {
				return err
			}
			if have >= target {
				break
			}
			if have != last {
				last, since = have, time.Now()
			}
			if time.Since(since) > 10*time.Second {
				s.log.Warn("the projection makes no progress; serving anyway", "stream", stream, "at", have, "of", target)
				break
			}
			if time.Since(told) > 5*time.Second {
				s.log.Info("catching up with the event log before serving", "stream", stream, "at", have, "of", target)
				told = time.Now()
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	return nil
}
