package distributor

import (
	"strings"
	"testing"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/domain"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/projection"
)

// The caller's id comes from the network (a SIP From header, a policy):
// whatever it holds, the agent's originate keeps its shape — two
// arguments, the variables we set and no others — and shows what of the
// caller id it could keep.
func TestOriginateKeepsItsShapeWhateverTheCallerID(t *testing.T) {
	for _, tc := range []struct {
		name, number, callerName string
		wantNumber, wantName     string // as the variable's value reaches FreeSWITCH; "" absent
	}{
		{"plain", "+442079460000", "Ada Lovelace", "+442079460000", "Ada Lovelace"},
		{"none", "", "", "", ""},
		{"space in the number", "+44 20 7946", "x", "+44207946", "x"},
		{"quote in the name", "1", "O'Brien", "1", "OBrien"},
		{"backslash ending the name", "1", `evil\`, "1", "evil"},
		{"backslash in the number", `1\ 2`, "n", "12", "n"},
		{"a variable of our own", "1,origination_uuid=x", "n,switchyard_agent=x", "1origination_uuidx", "nswitchyard_agent=x"},
		{"closing the block", "1}sofia/gateway/premium/900", "n}loopback/1", "1sofiagatewaypremium900", "nloopback/1"},
		{"expansion", "${system(id)}", "${sofia_contact(1000)}", "systemid", "sofia_contact(1000)"},
		{"line break", "1\r\n2", "a\nb", "12", "ab"},
		{"only unsafe characters", `'\'`, `'\'`, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vars := checkOriginate(t, tc.number, tc.callerName)
			if got := vars["origination_caller_id_number"]; got != tc.wantNumber {
				t.Errorf("caller id number %q, want %q", got, tc.wantNumber)
			}
			if got := vars["origination_caller_id_name"]; got != tc.wantName {
				t.Errorf("caller id name %q, want %q", got, tc.wantName)
			}
		})
	}
}

// FuzzOriginate: any caller id with any contact the agent API accepts.
func FuzzOriginate(f *testing.F) {
	f.Add("+442079460000", "Ada Lovelace", "user/1001")
	f.Add(`1\ 2`, `evil\`, "{sip_h_X-Team='a b'}sofia/gateway/gw/1001")
	f.Add("1}x", "n','x", "{ignore_display_updates=true}user/1001@example.com")
	f.Add("100", "n", "user/1001@${domain_name}")
	f.Fuzz(func(t *testing.T, number, name, contact string) {
		a := domain.Agent{ID: "1001", Contact: contact, RingTimeoutSeconds: 20}
		if a.Validate() != nil {
			return
		}
		checkOriginateTo(t, a, number, name)
	})
}

// checkOriginate builds the originate for a member with that caller id,
// parses it as FreeSWITCH does and fails unless it has its shape. It
// returns the variables of the {…} block.
func checkOriginate(t *testing.T, number, name string) map[string]string {
	t.Helper()
	return checkOriginateTo(t, domain.Agent{ID: "1001", Contact: "user/1001", RingTimeoutSeconds: 20}, number, name)
}

// checkOriginateTo is checkOriginate for agent a. A contact's own
// {variables} join ours in one block.
func checkOriginateTo(t *testing.T, a domain.Agent, number, name string) map[string]string {
	t.Helper()
	o := &projection.Offer{ID: "offer-1", Queue: "support", Member: domain.Member{CallID: "c0ffee00-0000-4000-8000-000000000001", Queue: "support", Node: "fs1", CallerNumber: number, CallerName: name}}
	cmd := originate(a, "leg-1", o)
	args, ok := strings.CutPrefix(cmd, "originate ")
	if !ok {
		t.Fatalf("%q is not an originate", cmd)
	}
	argv := fsSplitArgs(args)
	if len(argv) != 2 || argv[1] != "&park()" {
		t.Fatalf("originate %q: FreeSWITCH reads %d arguments %q, want the dial string and &park()", args, len(argv), argv)
	}
	dial := argv[0]
	end := strings.IndexByte(dial, '}')
	target := a.Contact
	if strings.HasPrefix(target, "{") {
		target = target[strings.IndexByte(target, '}')+1:]
	}
	if !strings.HasPrefix(dial, "{") || end < 0 || dial[end+1:] != target {
		t.Fatalf("dial string %q: want {variables}%s", dial, target)
	}
	if strings.Contains(dial, "$") && !strings.Contains(a.Contact, "$") {
		t.Fatalf("dial string %q carries a $ (FreeSWITCH expands ${…})", dial)
	}
	want := map[string]string{"origination_uuid": "leg-1", "originate_timeout": "20", "ignore_early_media": "true", "hangup_after_bridge": "true",
		"switchyard_offer": "offer-1", "switchyard_member": o.Member.CallID, "switchyard_queue": "support", "switchyard_agent": "1001"}
	vars := map[string]string{}
	for _, kv := range fsSplitVars(dial[1:end]) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue // not a variable: FreeSWITCH skips it (switch_event_create_brackets)
		}
		if _, dup := vars[k]; dup && (want[k] != "" || strings.HasPrefix(k, "origination_caller_id_")) {
			t.Fatalf("variable %s set twice in %q", k, dial)
		}
		vars[k] = v
	}
	for k, v := range vars {
		if k == "origination_caller_id_number" || k == "origination_caller_id_name" {
			if v == "" {
				t.Errorf("%s set to nothing in %q", k, dial)
			}
			continue
		}
		if _, ours := want[k]; !ours {
			continue // the contact's own
		}
		if want[k] != v {
			t.Errorf("variable %s=%q in %q, want %q", k, v, dial, want[k])
		}
	}
	for k := range want {
		if _, ok := vars[k]; !ok {
			t.Errorf("variable %s missing from %q", k, dial)
		}
	}
	return vars
}

// fsSplitArgs splits an api command's arguments as FreeSWITCH's
// switch_separate_string does with ' ' (separate_string_blank_delim,
// src/switch_utils.c): a backslash escapes the next byte, single quotes
// protect spaces, runs of spaces separate. Quotes and escapes are left in
// place: the shape is what matters here.
func fsSplitArgs(s string) []string {
	var out []string
	quoted := false
	start := -1
	for i := 0; i < len(s); i++ {
		c := s[i]
		if start < 0 {
			if c == ' ' {
				continue
			}
			start = i
		}
		switch {
		case c == '\\':
			i++
		case c == '\'':
			quoted = !quoted
		case c == ' ' && !quoted:
			out = append(out, s[start:i])
			start = -1
		}
	}
	if start >= 0 {
		out = append(out, s[start:])
	}
	return out
}

// fsSplitVars splits a {…} block's content on commas as FreeSWITCH's
// separate_string_char_delim does (a backslash escapes, a quote with a
// closing one after it protects), and strips the quotes as
// cleanup_separated_string does.
func fsSplitVars(s string) []string {
	var out []string
	quoted := false
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == '\'' && (quoted || strings.IndexByte(s[i+1:], '\'') >= 0):
			quoted = !quoted
		case c == ',' && !quoted:
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(out, cur.String())
}
