package originate

import (
	"errors"
	"net/http"
	"testing"
)

func TestCommand(t *testing.T) {
	tests := []struct {
		name string
		req  Request
		want string
	}{
		{"gateway destination, park", Request{Destination: "+15551234", Gateway: "telnyx", CallerIDNumber: "+4412345", CallerIDName: "Alice Smith"},
			"{origination_caller_id_name='Alice Smith',origination_caller_id_number=+4412345,origination_uuid=U}sofia/gateway/telnyx/+15551234 &park()"},
		{"dial string to an extension", Request{DialString: "user/1000@default", Extension: "8084", Context: "default", TimeoutSeconds: 20},
			"{originate_timeout=20,origination_uuid=U}user/1000@default 8084 XML default"},
		{"application with variables", Request{DialString: "loopback/agent-1/agents", Application: "playback", ApplicationArg: "/tmp/a.wav", Variables: map[string]string{"x": "a,b"}},
			"{origination_uuid=U,x='a,b'}loopback/agent-1/agents &playback(/tmp/a.wav)"},
	}
	for _, tt := range tests {
		got, err := Command(tt.req, "U")
		if err != nil || got != tt.want {
			t.Errorf("%s:\n got %q %v\nwant %q", tt.name, got, err, tt.want)
		}
	}
}

func TestCommandRefusesInjection(t *testing.T) {
	tests := []struct {
		field string
		req   Request
	}{
		{"destination", Request{}},
		{"gateway", Request{Destination: "123"}},
		{"dial_string", Request{DialString: "user/1000,user/1001"}},
		{"dial_string", Request{DialString: "user/1000 &park()\napi hupall"}},
		{"dial_string", Request{DialString: "a", Destination: "b"}},
		{"destination", Request{Destination: "1/../x", Gateway: "g"}},
		{"variables", Request{DialString: "user/1", Variables: map[string]string{"a}b": "1"}}},
		{"variables", Request{DialString: "user/1", Variables: map[string]string{"a": "x}user/666{"}}},
		{"variables", Request{DialString: "user/1", Variables: map[string]string{"origination_uuid": "mine"}}},
		{"application", Request{DialString: "user/1", Application: "hangup;api"}},
		{"application_arg", Request{DialString: "user/1", Application: "playback", ApplicationArg: "a) &hupall("}},
		{"application", Request{DialString: "user/1", Application: "park", Extension: "1"}},
		{"timeout_seconds", Request{DialString: "user/1", TimeoutSeconds: 9999}},
		{"context", Request{DialString: "user/1", Extension: "1", Context: "a b"}},
	}
	for _, tt := range tests {
		_, err := Command(tt.req, "U")
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("%+v: got %v, want an error on %s", tt.req, err, tt.field)
		}
	}
}

func TestFailureFor(t *testing.T) {
	tests := map[string]int{
		"USER_BUSY": http.StatusConflict, "CALL_REJECTED": http.StatusConflict, "SUBSCRIBER_ABSENT": http.StatusNotFound,
		"NO_ANSWER": http.StatusRequestTimeout, "INVALID_GATEWAY": http.StatusBadRequest, "GATEWAY_DOWN": http.StatusBadGateway,
		"SOMETHING_NEW": http.StatusBadGateway,
	}
	for cause, status := range tests {
		if f := FailureFor(cause); f.Status != status {
			t.Errorf("%s: %d, want %d", cause, f.Status, status)
		}
	}
}
