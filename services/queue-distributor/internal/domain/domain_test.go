package domain

import (
	"errors"
	"testing"
)

func TestQueueValidation(t *testing.T) {
	yes := true
	for _, tc := range []struct {
		name  string
		q     Queue
		field string // "" valid
	}{
		{"defaults", Queue{Name: "support"}, ""},
		{"bad name", Queue{Name: "no spaces"}, "name"},
		{"bad strategy", Queue{Name: "q", Strategy: "loudest"}, "strategy"},
		{"exit key not DTMF", Queue{Name: "q", ExitKeys: "1x"}, "exit_keys"},
		{"moh with a space", Queue{Name: "q", MOHSound: "local_stream://moh x"}, "moh_sound"},
		{"announce without frequency", Queue{Name: "q", AnnounceSound: "ivr/hold.wav"}, "announce_frequency_seconds"},
		{"position without frequency", Queue{Name: "q", AnnouncePosition: true}, "announce_frequency_seconds"},
		{"announce too often", Queue{Name: "q", AnnouncePosition: true, AnnounceFrequencySeconds: 2}, "announce_frequency_seconds"},
		{"announcements", Queue{Name: "q", AnnounceSound: "ivr/hold.wav", AnnounceWaitTime: true, AnnounceFrequencySeconds: 30}, ""},
		{"negative no-agent wait", Queue{Name: "q", MaxWaitNoAgentSeconds: -1}, "max_wait_with_no_agent_seconds"},
		{"tier rule kept", Queue{Name: "q", TierRuleNoAgentNoWait: &yes}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.q.Validate()
			var fe *FieldError
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
				t.Fatalf("err %v, want one on %s", err, tc.field)
			}
		})
	}
	q := Queue{Name: "q", MaxWaitNoAgentSeconds: 30}
	if err := q.Validate(); err != nil || q.MaxWaitNoAgentReachedSeconds != 5 || !*q.TierRuleNoAgentNoWait || q.ServiceLevelSeconds != 20 {
		t.Fatalf("defaults not filled: %+v %v", q, err)
	}
}

// An agent's contact becomes the end of an originate command: what would
// break that command, or replace the variables the distributor follows a
// ring by, is refused with the reason; what mod_callcenter users write is
// accepted.
func TestAgentContact(t *testing.T) {
	for _, tc := range []struct {
		contact string
		ok      bool
	}{
		{"user/1000", true},
		{"sofia/gateway/carrier/+442079460000", true},
		{"user/1000@${domain_name}", true},
		{"[leg_timeout=10]user/1000", true},
		{"{ignore_display_updates=true}user/1000", true},
		{"{sip_h_X-Team='night shift',absolute_codec_string=PCMU}sofia/internal/1000@pbx", true},
		{"", false},
		{"user/1000 &bridge(user/2)", false},
		{"user/1000'", false},
		{`user/1000\`, false},
		{"{sip_h_X='a}user/1000", false},
		{"{sip_h_X=a b}user/1000", false},
		{"{ignore_display_updates=true}", false},
		{"{ignore_display_updates=true", false},
		{"{a={b}}user/1000", false},
		{"{origination_uuid=7c0f}user/1000", false},
		{"{originate_timeout=5}user/1000", false},
		{"{switchyard_agent=other}user/1000", false},
		{"{=x}user/1000", false},
		{"{ignore_display_updates}user/1000", false},
		{"user/1000\n", false},
		{"[leg_timeout=10,sip_h_X-Team=night]user/1000", true},
		{"{ORIGINATION_UUID=7c0f}user/1000", false},
		{"{Originate_Timeout=600}user/1000", false},
		{"[origination_uuid=7c0f]user/1000", false},
		{"[SWITCHYARD_agent=x]user/1000", false},
		{"user/1000,user/1001", false},
		{"user/1000|user/1001", false},
		{"user/1000:_:user/1001", false},
		{"{x=1}user/1000:_:sofia/gateway/carrier/1900", false},
		{"<x=1>user/1000", false},
		{"user/1000@${bgapi(originate sofia/gateway/x/1)}", false},
		{"user/$1000", false},
		{"[x='a b']user/1000", false},
		{"{origination_caller_id_name=Support}user/1000", true},
	} {
		a := Agent{ID: "1000", Contact: tc.contact}
		err := a.Validate()
		var fe *FieldError
		switch {
		case tc.ok && err != nil:
			t.Errorf("%q refused: %v", tc.contact, err)
		case !tc.ok && (!errors.As(err, &fe) || fe.Field != "contact"):
			t.Errorf("%q: err %v, want one on contact", tc.contact, err)
		}
	}
}
