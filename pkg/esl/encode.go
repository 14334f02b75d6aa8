package esl

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrInjection is returned when a command, header name or value would
// break out of its line. Caller-supplied text (a dial string, an
// application argument) must never be able to smuggle a second command
// onto the socket.
var ErrInjection = errors.New("esl: line break or NUL in a command or header")

func lineSafe(s string) bool {
	return !strings.ContainsAny(s, "\r\n\x00")
}

// AppendCommand appends a client command: the command line, its headers,
// then a blank line, with the body (and its Content-Length) if there is one.
func AppendCommand(dst []byte, line string, hdrs Headers, body []byte) ([]byte, error) {
	if line == "" || !lineSafe(line) {
		return dst, fmt.Errorf("command %.64q: %w", line, ErrInjection)
	}
	for _, h := range hdrs {
		if h.Name == "" || strings.IndexByte(h.Name, ':') >= 0 || !lineSafe(h.Name) || !lineSafe(h.Value) {
			return dst, fmt.Errorf("header %.64q: %w", h.Name, ErrInjection)
		}
	}
	dst = append(dst, line...)
	dst = append(dst, '\n')
	for _, h := range hdrs {
		dst = appendHeader(dst, h.Name, h.Value)
	}
	if len(body) > 0 {
		dst = appendHeader(dst, "Content-Length", strconv.Itoa(len(body)))
		dst = append(dst, '\n')
		return append(dst, body...), nil
	}
	return append(dst, '\n'), nil
}

func appendHeader(dst []byte, name, value string) []byte {
	dst = append(dst, name...)
	dst = append(dst, ": "...)
	dst = append(dst, value...)
	return append(dst, '\n')
}

// The functions below write what FreeSWITCH writes; the simulator and the
// tests use them. Their byte layout follows the transcripts in testdata.

// AppendReply appends a command/reply carrying text in Reply-Text, plus any
// extra headers (Job-UUID for bgapi).
func AppendReply(dst []byte, text string, extra ...Header) []byte {
	dst = appendHeader(dst, "Content-Type", TypeCommandReply)
	dst = appendHeader(dst, "Reply-Text", text)
	for _, h := range extra {
		dst = appendHeader(dst, h.Name, h.Value)
	}
	return append(dst, '\n')
}

// AppendFrame appends a frame with a Content-Length body: Content-Type
// first, as FreeSWITCH orders api/response and disconnect notices.
func AppendFrame(dst []byte, contentType string, body []byte, extra ...Header) []byte {
	dst = appendHeader(dst, "Content-Type", contentType)
	for _, h := range extra {
		dst = appendHeader(dst, h.Name, h.Value)
	}
	dst = appendHeader(dst, "Content-Length", strconv.Itoa(len(body)))
	dst = append(dst, '\n')
	return append(dst, body...)
}

// AppendPlainEventBody serialises an event as switch_event_serialize does:
// URL-encoded values, then, if there is a body, its Content-Length, a blank
// line and the body; otherwise a lone blank line.
func AppendPlainEventBody(dst []byte, ev *Event) []byte {
	for _, h := range ev.Headers {
		if h.Name == "Content-Length" {
			continue // re-derived from the body below
		}
		dst = append(dst, h.Name...)
		dst = append(dst, ": "...)
		dst = AppendURLEncode(dst, h.Value)
		dst = append(dst, '\n')
	}
	if len(ev.Body) > 0 {
		dst = appendHeader(dst, "Content-Length", strconv.Itoa(len(ev.Body)))
		dst = append(dst, '\n')
		return append(dst, ev.Body...)
	}
	return append(dst, '\n')
}

// AppendEventFrame appends an event as a text/event-plain, -json or -xml
// frame, with Content-Length before Content-Type as mod_event_socket sends
// events.
func AppendEventFrame(dst []byte, format string, ev *Event) []byte {
	var body []byte
	switch format {
	case "json":
		body = AppendJSONEventBody(nil, ev)
	case "xml":
		body = AppendXMLEventBody(nil, ev)
	default:
		format = "plain"
		body = AppendPlainEventBody(nil, ev)
	}
	dst = appendHeader(dst, "Content-Length", strconv.Itoa(len(body)))
	dst = appendHeader(dst, "Content-Type", "text/event-"+format)
	dst = append(dst, '\n')
	return append(dst, body...)
}

// AppendJSONEventBody serialises an event as switch_event_serialize_json
// does: one flat object, values as strings, the body under "_body".
func AppendJSONEventBody(dst []byte, ev *Event) []byte {
	dst = append(dst, '{')
	for i, h := range ev.Headers {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, h.Name)
		dst = append(dst, ':')
		dst = appendJSONString(dst, h.Value)
	}
	if len(ev.Body) > 0 {
		if len(ev.Headers) > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `"_body":`...)
		dst = appendJSONString(dst, string(ev.Body))
	}
	return append(dst, '}')
}

// appendJSONString escapes as cJSON does: quotes, backslashes and control
// characters; everything else, UTF-8 included, passes through.
func appendJSONString(dst []byte, s string) []byte {
	const hexdig = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		default:
			if c < 0x20 {
				dst = append(dst, '\\', 'u', '0', '0', hexdig[c>>4], hexdig[c&15])
			} else {
				dst = append(dst, c)
			}
		}
	}
	return append(dst, '"')
}

// AppendXMLEventBody serialises an event as switch_event_xmlize does, with
// URL-encoded header values.
func AppendXMLEventBody(dst []byte, ev *Event) []byte {
	dst = append(dst, "<event>\n  <headers>\n"...)
	for _, h := range ev.Headers {
		dst = append(dst, "    <"...)
		dst = append(dst, h.Name...)
		dst = append(dst, '>')
		dst = appendXMLText(dst, URLEncode(h.Value))
		dst = append(dst, "</"...)
		dst = append(dst, h.Name...)
		dst = append(dst, ">\n"...)
	}
	dst = append(dst, "  </headers>\n"...)
	if len(ev.Body) > 0 {
		dst = append(dst, "  <body>"...)
		dst = appendXMLText(dst, string(ev.Body))
		dst = append(dst, "</body>\n"...)
	}
	return append(dst, "</event>\n"...)
}

func appendXMLText(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '<':
			dst = append(dst, "&lt;"...)
		case '>':
			dst = append(dst, "&gt;"...)
		case '&':
			dst = append(dst, "&amp;"...)
		case '"':
			dst = append(dst, "&quot;"...)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
