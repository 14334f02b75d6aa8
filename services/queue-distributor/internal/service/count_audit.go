package service

import (
	"context"
	"time"
)

// auditCounts recounts every queue's agents now and then. The counts the
// events keep (acount:<queue>) decide whether a caller may join at all
// (no_agents when nobody is logged in) and where tier rules start; a
// script that failed between taking an agent out of them and putting it
// back would leave them wrong for good, and a rebuild would repeat the
// failure. Each queue is one script that reads its agents — about 25 ms
// of Redis at 10,000 agents, offers wait meanwhile — so the audit runs
// seldom and one queue at a time.
func (s *Service) auditCounts(ctx context.Context) {
	if s.cfg.CountAuditEvery <= 0 {
		return
	}
	t := time.NewTicker(s.cfg.CountAuditEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		queues, err := s.store.QueueNames(ctx)
		if err != nil {
			s.log.Warn("count audit: cannot list the queues; trying again at the next audit", "err", err)
			continue
		}
		for _, q := range queues {
			if s.d.Paused() || ctx.Err() != nil { // being rebuilt: nothing to audit
				break
			}
			// The script itself checks the rebuild lock and the mark: a
			// rebuild by another process may start between two queues.
			diff, _, err := s.store.Recount(ctx, q, RebuildLockKey(s.cfg.Prefix), ProjectionMark(s.cfg.Prefix))
			if err != nil {
				s.log.Warn("count audit: cannot recount a queue's agents; trying again at the next audit", "queue", q, "err", err)
				continue
			}
			if len(diff) > 0 {
				s.countRepairs.Inc()
				s.log.Error("a queue's agent counts were wrong and have been repaired from its agents; please report it with the log lines before this one",
					"queue", q, "kept_to_counted", diff)
			}
		}
	}
}
