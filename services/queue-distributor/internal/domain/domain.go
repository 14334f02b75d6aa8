// Package domain is the queue-distributor's vocabulary: queues, agents,
// tiers, members, strategies and the events that change them. It checks
// every field that arrives from the network and knows nothing of Redis or
// NATS.
package domain

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Strategy decides which idle agent a waiting member is offered to. The
// names are mod_callcenter's.
type Strategy string

// The strategies, as in mod_callcenter.
const (
	RingAll           Strategy = "ring-all"
	LongestIdle       Strategy = "longest-idle-agent"
	RoundRobin        Strategy = "round-robin"
	TopDown           Strategy = "top-down"
	LeastTalkTime     Strategy = "agent-with-least-talk-time"
	FewestCalls       Strategy = "agent-with-fewest-calls"
	Sequential        Strategy = "sequentially-by-agent-order"
	Random            Strategy = "random"
	RingProgressively Strategy = "ring-progressively"
)

// Strategies lists every strategy, for errors and docs.
var Strategies = []Strategy{RingAll, LongestIdle, RoundRobin, TopDown, LeastTalkTime, FewestCalls, Sequential, Random, RingProgressively}

// Agent statuses (what the agent chose) and states (what the distributor
// is doing with the agent).
const (
	StatusLoggedOut = "logged_out"
	StatusAvailable = "available"
	StatusOnBreak   = "on_break"

	StateIdle    = "idle"
	StateOffered = "offered"
	StateInCall  = "in_call"
	StateWrapUp  = "wrap_up"
)

// Escalation relaxes a member's required skills after it has waited: a
// workflow step in Twilio TaskRouter's terms.
type Escalation struct {
	AfterSeconds int  `json:"after_seconds"`
	RelaxLevels  int  `json:"relax_levels,omitempty"` // subtracted from every required level
	DropSkills   bool `json:"drop_skills,omitempty"`  // any agent of the queue will do
}

// Queue is a queue's configuration. Zero durations mean "none".
type Queue struct {
	Name                         string   `json:"name"`
	Strategy                     Strategy `json:"strategy"`
	MOHSound                     string   `json:"moh_sound,omitempty"`
	MaxWaitSeconds               int      `json:"max_wait_seconds,omitempty"`
	MaxWaitNoAgentSeconds        int      `json:"max_wait_with_no_agent_seconds,omitempty"`
	MaxWaitNoAgentReachedSeconds int      `json:"max_wait_with_no_agent_time_reached_seconds,omitempty"`
	AnnounceSound                string   `json:"announce_sound,omitempty"`
	AnnounceFrequencySeconds     int      `json:"announce_frequency_seconds,omitempty"`
	// AnnouncePosition and AnnounceWaitTime add the caller's place in
	// line and the estimated wait to each announcement, as FreeSWITCH
	// phrase macros (docs/operations/queue-distributor.md).
	AnnouncePosition             bool         `json:"announce_position,omitempty"`
	AnnounceWaitTime             bool         `json:"announce_wait_time,omitempty"`
	ExitKeys                     string       `json:"exit_keys,omitempty"`
	OverflowTarget               string       `json:"overflow_target,omitempty"`
	TierRulesApply               bool         `json:"tier_rules_apply,omitempty"`
	TierRuleWaitSeconds          int          `json:"tier_rule_wait_seconds,omitempty"`
	TierRuleWaitMultiplyLevel    bool         `json:"tier_rule_wait_multiply_level,omitempty"`
	TierRuleNoAgentNoWait        *bool        `json:"tier_rule_no_agent_no_wait,omitempty"` // default true, as in mod_callcenter
	WrapUpSeconds                int          `json:"wrap_up_seconds,omitempty"`
	ServiceLevelSeconds          int          `json:"service_level_seconds,omitempty"`
	DiscardAbandonedAfterSeconds int          `json:"discard_abandoned_after_seconds,omitempty"`
	AbandonedResumeAllowed       bool         `json:"abandoned_resume_allowed,omitempty"`
	RingProgressivelyDelaySecs   int          `json:"ring_progressively_delay_seconds,omitempty"`
	SkillEscalation              []Escalation `json:"skill_escalation,omitempty"`
}

// Agent is an agent's configuration.
type Agent struct {
	ID                 string         `json:"id"`
	Name               string         `json:"name,omitempty"`
	Contact            string         `json:"contact"` // a FreeSWITCH dial string: user/1000, {vars}sofia/gateway/gw/+1555…
	MaxNoAnswer        int            `json:"max_no_answer,omitempty"`
	WrapUpSeconds      *int           `json:"wrap_up_seconds,omitempty"` // nil: the queue's
	RejectDelaySeconds int            `json:"reject_delay_seconds,omitempty"`
	BusyDelaySeconds   int            `json:"busy_delay_seconds,omitempty"`
	NoAnswerDelaySecs  int            `json:"no_answer_delay_seconds,omitempty"`
	RingTimeoutSeconds int            `json:"ring_timeout_seconds,omitempty"`
	Skills             map[string]int `json:"skills,omitempty"`
	PushUser           string         `json:"push_user,omitempty"` // a mobile agent: push-notifier user to wake
}

