// Package originate builds FreeSWITCH originate commands from an API
// request and maps FreeSWITCH's -ERR causes to HTTP answers. Pure: no I/O.
package originate

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
)

// Request is what POST /v1/calls accepts.
type Request struct {
	Node           string            `json:"node,omitempty"`
	Destination    string            `json:"destination,omitempty"`
	Gateway        string            `json:"gateway,omitempty"`
	DialString     string            `json:"dial_string,omitempty"`
	CallerIDNumber string            `json:"caller_id_number,omitempty"`
	CallerIDName   string            `json:"caller_id_name,omitempty"`
	Variables      map[string]string `json:"variables,omitempty"`
	Application    string            `json:"application,omitempty"`
	ApplicationArg string            `json:"application_arg,omitempty"`
	Extension      string            `json:"extension,omitempty"`
	Dialplan       string            `json:"dialplan,omitempty"`
	Context        string            `json:"context,omitempty"`
	TimeoutSeconds int               `json:"timeout_seconds,omitempty"`
}

// FieldError names the request field that is wrong.
type FieldError struct {
	Field, Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

var (
	nameRE = regexp.MustCompile(`^[A-Za-z0-9_.\-]{1,128}$`)
	appRE  = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	// dialRE allows what FreeSWITCH dial strings are made of, but not the
	// characters that would start another leg, another variable block or
	// another command.
	dialRE = regexp.MustCompile(`^[A-Za-z0-9_.:@+*#/=\-]{1,256}$`)
)

// Command builds the originate arguments (what follows "originate ") with
// uuid as origination_uuid, so the caller knows the call's UUID before
// FreeSWITCH answers.
func Command(r Request, uuid string) (string, error) {
	dial, err := dialString(r)
	if err != nil {
		return "", err
	}
	vars := map[string]string{"origination_uuid": uuid}
	for k, v := range r.Variables {
		if !nameRE.MatchString(k) {
			return "", &FieldError{"variables", fmt.Sprintf("variable name %q: use letters, digits, _ . -", k)}
		}
		if k == "origination_uuid" {
			return "", &FieldError{"variables", "origination_uuid is chosen by the gateway"}
		}
		vars[k] = v
	}
	if r.CallerIDNumber != "" {
		vars["origination_caller_id_number"] = r.CallerIDNumber
	}
	if r.CallerIDName != "" {
		vars["origination_caller_id_name"] = r.CallerIDName
	}
	if r.TimeoutSeconds < 0 || r.TimeoutSeconds > 600 {
		return "", &FieldError{"timeout_seconds", "must be between 1 and 600"}
	}
	if r.TimeoutSeconds > 0 {
		vars["originate_timeout"] = fmt.Sprint(r.TimeoutSeconds)
	}
	block, err := varBlock(vars)
	if err != nil {
		return "", err
	}
	target, err := target(r)
	if err != nil {
		return "", err
	}
	return block + dial + " " + target, nil
}

func dialString(r Request) (string, error) {
	switch {
	case r.DialString != "" && (r.Destination != "" || r.Gateway != ""):
		return "", &FieldError{"dial_string", "give either dial_string or destination (with gateway), not both"}
	case r.DialString != "":
		if !dialRE.MatchString(r.DialString) {
			return "", &FieldError{"dial_string", "only one leg of letters, digits and _ . : @ + * # / = - is accepted"}
		}
		return r.DialString, nil
	case r.Destination == "":
		return "", &FieldError{"destination", "destination or dial_string is required"}
	case r.Gateway == "":
		return "", &FieldError{"gateway", "a destination needs the SIP gateway to reach it through (or give a dial_string)"}
	case !nameRE.MatchString(r.Gateway):
		return "", &FieldError{"gateway", "use letters, digits, _ . -"}
	case !dialRE.MatchString(r.Destination) || strings.Contains(r.Destination, "/"):
		return "", &FieldError{"destination", "use digits, +, *, # and letters"}
	}
	return "sofia/gateway/" + r.Gateway + "/" + r.Destination, nil
}

func target(r Request) (string, error) {
	switch {
	case r.Application != "" && r.Extension != "":
		return "", &FieldError{"application", "give either application or extension, not both"}
	case r.Application != "":
		if !appRE.MatchString(r.Application) {
			return "", &FieldError{"application", "not an application name"}
		}
		if strings.ContainsAny(r.ApplicationArg, "\r\n()") {
			return "", &FieldError{"application_arg", "must not contain line breaks or parentheses"}
		}
		return "&" + r.Application + "(" + r.ApplicationArg + ")", nil
	case r.Extension != "":
		parts := []string{r.Extension, r.Dialplan, r.Context}
		if r.Context != "" && r.Dialplan == "" {
			parts[1] = "XML"
		}
		for i, p := range parts {
			if p != "" && !dialRE.MatchString(p) {
				return "", &FieldError{[]string{"extension", "dialplan", "context"}[i], "use letters, digits, _ . -"}
			}
		}
		return strings.TrimSpace(strings.Join(parts, " ")), nil
	}
	return "&park()", nil
}

// varBlock renders {k=v,...}; values containing a comma are quoted as
// FreeSWITCH expects, and characters that would end the block are refused.
func varBlock(vars map[string]string) (string, error) {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		v := vars[k]
		if strings.ContainsAny(v, "{}'\r\n\x00") || len(v) > 1024 {
			return "", &FieldError{"variables", fmt.Sprintf("value of %s must not contain { } ' or line breaks, nor exceed 1024 bytes", k)}
		}
		if strings.ContainsAny(v, ", ") {
			v = "'" + v + "'"
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + "=" + v)
	}
	b.WriteByte('}')
	return b.String(), nil
}

