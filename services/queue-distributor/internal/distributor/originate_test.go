package distributor

import (
	"fmt"
	"maps"
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
		{"blank name", "1", "  ", "1", ""},
		{"another endpoint in the name", "1", "a:_:sofia/gateway/carrier/1900", "1", "a_sofia/gateway/carrier/1900"},
		{"another endpoint in the number", "1:_:2", "n", "1_2", "n"},
		{"alternatives in the name", "1", "a|sofia/gateway/carrier/1900", "1", "asofia/gateway/carrier/1900"},
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
	f.Add("1:_:2", "a:_:b", "[leg_timeout=10,ORIGINATION_UUID=x]user/1001")
	f.Add("1", "n", "{origination_caller_id_name=Support}user/1001,user/1002|user/1003")
	f.Fuzz(func(t *testing.T, number, name, contact string) {
		a := domain.Agent{ID: "1001", Contact: contact, RingTimeoutSeconds: 20}
		if a.Validate() != nil {
			return
		}
		checkOriginateTo(t, a, number, name)
	})
}

// checkOriginate builds the originate for a member with that caller id,
// reads it as FreeSWITCH does and fails unless it rings one endpoint with
// our variables. It returns that leg's variables.
func checkOriginate(t *testing.T, number, name string) map[string]string {
	t.Helper()
	return checkOriginateTo(t, domain.Agent{ID: "1001", Contact: "user/1001", RingTimeoutSeconds: 20}, number, name)
}

// checkOriginateTo is checkOriginate for agent a, whose contact's own
// variables join ours.
func checkOriginateTo(t *testing.T, a domain.Agent, number, name string) map[string]string {
	t.Helper()
	o := &projection.Offer{ID: "offer-1", Queue: "support", Member: domain.Member{CallID: "c0ffee00-0000-4000-8000-000000000001", Queue: "support", Node: "fs1", CallerNumber: number, CallerName: name}}
	cmd := originate(a, "leg-1", o)
	args, ok := strings.CutPrefix(cmd, "originate ")
	if !ok {
		t.Fatalf("%q is not an originate", cmd)
	}
	legs, app, err := fsOriginate(args)
	if err != nil {
		t.Fatalf("originate %s: FreeSWITCH would refuse it: %v", args, err)
	}
	if len(legs) != 1 || app != "&park()" {
		t.Fatalf("originate %s: FreeSWITCH rings %d endpoints %+v then %q, want one and &park()", args, len(legs), legs, app)
	}
	endpoint := a.Contact
	if strings.HasPrefix(endpoint, "{") {
		endpoint = endpoint[strings.IndexByte(endpoint, '}')+1:]
	}
	if strings.HasPrefix(endpoint, "[") {
		endpoint = endpoint[strings.IndexByte(endpoint, ']')+1:]
	}
	leg := legs[0]
	if leg.endpoint != endpoint {
		t.Fatalf("originate %s rings %q, want %q", args, leg.endpoint, endpoint)
	}
	if strings.Contains(cmd, "$") && !strings.Contains(a.Contact, "$") {
		t.Fatalf("originate %s carries a $ (FreeSWITCH expands ${…})", args)
	}
	want := map[string]string{"origination_uuid": "leg-1", "originate_timeout": "20", "ignore_early_media": "true", "hangup_after_bridge": "true",
		"switchyard_offer": "offer-1", "switchyard_member": o.Member.CallID, "switchyard_queue": "support", "switchyard_agent": "1001"}
	for k, v := range want {
		if leg.vars[k] != v {
			t.Errorf("originate %s: %s=%q, want %q", args, k, leg.vars[k], v)
		}
	}
	for k := range leg.vars {
		if strings.HasPrefix(k, "switchyard_") && want[k] == "" {
			t.Errorf("originate %s sets %s", args, k)
		}
	}
	contactSets := func(k string) bool { return strings.Contains(strings.ToLower(a.Contact), k+"=") }
	for _, k := range []string{"origination_caller_id_number", "origination_caller_id_name"} {
		if v, ok := leg.vars[k]; ok && v == "" && !contactSets(k) {
			t.Errorf("originate %s sets %s to nothing", args, k)
		}
	}
	return leg.vars
}