// Tier puts an agent in a queue at a level (lower first) and position.
type Tier struct {
	Queue    string `json:"queue"`
	Agent    string `json:"agent"`
	Level    int    `json:"level"`
	Position int    `json:"position"`
}

// Member is a call waiting in (or offered from) a queue.
type Member struct {
	CallID       string         `json:"call_id"`
	Queue        string         `json:"queue"`
	Node         string         `json:"node"`
	Priority     int            `json:"priority,omitempty"`
	Skills       map[string]int `json:"skills,omitempty"`
	CallerNumber string         `json:"caller_id_number,omitempty"`
	CallerName   string         `json:"caller_id_name,omitempty"`
	JoinedAt     int64          `json:"joined_ms"` // unix milliseconds
	MaxWait      int            `json:"max_wait_seconds,omitempty"`
}

var (
	nameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_@-]{0,63}$`)
	skillRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	callRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,63}$`)
)

// FieldError is a validation failure naming the field.
type FieldError struct{ Field, Problem string }

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// ValidName checks a queue name or agent id: it becomes one NATS subject
// token and one Redis key part, so no dots, spaces or wildcards.
func ValidName(field, s string) error {
	if !nameRE.MatchString(s) {
		return fieldErr(field, "%q is not a valid name: 1-64 letters, digits, '_', '-' or '@', starting with a letter or digit", s)
	}
	return nil
}

// ValidCallID checks a FreeSWITCH channel UUID (or any subject-safe id).
func ValidCallID(field, s string) error {
	if !callRE.MatchString(s) {
		return fieldErr(field, "%q is not a call uuid", s)
	}
	return nil
}

const maxSeconds = 7 * 24 * 3600

func secs(field string, v int) error {
	if v < 0 || v > maxSeconds {
		return fieldErr(field, "%d is out of range 0..%d seconds", v, maxSeconds)
	}
	return nil
}

func validSkills(field string, m map[string]int) error {
	if len(m) > 32 {
		return fieldErr(field, "at most 32 skills")
	}
	for k, v := range m {
		if !skillRE.MatchString(k) {
			return fieldErr(field, "skill %q: 1-64 letters, digits, '_', '.', '-'", k)
		}
		if v < 0 || v > 100 {
			return fieldErr(field+"."+k, "level %d out of range 0..100", v)
		}
	}
	return nil
}

// dialable refuses what would break out of an originate command line.
func dialable(field, s string, max int) error {
	if len(s) > max {
		return fieldErr(field, "longer than %d bytes", max)
	}
	if strings.ContainsAny(s, "\r\n\x00") {
		return fieldErr(field, "contains a line break or NUL")
	}
	return nil
}

var varNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// expansionRE is a ${variable} in an endpoint, as in
// user/1000@${domain_name}. Only a variable: ${api(args)} would run an API
// command on every ring.
var expansionRE = regexp.MustCompile(`\$\{[A-Za-z0-9_.-]+\}`)

// ownVars are the originate variables the distributor sets on every ring
// and relies on to follow it; a contact may not set them (FreeSWITCH reads
// variable names without regard to case, and the last one set wins).
var ownVars = []string{"origination_uuid", "originate_timeout", "ignore_early_media", "hangup_after_bridge", "switchyard_"}

