package esl

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Event is a FreeSWITCH event: headers in wire order, values decoded, and an
// optional body (a BACKGROUND_JOB's result, a sendevent's payload).
type Event struct {
	Headers Headers
	Body    []byte
}

// Get returns a header's value (see Headers.Get).
func (e *Event) Get(name string) string { return e.Headers.Get(name) }

// Name is the Event-Name header.
func (e *Event) Name() string { return e.Headers.Get("Event-Name") }

// UniqueID is the channel UUID the event belongs to, if any.
func (e *Event) UniqueID() string { return e.Headers.Get("Unique-ID") }

// ErrEventSyntax is wrapped by every event decode error.
var ErrEventSyntax = errors.New("esl: malformed event")

func eventErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrEventSyntax, fmt.Sprintf(format, args...))
}

// DecodePlain decodes the body of a text/event-plain frame.
func DecodePlain(body []byte, lim Limits) (*Event, error) {
	ev := &Event{}
	if err := decodePlainInto(ev, body, lim.withDefaults()); err != nil {
		return nil, err
	}
	return ev, nil
}

// decodePlainInto decodes "Name: url-encoded-value" lines, a blank line, and
// the event's own body if it declared a Content-Length. Decoded names,
// values and the body are written into one buffer sized to the input:
// decoding only ever shrinks, so the buffer never moves and the strings
// taken over it stay valid.
func decodePlainInto(ev *Event, body []byte, lim Limits) error {
	lines := bytes.Count(body, []byte{'\n'}) + 1
	dec := make([]byte, 0, len(body))
	hdrs := make(Headers, 0, min(lines, lim.MaxHeaders))
	contentLength := -1
	for len(body) > 0 {
		nl := bytes.IndexByte(body, '\n')
		var line []byte
		if nl < 0 {
			line, body = body, nil
		} else {
			line, body = body[:nl], body[nl+1:]
		}
		if k := len(line); k > 0 && line[k-1] == '\r' {
			line = line[:k-1]
		}
		if len(line) == 0 {
			break
		}
		if len(hdrs) >= lim.MaxHeaders {
			return eventErr("more than %d headers", lim.MaxHeaders)
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return eventErr("header line without a name: %.64q", line)
		}
		start := len(dec)
		dec = append(dec, line[:colon]...)
		mid := len(dec)
		dec = urlDecodeAppend(dec, trimLeft(line[colon+1:]))
		h := Header{Name: bstr(dec[start:mid]), Value: bstr(dec[mid:])}
		hdrs = append(hdrs, h)
		if contentLength < 0 && strings.EqualFold(h.Name, "Content-Length") {
			n, ok := parseLength([]byte(h.Value))
			if !ok {
				return eventErr("event Content-Length %q is not a length", h.Value)
			}
			contentLength = n
		}
	}
	ev.Headers = hdrs
	if contentLength > 0 {
		if contentLength > len(body) {
			return eventErr("event body has %d bytes, its Content-Length says %d", len(body), contentLength)
		}
		start := len(dec)
		dec = append(dec, body[:contentLength]...)
		ev.Body = dec[start:]
	}
	return nil
}