// Failure says how an originate's -ERR cause answers an API call.
type Failure struct {
	Status int
	Code   string
}

// causes maps FreeSWITCH hangup causes to HTTP: the callee's own answer
// (busy, rejected, absent) is the client's 4xx; the network's trouble is
// a 5xx.
var causes = map[string]Failure{
	"USER_BUSY":                 {http.StatusConflict, "user_busy"},
	"CALL_REJECTED":             {http.StatusConflict, "call_rejected"},
	"NO_ANSWER":                 {http.StatusRequestTimeout, "no_answer"},
	"NO_USER_RESPONSE":          {http.StatusRequestTimeout, "no_user_response"},
	"ORIGINATOR_CANCEL":         {http.StatusConflict, "originator_cancel"},
	"SUBSCRIBER_ABSENT":         {http.StatusNotFound, "subscriber_absent"},
	"USER_NOT_REGISTERED":       {http.StatusNotFound, "user_not_registered"},
	"UNALLOCATED_NUMBER":        {http.StatusNotFound, "unallocated_number"},
	"NO_ROUTE_DESTINATION":      {http.StatusNotFound, "no_route_destination"},
	"INVALID_NUMBER_FORMAT":     {http.StatusBadRequest, "invalid_number_format"},
	"INVALID_GATEWAY":           {http.StatusBadRequest, "invalid_gateway"},
	"CHAN_NOT_IMPLEMENTED":      {http.StatusBadRequest, "chan_not_implemented"},
	"INCOMPATIBLE_DESTINATION":  {http.StatusBadRequest, "incompatible_destination"},
	"GATEWAY_DOWN":              {http.StatusBadGateway, "gateway_down"},
	"DESTINATION_OUT_OF_ORDER":  {http.StatusBadGateway, "destination_out_of_order"},
	"NETWORK_OUT_OF_ORDER":      {http.StatusBadGateway, "network_out_of_order"},
	"NORMAL_TEMPORARY_FAILURE":  {http.StatusServiceUnavailable, "normal_temporary_failure"},
	"SWITCH_CONGESTION":         {http.StatusServiceUnavailable, "switch_congestion"},
	"NORMAL_CIRCUIT_CONGESTION": {http.StatusServiceUnavailable, "normal_circuit_congestion"},
	"RECOVERY_ON_TIMER_EXPIRE":  {http.StatusGatewayTimeout, "recovery_on_timer_expire"},
	"ALLOTTED_TIMEOUT":          {http.StatusGatewayTimeout, "allotted_timeout"},
}

// FailureFor maps a cause ("USER_BUSY"); unknown causes are a 502 that
// still carries the cause.
func FailureFor(cause string) Failure {
	cause = strings.TrimSpace(cause)
	if f, ok := causes[cause]; ok {
		return f
	}
	return Failure{http.StatusBadGateway, "originate_failed"}
}
