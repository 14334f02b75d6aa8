// Package callevent turns what FreeSWITCH says about a channel into the
// call.* events of docs/events.md. It is pure: no I/O, table-tested on real
// FreeSWITCH events.
package callevent

import (
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/esl"
)

// Event types the gateway publishes on calls.<uuid>.<suffix>.
const (
	TypeStarted   = "call.started"
	TypeAnswered  = "call.answered"
	TypeDTMF      = "call.dtmf"
	TypeBridged   = "call.bridged"
	TypeUnbridged = "call.unbridged"
	TypeHangup    = "call.hangup"
	// TypeReleased: the socket ended while the channel lived on (the
	// gateway closed it on purpose, or lost it with socket_resume set).
	TypeReleased = "call.released"
)

// Subject is the NATS subject of a call event: calls.<uuid>.<suffix>.
func Subject(callID, typ string) string {
	return "calls." + callID + "." + strings.TrimPrefix(typ, "call.")
}

// Started is call.started: everything a routing policy needs to know
// about the call when it arrives.
type Started struct {
	CallID            string            `json:"call_id"`
	Node              string            `json:"node"`
	Gateway           string            `json:"gateway"`
	Direction         string            `json:"direction"`
	CallerIDNumber    string            `json:"caller_id_number"`
	CallerIDName      string            `json:"caller_id_name"`
	ANI               string            `json:"ani,omitempty"`
	DestinationNumber string            `json:"destination_number"`
	Context           string            `json:"context,omitempty"`
	ChannelName       string            `json:"channel_name"`
	SocketMode        string            `json:"socket_mode"` // async or static
	Control           string            `json:"control"`     // full or single-channel
	CreatedAt         *time.Time        `json:"created_at,omitempty"`
	Variables         map[string]string `json:"variables"`
	// VariablesTruncated says MaxVariables or MaxVariableBytes cut the set.
	VariablesTruncated bool `json:"variables_truncated,omitempty"`
}

// Limits on the channel variables copied into call.started: a channel can
// carry hundreds, and the event must stay small.
const (
	MaxVariables     = 256
	MaxVariableBytes = 4096
)

// StartedFrom builds call.started from the channel data of a socket
// connect. node names the FreeSWITCH node, gateway this instance.
func StartedFrom(cd *esl.Event, node, gateway, socketMode, control string) Started {
	s := Started{
		CallID:            cd.UniqueID(),
		Node:              node,
		Gateway:           gateway,
		Direction:         firstOf(cd, "Call-Direction", "Caller-Direction", "Channel-Direction"),
		CallerIDNumber:    cd.Get("Caller-Caller-ID-Number"),
		CallerIDName:      cd.Get("Caller-Caller-ID-Name"),
		ANI:               cd.Get("Caller-ANI"),
		DestinationNumber: cd.Get("Caller-Destination-Number"),
		Context:           cd.Get("Caller-Context"),
		ChannelName:       firstOf(cd, "Channel-Name", "Caller-Channel-Name"),
		SocketMode:        socketMode,
		Control:           control,
		CreatedAt:         micros(cd.Get("Caller-Channel-Created-Time")),
		Variables:         map[string]string{},
	}
	for _, h := range cd.Headers {
		name, ok := strings.CutPrefix(h.Name, "variable_")
		if !ok {
			continue
		}
		if len(s.Variables) >= MaxVariables || len(h.Value) > MaxVariableBytes {
			s.VariablesTruncated = true
			continue
		}
		if _, dup := s.Variables[name]; !dup {
			s.Variables[name] = h.Value
		}
	}
	return s
}

// Answered is call.answered.
type Answered struct {
	CallID     string     `json:"call_id"`
	AnsweredAt *time.Time `json:"answered_at,omitempty"`
}

// DTMF is call.dtmf: one digit the caller pressed.
type DTMF struct {
	CallID     string `json:"call_id"`
	Digit      string `json:"digit"`
	DurationMS int    `json:"duration_ms"`
	Source     string `json:"source,omitempty"`
}