// contact checks a dial string the way the agent's originate will read it
// (originate {ours…}<contact> &park(); docs/api): FreeSWITCH splits the
// command at spaces outside '…' (a backslash escaping the next byte) and
// strips the quotes; then ':_:', '|' and ',' separate endpoints, of which
// the distributor follows one. So: an optional {variables} block (spaces
// only inside paired quotes), an optional [variables] block, one endpoint.
// No variable may replace one of the distributor's.
func contact(field, s string) error {
	if strings.HasPrefix(s, "<") {
		return fieldErr(field, "<variables> are not supported: put them in a leading {…} block")
	}
	if strings.Contains(s, ":_:") {
		return fieldErr(field, "':_:' rings several endpoints; a contact is one endpoint (the distributor follows one leg)")
	}
	block, dial := "", s
	if strings.HasPrefix(s, "{") {
		end := strings.IndexByte(s, '}')
		if end < 0 {
			return fieldErr(field, "{variables} without their closing }")
		}
		block, dial = s[1:end], s[end+1:]
	}
	if strings.ContainsAny(block, "{\\") || strings.Count(block, "'")%2 != 0 {
		return fieldErr(field, "{variables}: a quote without its pair, a backslash or a nested {")
	}
	quoted := false
	for _, r := range block {
		if r == '\'' {
			quoted = !quoted
		} else if (r == ' ' || r == '\t') && !quoted {
			return fieldErr(field, "{variables}: a space outside '…' (quote values with spaces: {var='a b'})")
		}
	}
	legVars := ""
	if strings.HasPrefix(dial, "[") {
		end := strings.IndexByte(dial, ']')
		if end < 0 {
			return fieldErr(field, "[variables] without their closing ]")
		}
		legVars, dial = dial[1:end], dial[end+1:]
		if strings.ContainsAny(legVars, "[ \t'\\{}$") {
			return fieldErr(field, "[variables]: no spaces, quotes, braces, backslashes or $ (such variables go in the leading {…} block)")
		}
	}
	if dial == "" {
		return fieldErr(field, "no endpoint after the variables, such as user/1000")
	}
	if strings.ContainsAny(expansionRE.ReplaceAllString(dial, ""), " \t'\\{}[]$,|") {
		return fieldErr(field, "the endpoint holds a space, quote, backslash, brace, bracket, '$', ',' or '|': one endpoint per contact, variables in {…} or […] before it, ${variable} expansions only")
	}
	for _, vars := range []string{block, legVars} {
		if vars == "" {
			continue
		}
		for kv := range strings.SplitSeq(vars, ",") {
			name, _, ok := strings.Cut(kv, "=")
			if !ok || !varNameRE.MatchString(name) {
				return fieldErr(field, "variables: %q is not name=value (a name of letters, digits, '_', '-' or '.')", kv)
			}
			lower := strings.ToLower(name)
			for _, own := range ownVars {
				if lower == own || strings.HasSuffix(own, "_") && strings.HasPrefix(lower, own) {
					return fieldErr(field, "variables set %s, which the distributor sets on each ring (the ring timeout is ring_timeout_seconds)", name)
				}
			}
		}
	}
	return nil
}

// Validate checks a queue and fills defaults.
func (q *Queue) Validate() error {
	if err := ValidName("name", q.Name); err != nil {
		return err
	}
	if q.Strategy == "" {
		q.Strategy = LongestIdle
	}
	ok := false
	for _, s := range Strategies {
		ok = ok || s == q.Strategy
	}
	if !ok {
		names := make([]string, len(Strategies))
		for i, s := range Strategies {
			names[i] = string(s)
		}
		return fieldErr("strategy", "%q is not a strategy; want one of %s", q.Strategy, strings.Join(names, ", "))
	}
	for f, v := range map[string]int{
		"max_wait_seconds": q.MaxWaitSeconds, "max_wait_with_no_agent_seconds": q.MaxWaitNoAgentSeconds,
		"max_wait_with_no_agent_time_reached_seconds": q.MaxWaitNoAgentReachedSeconds,
		"announce_frequency_seconds":                  q.AnnounceFrequencySeconds, "tier_rule_wait_seconds": q.TierRuleWaitSeconds,
		"wrap_up_seconds": q.WrapUpSeconds, "service_level_seconds": q.ServiceLevelSeconds,
		"discard_abandoned_after_seconds": q.DiscardAbandonedAfterSeconds, "ring_progressively_delay_seconds": q.RingProgressivelyDelaySecs,
	} {
		if err := secs(f, v); err != nil {
			return err
		}
	}
	if q.TierRuleNoAgentNoWait == nil {
		yes := true
		q.TierRuleNoAgentNoWait = &yes
	}
	if q.ServiceLevelSeconds == 0 {
		q.ServiceLevelSeconds = 20
	}
	if q.DiscardAbandonedAfterSeconds == 0 {
		q.DiscardAbandonedAfterSeconds = 60
	}
	if q.RingProgressivelyDelaySecs == 0 {
		q.RingProgressivelyDelaySecs = 10
	}
	if q.MaxWaitNoAgentSeconds > 0 && q.MaxWaitNoAgentReachedSeconds == 0 {
		q.MaxWaitNoAgentReachedSeconds = 5 // mod_callcenter's default
	}
	if (q.AnnounceSound != "" || q.AnnouncePosition || q.AnnounceWaitTime) && q.AnnounceFrequencySeconds == 0 {
		return fieldErr("announce_frequency_seconds", "announcements need a frequency (seconds between them)")
	}
	if q.AnnounceFrequencySeconds > 0 && q.AnnounceFrequencySeconds < 5 {
		return fieldErr("announce_frequency_seconds", "%d is too often; at least 5 seconds", q.AnnounceFrequencySeconds)
	}
	for _, k := range q.ExitKeys {
		if !strings.ContainsRune("0123456789*#", k) {
			return fieldErr("exit_keys", "%q is not a DTMF digit", k)
		}
	}
	for f, s := range map[string]string{"moh_sound": q.MOHSound, "announce_sound": q.AnnounceSound, "overflow_target": q.OverflowTarget} {
		if err := dialable(f, s, 512); err != nil {
			return err
		}
		if strings.ContainsAny(s, " ") && f != "overflow_target" {
			return fieldErr(f, "contains a space")
		}
	}
	if len(q.SkillEscalation) > 16 {
		return fieldErr("skill_escalation", "at most 16 steps")
	}
	for i, e := range q.SkillEscalation {
		if err := secs(fmt.Sprintf("skill_escalation[%d].after_seconds", i), e.AfterSeconds); err != nil {
			return err
		}
		if e.RelaxLevels < 0 || e.RelaxLevels > 100 {
			return fieldErr(fmt.Sprintf("skill_escalation[%d].relax_levels", i), "out of range 0..100")
		}
	}
	sort.SliceStable(q.SkillEscalation, func(i, j int) bool { return q.SkillEscalation[i].AfterSeconds < q.SkillEscalation[j].AfterSeconds })
	return nil
}

