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

// DecodePlain decodes the body of a text/event-plain frame. body is not
// modified.
func DecodePlain(body []byte, lim Limits) (*Event, error) {
	ev := &Event{}
	if err := decodePlainInPlace(ev, bytes.Clone(body), lim.withDefaults()); err != nil {
		return nil, err
	}
	return ev, nil
}

// decodePlainInPlace decodes "Name: url-encoded-value" lines, a blank line,
// and the event's own body if it declared a Content-Length. It decodes each
// value within its own bytes (decoding only shrinks) and takes strings over
// body, so a header costs no copy at all unless its value carries an escape.
// body must belong to the event: it is rewritten, and its bytes are never
// written again once a string is taken over them.
func decodePlainInPlace(ev *Event, body []byte, lim Limits) error {
	hdrs := make(Headers, 0, min(countLines(body), lim.MaxHeaders))
	contentLength := -1
	rest := body
	for len(rest) > 0 {
		nl := bytes.IndexByte(rest, '\n')
		var line []byte
		if nl < 0 {
			line, rest = rest, nil
		} else {
			line, rest = rest[:nl], rest[nl+1:]
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
		value := trimLeft(line[colon+1:])
		if p := bytes.IndexByte(value, '%'); p >= 0 {
			value = value[:urlDecodeInPlace(value, p)]
		}
		h := Header{Name: bstr(line[:colon]), Value: bstr(value)}
		hdrs = append(hdrs, h)
		if contentLength < 0 && len(h.Name) == len("Content-Length") && strings.EqualFold(h.Name, "Content-Length") {
			v, ok := parseLength(value)
			if !ok {
				return eventErr("event Content-Length %q is not a length", h.Value)
			}
			contentLength = v
		}
	}
	ev.Headers = hdrs
	if contentLength > 0 {
		if contentLength > len(rest) {
			return eventErr("event body has %d bytes, its Content-Length says %d", len(rest), contentLength)
		}
		ev.Body = rest[:contentLength:contentLength]
	}
	return nil
}

// urlDecodeInPlace decodes b, whose first escape candidate is at p, over
// itself (see urlDecodeAppend for the rules) and returns the decoded length.
func urlDecodeInPlace(b []byte, p int) int {
	w := p
	for r := p; r < len(b); {
		c := b[r]
		if c == '%' && r+2 < len(b) {
			if hi, ok := unhex(b[r+1]); ok {
				if lo, ok := unhex(b[r+2]); ok {
					b[w] = hi<<4 | lo
					w++
					r += 3
					continue
				}
			}
		}
		b[w] = c
		w++
		r++
	}
	return w
}

func countLines(b []byte) int {
	return bytes.Count(b, []byte{'\n'}) + 1
}