// Bridged is call.bridged and call.unbridged.
type Bridged struct {
	CallID   string `json:"call_id"`
	OtherLeg string `json:"other_leg,omitempty"`
}

// Hangup is call.hangup: why and how long.
type Hangup struct {
	CallID      string     `json:"call_id"`
	Cause       string     `json:"cause"`
	CauseQ850   int        `json:"cause_q850,omitempty"`
	Disposition string     `json:"disposition,omitempty"`
	DurationMS  int        `json:"duration_ms"`
	BillMS      int        `json:"bill_ms"`
	AnswerMS    int        `json:"answer_ms"`
	HungUpAt    *time.Time `json:"hung_up_at,omitempty"`
}

// Released is call.released: the socket session ended but the channel did
// not hang up (it went on through the dialplan).
type Released struct {
	CallID string `json:"call_id"`
	Reason string `json:"reason"`
}

// From maps one event of the controlled channel to a call event. ok is
// false for events that are not call events (CHANNEL_EXECUTE, state
// changes, other channels' events).
func From(ev *esl.Event, callID string) (typ string, data any, ok bool) {
	if ev.UniqueID() != callID {
		return "", nil, false
	}
	switch ev.Name() {
	case "CHANNEL_ANSWER":
		return TypeAnswered, Answered{CallID: callID, AnsweredAt: micros(ev.Get("Caller-Channel-Answered-Time"))}, true
	case "DTMF":
		return TypeDTMF, DTMF{CallID: callID, Digit: ev.Get("DTMF-Digit"), DurationMS: samplesToMS(ev.Get("DTMF-Duration")), Source: ev.Get("DTMF-Source")}, true
	case "CHANNEL_BRIDGE":
		return TypeBridged, Bridged{CallID: callID, OtherLeg: otherLeg(ev, callID)}, true
	case "CHANNEL_UNBRIDGE":
		return TypeUnbridged, Bridged{CallID: callID, OtherLeg: otherLeg(ev, callID)}, true
	case "CHANNEL_HANGUP_COMPLETE":
		return TypeHangup, HangupFrom(ev, callID), true
	}
	return "", nil, false
}

// HangupFrom reads cause and durations from CHANNEL_HANGUP_COMPLETE.
func HangupFrom(ev *esl.Event, callID string) Hangup {
	return Hangup{
		CallID:      callID,
		Cause:       firstOf(ev, "Hangup-Cause", "variable_hangup_cause"),
		CauseQ850:   atoi(ev.Get("variable_hangup_cause_q850")),
		Disposition: ev.Get("variable_endpoint_disposition"),
		DurationMS:  msOr(ev, "variable_mduration", "variable_duration"),
		BillMS:      msOr(ev, "variable_billmsec", "variable_billsec"),
		AnswerMS:    msOr(ev, "variable_answermsec", "variable_answersec"),
		HungUpAt:    micros(ev.Get("Caller-Channel-Hangup-Time")),
	}
}

func otherLeg(ev *esl.Event, callID string) string {
	if o := ev.Get("Other-Leg-Unique-ID"); o != "" {
		return o
	}
	if b := ev.Get("Bridge-B-Unique-ID"); b != "" && b != callID {
		return b
	}
	return ev.Get("Bridge-A-Unique-ID")
}

func firstOf(ev *esl.Event, names ...string) string {
	for _, n := range names {
		if v := ev.Get(n); v != "" {
			return v
		}
	}
	return ""
}

// micros reads FreeSWITCH's microsecond timestamps; 0 means "not yet".
func micros(v string) *time.Time {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return nil
	}
	t := time.UnixMicro(n).UTC()
	return &t
}

// msOr prefers the millisecond variable, else seconds × 1000.
func msOr(ev *esl.Event, msName, secName string) int {
	if v, err := strconv.Atoi(ev.Get(msName)); err == nil {
		return v
	}
	return atoi(ev.Get(secName)) * 1000
}

// samplesToMS: FreeSWITCH reports DTMF-Duration in 8 kHz samples.
func samplesToMS(v string) int { return atoi(v) / 8 }

func atoi(v string) int {
	n, _ := strconv.Atoi(v)
	return n
}
