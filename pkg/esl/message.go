package esl

import (
	"errors"
	"strings"
)

// Content types FreeSWITCH puts on frames.
const (
	TypeAuthRequest      = "auth/request"
	TypeCommandReply     = "command/reply"
	TypeAPIResponse      = "api/response"
	TypeEventPlain       = "text/event-plain"
	TypeEventJSON        = "text/event-json"
	TypeEventXML         = "text/event-xml"
	TypeLogData          = "log/data"
	TypeDisconnectNotice = "text/disconnect-notice"
	TypeRudeRejection    = "text/rude-rejection"
)

// ErrNotEvent is returned by Message.Event for frames that carry no event.
var ErrNotEvent = errors.New("esl: frame carries no event")

// Message is one frame from FreeSWITCH. Unknown content types are handed up
// as they are, never treated as fatal.
type Message struct {
	Type    string  // Content-Type, "" if the frame had none
	Headers Headers // the frame's own headers, as sent (not URL-decoded)
	// Body holds the frame's Content-Length bytes. Event frames are decoded
	// in place when read (see Reader), so for them Body is nil: use Event,
	// and AppendEventFrame to put one back on the wire.
	Body []byte

	event    Event
	eventErr error
	hdrArr   [4]Header // most frames have two or three headers: no allocation
}

// Event returns the event a text/event-plain, -json or -xml frame carries,
// decoded when the frame was read. A well-framed event that failed to decode
// returns the decode error; the connection is still good.
func (m *Message) Event() (*Event, error) {
	switch m.Type {
	case TypeEventPlain, TypeEventJSON, TypeEventXML:
		if m.eventErr != nil {
			return nil, m.eventErr
		}
		return &m.event, nil
	}
	return nil, ErrNotEvent
}

// decodeEvent decodes an event frame's body in place: decoding only ever
// shrinks text, so the decoded bytes are written over the raw ones behind the
// read position, and the frame's one allocation serves both. This halves
// what each event costs the garbage collector, which dominates the decode
// benchmark (docs/benchmarks.md).
func (m *Message) decodeEvent(lim Limits) {
	switch m.Type {
	case TypeEventPlain:
		m.eventErr = decodePlainInPlace(&m.event, m.Body, lim)
	case TypeEventJSON:
		m.eventErr = decodeJSONInto(&m.event, m.Body, m.Body[:0], lim)
	case TypeEventXML:
		m.eventErr = decodeXMLInto(&m.event, m.Body, lim)
	default:
		return
	}
	m.Body = nil
}

// ReplyText is the Reply-Text of a command/reply.
func (m *Message) ReplyText() string { return m.Headers.Get("Reply-Text") }

// Result is what a reply says: Reply-Text for command/reply, the body for
// api/response, trimmed of its trailing newline.
func (m *Message) Result() string {
	if m.Type == TypeAPIResponse {
		return strings.TrimRight(string(m.Body), "\n")
	}
	return URLDecode(m.ReplyText())
}

// OK reports whether a reply starts with "+OK".
func (m *Message) OK() bool { return strings.HasPrefix(m.Result(), "+OK") }

// ChannelData decodes the reply to an outbound socket's "connect": the
// channel's headers arrive URL-encoded in the frame's own header block, with
// no Content-Length.
func (m *Message) ChannelData() *Event {
	ev := &Event{Headers: make(Headers, 0, len(m.Headers))}
	for _, h := range m.Headers {
		ev.Headers = append(ev.Headers, Header{Name: h.Name, Value: URLDecode(h.Value)})
	}
	return ev
}

// Command is one command sent by a client: "api status", "sendmsg <uuid>"
// with headers, "sendevent NAME" with headers and a body.
type Command struct {
	Line    string // the first line, e.g. "bgapi originate ..."
	Headers Headers
	Body    []byte
}

// Verb is the first word of the command line ("api", "event", "sendmsg").
func (c *Command) Verb() string {
	verb, _, _ := strings.Cut(c.Line, " ")
	return verb
}

// Arg is everything after the verb.
func (c *Command) Arg() string {
	_, arg, _ := strings.Cut(c.Line, " ")
	return strings.TrimSpace(arg)
}