// Validate checks an agent and fills defaults.
func (a *Agent) Validate() error {
	if err := ValidName("id", a.ID); err != nil {
		return err
	}
	if a.Contact == "" {
		return fieldErr("contact", "required: a FreeSWITCH dial string such as user/1000")
	}
	if err := dialable("contact", a.Contact, 1024); err != nil {
		return err
	}
	if err := contact("contact", a.Contact); err != nil {
		return err
	}
	if len(a.Name) > 128 {
		return fieldErr("name", "longer than 128 bytes")
	}
	if a.MaxNoAnswer < 0 || a.MaxNoAnswer > 1000 {
		return fieldErr("max_no_answer", "out of range 0..1000")
	}
	if a.WrapUpSeconds != nil {
		if err := secs("wrap_up_seconds", *a.WrapUpSeconds); err != nil {
			return err
		}
	}
	for f, v := range map[string]int{"reject_delay_seconds": a.RejectDelaySeconds, "busy_delay_seconds": a.BusyDelaySeconds,
		"no_answer_delay_seconds": a.NoAnswerDelaySecs, "ring_timeout_seconds": a.RingTimeoutSeconds} {
		if err := secs(f, v); err != nil {
			return err
		}
	}
	if a.RingTimeoutSeconds == 0 {
		a.RingTimeoutSeconds = 30
	}
	if a.PushUser != "" {
		if err := ValidName("push_user", a.PushUser); err != nil {
			return err
		}
	}
	return validSkills("skills", a.Skills)
}

// Validate checks a tier.
func (t *Tier) Validate() error {
	if err := ValidName("queue", t.Queue); err != nil {
		return err
	}
	if err := ValidName("agent", t.Agent); err != nil {
		return err
	}
	if t.Level == 0 {
		t.Level = 1
	}
	if t.Level < 1 || t.Level > 99 {
		return fieldErr("level", "%d out of range 1..99", t.Level)
	}
	if t.Position < 0 || t.Position > 9999 {
		return fieldErr("position", "%d out of range 0..9999", t.Position)
	}
	return nil
}

// Validate checks a member joining.
func (m *Member) Validate() error {
	if err := ValidCallID("call_id", m.CallID); err != nil {
		return err
	}
	if err := ValidName("queue", m.Queue); err != nil {
		return err
	}
	if m.Node == "" {
		return fieldErr("node", "required: the FreeSWITCH node holding the call")
	}
	if err := ValidName("node", m.Node); err != nil {
		return err
	}
	if m.Priority < 0 || m.Priority > 1000 {
		return fieldErr("priority", "%d out of range 0..1000", m.Priority)
	}
	if err := secs("max_wait_seconds", m.MaxWait); err != nil {
		return err
	}
	if len(m.CallerNumber) > 128 || len(m.CallerName) > 128 {
		return fieldErr("caller_id", "longer than 128 bytes")
	}
	return validSkills("skills", m.Skills)
}

// Outcomes the caller side (queue.enqueue) gets back.
const (
	OutcomeAnswered   = "answered"
	OutcomeTimeout    = "timeout"
	OutcomeExitKey    = "exit_key"
	OutcomeAbandoned  = "abandoned"
	OutcomeNoAgents   = "no_agents"
	OutcomeOverflowed = "overflowed"
)
