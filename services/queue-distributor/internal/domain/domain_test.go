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
