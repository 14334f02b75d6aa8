package projection

import (
	"context"
	"fmt"
	"strconv"
)

// MaxBatch is the most events ApplyBatch sends in one script call. Redis
// runs a script to its end while every other client waits, so a batch is
// kept under about 10 ms of work; a bigger slice is sent in pieces.
const MaxBatch = 512

// ApplyBatch applies evs in order, each once, with exactly the effect of
// calling Apply(ev, false) on each in turn — a duplicate or an event whose
// sequence is not after the stream's last is reported Dup, a stale one is
// Ignored — but in one round trip per MaxBatch events instead of one per
// event: one by one, a replay spends three times longer on round trips
// than in the scripts. It returns one result per event applied; on an
// error, the results of the events before the failing one (which stay
// applied).
func (s *Store) ApplyBatch(ctx context.Context, evs []Event) ([]ApplyResult, error) {
	out := make([]ApplyResult, 0, len(evs))
	args := make([]any, 0, 2+7*min(len(evs), MaxBatch))
	problems := make([]string, min(len(evs), MaxBatch))
	for len(evs) > 0 {
		n := min(len(evs), MaxBatch)
		args = append(args[:0], s.prefix, s.lim.IDWindow)
		for i, ev := range evs[:n] {
			typ, eid, data, problem := ev.wire()
			problems[i] = problem
			args = append(args, ev.Stream, ev.Seq, typ, ev.ID, data, ev.At.UnixMilli(), eid)
		}
		res, err := s.applyBatch.Run(ctx, s.rdb, nil, args...).StringSlice()
		if err != nil {
			return out, fmt.Errorf("apply %d events from %s #%d to redis: %w", n, evs[0].Stream, evs[0].Seq, err)
		}
		before := len(out)
		out, err = parseBatch(out, res, evs[:n])
		for i := range out[before:] {
			out[before+i].Problem = problems[i]
			s.versions.noted(evs[i], out[before+i].Status)
		}
		if err != nil {
			return out, err
		}
		evs = evs[n:]
	}
	return out, nil
}

// parseBatch appends to out the results apply_batch returned for evs:
// status, detail, number of queues, queues — or 'error' and why for the
// event that failed.
func parseBatch(out []ApplyResult, res []string, evs []Event) ([]ApplyResult, error) {
	for _, ev := range evs {
		if len(res) >= 2 && res[0] == "error" {
			return out, fmt.Errorf("apply %s #%d (%s %s) to redis: %s", ev.Stream, ev.Seq, ev.Type, ev.ID, res[1])
		}
		if len(res) < 3 {
			return out, fmt.Errorf("apply %s #%d (%s %s) to redis: the batch script returned no result for it", ev.Stream, ev.Seq, ev.Type, ev.ID)
		}
		nq, err := strconv.Atoi(res[2])
		if err != nil || nq < 0 || len(res) < 3+nq {
			return out, fmt.Errorf("apply %s #%d (%s %s) to redis: unreadable batch result %q", ev.Stream, ev.Seq, ev.Type, ev.ID, res[:3])
		}
		r := ApplyResult{Status: res[0], Detail: res[1]}
		if nq > 0 {
			r.Queues = res[3 : 3+nq : 3+nq]
		}
		out = append(out, r)
		res = res[3+nq:]
	}
	return out, nil
}
