package domain

import "strings"

// Event types. A queue's events go to QUEUES as queues.<queue>.<rest>, an
// agent's to AGENTS as agents.<agent>.<rest>, where <rest> is the type
// without its first word ("queue.member.joined" → "member.joined").
const (
	QueueCreated       = "queue.created"
	QueueUpdated       = "queue.updated"
	QueueDeleted       = "queue.deleted"
	TierSet            = "queue.tier.set"
	TierRemoved        = "queue.tier.removed"
	MemberJoined       = "queue.member.joined"
	MemberOffered      = "queue.member.offered"
	MemberRequeued     = "queue.member.requeued"
	MemberAnswered     = "queue.member.answered"
	MemberAbandoned    = "queue.member.abandoned"
	MemberExited       = "queue.member.exited"
	AgentCreated       = "agent.created"
	AgentUpdated       = "agent.updated"
	AgentDeleted       = "agent.deleted"
	AgentStatusChanged = "agent.status.changed"
	AgentStateChanged  = "agent.state.changed"
	AgentOfferDeclined = "agent.offer.declined"
)

// Subject is where an event of type typ about aggregate id is stored.
func Subject(typ, id string) string {
	root, rest, _ := strings.Cut(typ, ".")
	return root + "s." + id + "." + rest
}

// AggregateFilter is the subject filter of every event of one aggregate,
// the scope of optimistic concurrency.
func AggregateFilter(typ, id string) string {
	root, _, _ := strings.Cut(typ, ".")
	return root + "s." + id + ".>"
}

// Stream is the JetStream stream an event type belongs to.
func Stream(typ string) string {
	if strings.HasPrefix(typ, "agent.") {
		return "AGENTS"
	}
	return "QUEUES"
}

// Event data. Times are unix milliseconds, taken when the event was
// decided, so replaying the log reaches the same state.

// QueueData is queue.created / queue.updated.
type QueueData struct {
	Queue Queue `json:"queue"`
}

// TierData is queue.tier.set / queue.tier.removed.
type TierData struct {
	Agent    string `json:"agent"`
	Level    int    `json:"level,omitempty"`
	Position int    `json:"position,omitempty"`
}

// MemberData is queue.member.joined.
type MemberData struct {
	Member Member `json:"member"`
}

// OfferData is queue.member.offered: the agents rung for the member.
type OfferData struct {
	CallID  string   `json:"call_id"`
	OfferID string   `json:"offer_id"`
	Agents  []string `json:"agents"`
	At      int64    `json:"at_ms"`
}

// MemberEndData is queue.member.requeued / answered / abandoned / exited.
type MemberEndData struct {
	CallID  string `json:"call_id"`
	OfferID string `json:"offer_id,omitempty"`
	Agent   string `json:"agent,omitempty"`
	Reason  string `json:"reason,omitempty"` // exited: timeout, exit_key, no_agents, overflowed; requeued: why the offer ended
	Digit   string `json:"digit,omitempty"`
	Target  string `json:"target,omitempty"` // overflow target
	WaitMS  int64  `json:"wait_ms"`
	At      int64  `json:"at_ms"`
	// RetryAt (requeued): the member is not offered again before this
	// time (unix ms) — its last offer reached no phone.
	RetryAt int64 `json:"retry_at_ms,omitempty"`
}

// AgentData is agent.created / agent.updated.
type AgentData struct {
	Agent Agent `json:"agent"`
}

// StatusData is agent.status.changed.
type StatusData struct {
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
	At     int64  `json:"at_ms"`
}

// StateData is agent.state.changed.
type StateData struct {
	State   string `json:"state"`
	CallID  string `json:"call_id,omitempty"`
	Queue   string `json:"queue,omitempty"`
	OfferID string `json:"offer_id,omitempty"`
	Leg     string `json:"leg,omitempty"`   // the agent's channel uuid
	Owner   string `json:"owner,omitempty"` // the distributor instance running the offer
	Node    string `json:"node,omitempty"`  // the FreeSWITCH node of the caller (and of the agent's leg)
	WaitMS  int64  `json:"wait_ms,omitempty"`
	TalkMS  int64  `json:"talk_ms,omitempty"`
	ReadyAt int64  `json:"ready_at_ms,omitempty"` // wrap_up / idle: no offers before
	At      int64  `json:"at_ms"`
}

// DeclineData is agent.offer.declined.
type DeclineData struct {
	CallID   string `json:"call_id"`
	OfferID  string `json:"offer_id"`
	Reason   string `json:"reason"` // no_answer, busy, rejected, cancelled, lost, failed
	Cause    string `json:"cause,omitempty"`
	NoAnswer bool   `json:"counts_as_no_answer,omitempty"`
	ReadyAt  int64  `json:"ready_at_ms,omitempty"`
	At       int64  `json:"at_ms"`
}
