package distributor

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/domain"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/projection"
)

// WaitingTick is how often Waiting looks at the callers in line.
const WaitingTick = time.Second

// Phrase macros an announcement plays after the queue's announce sound
// (FreeSWITCH phrase macros the operator defines, with the number as
// their input; docs/operations/queue-distributor.md has them).
const (
	PhrasePosition = "switchyard_queue_position"
	PhraseWait     = "switchyard_queue_wait" // minutes, rounded up
)

// Waiting runs what happens to callers while they wait, once a second:
// the periodic announcement (sound, place in line, estimated wait), and
// the exit of callers from a queue that has had no agent logged in for
// its max_wait_with_no_agent. Every instance runs it; claims and a shared
// "no agent since" keep each action to one instance.
func (d *Distributor) Waiting(ctx context.Context) {
	t := time.NewTicker(WaitingTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if d.Paused() {
			continue // the projection is being rebuilt: it tells nothing yet
		}
		names, err := d.cfg.Store.QueueNames(ctx)
		if err != nil {
			d.log.Warn("waiting callers: list queues", "err", err)
			continue
		}
		for _, name := range names {
			q, err := d.cfg.Store.Queue(ctx, name)
			if err != nil || (q.AnnounceFrequencySeconds == 0 && q.MaxWaitNoAgentSeconds == 0) {
				continue
			}
			if err := d.tendQueue(ctx, q.Queue, now()); err != nil {
				d.log.Warn("waiting callers", "queue", name, "err", err)
			}
		}
	}
}

func (d *Distributor) tendQueue(ctx context.Context, q domain.Queue, t time.Time) error {
	var noAgentSince time.Time
	if q.MaxWaitNoAgentSeconds > 0 {
		in, err := d.cfg.Store.LoggedIn(ctx, q.Name)
		if err != nil {
			return err
		}
		if noAgentSince, err = d.cfg.Store.NoAgentSince(ctx, q.Name, t, in); err != nil {
			return err
		}
	}
	members, err := d.cfg.Store.Members(ctx, q.Name)
	if err != nil {
		return err
	}
	var ewt time.Duration
	if q.AnnounceWaitTime && len(members) > 0 {
		st, _, err := d.cfg.Store.Stats(ctx, q.Name, t, d.window())
		if err != nil {
			return err
		}
		if st.Answered > 0 {
			ewt = time.Duration(st.ASASeconds * float64(time.Second))
		}
	}
	position := 0
	for _, m := range members {
		if m.State != "waiting" {
			continue
		}
		position++
		if !noAgentSince.IsZero() && noAgentExpired(q, m, noAgentSince, t) {
			d.breakMOH(ctx, m.CallID)
			err := d.finishMember(ctx, m, domain.MemberExited, domain.MemberEndData{Reason: domain.OutcomeNoAgents},
				Outcome{Outcome: domain.OutcomeNoAgents, Reason: "no agent logged in"})
			if err != nil {
				d.log.Warn("cannot end a member of a queue without agents", "callid", m.CallID, "err", err)
			}
			continue
		}
		if q.AnnounceFrequencySeconds > 0 {
			d.announce(ctx, q, m, position, ewt, t)
		}
	}
	return nil
}

// noAgentExpired: mod_callcenter's max-wait-time-with-no-agent. Once the
// queue has had no agent logged in for that long, its callers leave; a
// caller who joined after that point waits only
// max_wait_with_no_agent_time_reached.
func noAgentExpired(q domain.Queue, m projection.MemberView, since, t time.Time) bool {
	reached := since.Add(time.Duration(q.MaxWaitNoAgentSeconds) * time.Second)
	if t.Before(reached) {
		return false
	}
	joined := time.UnixMilli(m.JoinedAt)
	return !joined.After(reached) || t.Sub(joined) >= time.Duration(q.MaxWaitNoAgentReachedSeconds)*time.Second
}

// announce plays the k-th announcement to a waiting caller once k
// periods have passed since they joined: the queue's sound, then the
// place in line and the estimated wait as phrase macros. uuid_broadcast
// plays them over the music on hold, which goes on after.
func (d *Distributor) announce(ctx context.Context, q domain.Queue, m projection.MemberView, position int, ewt time.Duration, t time.Time) {
	period := time.Duration(q.AnnounceFrequencySeconds) * time.Second
	k := int64(t.Sub(time.UnixMilli(m.JoinedAt)) / period)
	if k < 1 || m.Node == "" {
		return
	}
	if ok, err := d.cfg.Store.Claim(ctx, fmt.Sprintf("announce:%s:%d", m.CallID, k), period); err != nil || !ok {
		return
	}
	var files []string
	if q.AnnounceSound != "" {
		files = append(files, q.AnnounceSound)
	}
	if q.AnnouncePosition {
		files = append(files, fmt.Sprintf("phrase:%s:%d", PhrasePosition, position))
	}
	if q.AnnounceWaitTime && ewt > 0 {
		files = append(files, fmt.Sprintf("phrase:%s:%d", PhraseWait, int(math.Ceil(ewt.Minutes()))))
	}
	for _, f := range files {
		if _, err := d.cfg.Gateway.API(ctx, m.Node, "uuid_broadcast "+m.CallID+" "+f+" aleg", false, 5*time.Second); err != nil {
			d.log.Debug("announcement not played", "callid", m.CallID, "file", f, "err", err)
			return
		}
	}
}

func (d *Distributor) window() time.Duration {
	if d.cfg.StatsWindow > 0 {
		return d.cfg.StatsWindow
	}
	return 15 * time.Minute
}