// fsLeg is one endpoint FreeSWITCH would ring, with its variables (names
// lower-cased: FreeSWITCH compares them without case, and the last set
// wins).
type fsLeg struct {
	endpoint string
	vars     map[string]string
}

// fsOriginate reads the arguments of api originate as FreeSWITCH does
// (originate_function in mod_commands.c, switch_ivr_originate in
// switch_ivr_originate.c): the arguments, each cleaned of its quotes and
// escapes; in the dial string, ':_:' anywhere makes several dial strings;
// leading {…} blocks are variables for every leg; '|' and then ',' (not
// inside […]) separate endpoints; a leading […] holds one leg's variables.
func fsOriginate(args string) (legs []fsLeg, app string, err error) {
	argv := fsSplitArgs(args)
	if len(argv) != 2 {
		return nil, "", fmt.Errorf("%d arguments %q, want the dial string and the application", len(argv), argv)
	}
	dial, app := fsCleanup(argv[0]), fsCleanup(argv[1])
	if parts := strings.Split(dial, ":_:"); len(parts) > 1 {
		for _, p := range parts {
			legs = append(legs, fsLeg{endpoint: p})
		}
		return legs, app, nil
	}
	global := map[string]string{}
	for strings.HasPrefix(dial, "{") {
		end := fsEndParen(dial, '{', '}')
		if end < 0 {
			return nil, "", fmt.Errorf("{ without its } in %q", dial)
		}
		fsVars(dial[1:end], global)
		dial = strings.TrimLeft(dial[end+1:], " ")
	}
	for _, alt := range strings.Split(dial, "|") {
		for _, peer := range fsSplitPeers(alt) {
			leg := fsLeg{vars: map[string]string{}}
			maps.Copy(leg.vars, global)
			peer = strings.TrimLeft(peer, " ")
			for strings.HasPrefix(peer, "[") {
				end := fsEndParen(peer, '[', ']')
				if end < 0 {
					return nil, "", fmt.Errorf("[ without its ] in %q", peer)
				}
				fsVars(peer[1:end], leg.vars)
				peer = peer[end+1:]
			}
			leg.endpoint = peer
			legs = append(legs, leg)
		}
	}
	return legs, app, nil
}

// fsSplitArgs splits an api command's arguments as switch_separate_string
// does with ' ' (separate_string_blank_delim, src/switch_utils.c): a
// backslash escapes the next byte, single quotes protect spaces, runs of
// spaces separate. Each argument is returned as found.
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

// fsCleanup is cleanup_separated_string: leading spaces go, a backslash
// before a quote, a backslash or n/r/t/s gives that character, a quote
// with a partner after it (or closing one) is dropped, trailing unquoted
// spaces go.
func fsCleanup(s string) string {
	s = strings.TrimLeft(s, " ")
	var out []byte
	end := 0
	quoted := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) {
			if e, ok := map[byte]byte{'\'': '\'', '"': '"', '\\': '\\', 'n': '\n', 'r': '\r', 't': '\t', 's': ' '}[s[i+1]]; ok {
				i++
				out = append(out, e)
				end = len(out)
				continue
			}
		}
		if c == '\'' && (quoted || strings.IndexByte(s[i+1:], '\'') >= 0) {
			quoted = !quoted
			if quoted {
				end = len(out)
			}
			continue
		}
		out = append(out, c)
		if c != ' ' || quoted {
			end = len(out)
		}
	}
	return string(out[:end])
}

// fsEndParen is switch_find_end_paren: the index of the close matching
// the open at s[0], counting nested opens; -1 when there is none.
func fsEndParen(s string, open, close byte) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case open:
			depth++
		case close:
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// fsVars adds a block's name=value items (split at commas) to vars, as
// switch_event_create_brackets does: an item without '=' is skipped.
func fsVars(block string, vars map[string]string) {
	for _, kv := range strings.Split(block, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[strings.ToLower(fsCleanup(k))] = fsCleanup(v)
		}
	}
}

// fsSplitPeers splits one '|' alternative into endpoints at commas that
// are not inside a […] block.
func fsSplitPeers(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[':
			depth++
		case ']':
			depth--
		case ',':
			if depth <= 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}
