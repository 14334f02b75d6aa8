package projection

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/domain"
)

// CheckData says whether data is what the projection's scripts read for
// an event of type typ: every field they use there, with its JSON type.
// The scripts trust what they are given — a missing field stops one
// halfway, with what it wrote so far kept (Redis does not undo a script's
// writes) — so an event that fails here is applied as Malformed instead.
// Unknown types are not its business (the scripts ignore them); unknown
// fields only as far as the scripts decode and store them (see scan).
func CheckData(typ string, data json.RawMessage) error {
	err := checkData(typ, data)
	if err != nil {
		return fmt.Errorf("%s data: %w", typ, err)
	}
	return nil
}

func checkData(typ string, data json.RawMessage) error {
	if err := scan(data); err != nil {
		return err
	}
	// One decoding per event: the domain's own types check every field
	// the scripts read (numbers they count with, flags they test), and
	// pointers beside them, which hide the domain's field of the same
	// name, tell a field that is missing from one that is zero.
	switch typ {
	case domain.QueueCreated, domain.QueueUpdated:
		var d domain.QueueData
		if err := decode(data, &d); err != nil {
			return err
		}
		return need(d.Queue.Strategy != "", "queue.strategy")
	case domain.TierSet, domain.TierRemoved:
		var d struct {
			domain.TierData
			Level *int `json:"level"`
		}
		if err := decode(data, &d); err != nil {
			return err
		}
		err := need(d.Agent != "", "agent")
		if typ == domain.TierSet {
			err = errors.Join(err, need(d.Level != nil, "level"))
		}
		return err
	case domain.MemberJoined:
		var d struct {
			Member *struct {
				domain.Member
				Node     *string `json:"node"`
				JoinedAt *int64  `json:"joined_ms"`
			} `json:"member"`
		}
		if err := decode(data, &d); err != nil {
			return err
		}
		if d.Member == nil {
			return need(false, "member")
		}
		return errors.Join(need(d.Member.CallID != "", "member.call_id"),
			need(d.Member.Node != nil, "member.node"), need(d.Member.JoinedAt != nil, "member.joined_ms"))
	case domain.MemberOffered:
		var d struct {
			domain.OfferData
			OfferID *string `json:"offer_id"`
		}
		if err := decode(data, &d); err != nil {
			return err
		}
		return errors.Join(need(d.CallID != "", "call_id"), need(d.OfferID != nil, "offer_id"),
			need(len(d.Agents) > 0 && !slices.Contains(d.Agents, ""), "agents (one or more agent ids)"))
	case domain.MemberRequeued, domain.MemberAnswered, domain.MemberAbandoned, domain.MemberExited:
		var d struct {
			domain.MemberEndData
			At *int64 `json:"at_ms"`
		}
		if err := decode(data, &d); err != nil {
			return err
		}
		err := need(d.CallID != "", "call_id")
		if typ != domain.MemberRequeued {
			err = errors.Join(err, need(d.At != nil, "at_ms"))
		}
		return err
	case domain.AgentCreated, domain.AgentUpdated:
		var d struct {
			Agent *domain.Agent `json:"agent"`
		}
		if err := decode(data, &d); err != nil {
			return err
		}
		return need(d.Agent != nil, "agent")
	case domain.AgentStatusChanged:
		var d struct {
			domain.StatusData
			At *int64 `json:"at_ms"`
		}
		if err := decode(data, &d); err != nil {
			return err
		}
		switch d.Status {
		case domain.StatusAvailable:
			return need(d.At != nil, "at_ms")
		case domain.StatusOnBreak, domain.StatusLoggedOut:
			return nil
		}
		return fmt.Errorf("status %q: want available, on_break or logged_out", d.Status)
	case domain.AgentStateChanged:
		var d struct {
			domain.StateData
			State   *string `json:"state"`
			OfferID *string `json:"offer_id"`
			At      *int64  `json:"at_ms"`
		}
		if err := decode(data, &d); err != nil {
			return err
		}
		if d.State == nil {
			return need(false, "state")
		}
		switch *d.State {
		case domain.StateOffered:
			return errors.Join(need(d.CallID != "", "call_id"), need(d.OfferID != nil, "offer_id"),
				need(d.Queue != "", "queue"), need(d.At != nil, "at_ms"))
		case domain.StateInCall, domain.StateWrapUp:
			return errors.Join(need(d.CallID != "", "call_id"), need(d.At != nil, "at_ms"))
		}
		return nil // idle, or a state the scripts ignore
	case domain.AgentOfferDeclined:
		var d struct {
			domain.DeclineData
			OfferID *string `json:"offer_id"`
			ReadyAt *int64  `json:"ready_at_ms"`
			At      *int64  `json:"at_ms"`
		}
		if err := decode(data, &d); err != nil {
			return err
		}
		return errors.Join(need(d.OfferID != nil, "offer_id"), need(d.At != nil || d.ReadyAt != nil, "at_ms"))
	}
	return nil // deletions carry nothing; unknown types are ignored
}

// maxDepth bounds how deeply data may nest: ours nests four levels
// (queue.skill_escalation[].skills); Redis' cjson refuses 1,000.
const maxDepth = 32

// scan reads data once for what no field type can check, also in fields
// the scripts only decode and store: null, nesting deeper than maxDepth,
// and numbers that are not finite doubles (cjson reads 1e999 as inf and
// then refuses to write it back).
func scan(data []byte) error {
	depth := 0
	for i := 0; i < len(data); i++ {
		switch c := data[i]; {
		case c == '"':
			for i++; i < len(data) && data[i] != '"'; i++ {
				if data[i] == '\\' {
					i++
				}
			}
		case c == '{' || c == '[':
			if depth++; depth > maxDepth {
				return fmt.Errorf("nested deeper than %d levels", maxDepth)
			}
		case c == '}' || c == ']':
			depth--
		case c == 'n':
			// cjson reads null as a value of its own, not nil: `x or
			// default` then keeps it, and arithmetic on it fails.
			// The domain writes no null (empty fields are left out).
			return errors.New("null where a value belongs (leave the field out)")
		case c == '-' || (c >= '0' && c <= '9'):
			j, exp := i+1, false
			for ; j < len(data) && strings.IndexByte("0123456789+-.eE", data[j]) >= 0; j++ {
				exp = exp || data[j] == 'e' || data[j] == 'E'
			}
			// Short numbers without an exponent are finite: most of
			// them, read without a conversion.
			if exp || j-i > 300 {
				if f, err := strconv.ParseFloat(string(data[i:j]), 64); err != nil || math.IsInf(f, 0) {
					return fmt.Errorf("number %.40s is out of range", data[i:j])
				}
			}
			i = j - 1
		}
	}
	return nil
}

// decode reads data as the fields v names; null or nothing is an empty
// object. JSON's own types are checked, not the values.
func decode(data json.RawMessage, v any) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || bytes.Equal(data, []byte("null")) {
		data = []byte("{}")
	}
	if data[0] != '{' {
		return errors.New("not a JSON object")
	}
	if err := json.Unmarshal(data, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("%s: %s where a %s belongs", te.Field, te.Value, te.Type)
		}
		return err
	}
	return nil
}

func need(ok bool, field string) error {
	if ok {
		return nil
	}
	return fmt.Errorf("%s is missing", field)
}
