package esl

import (
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// DecodeJSON decodes the body of a text/event-json frame.
func DecodeJSON(body []byte, lim Limits) (*Event, error) {
	ev := &Event{}
	if err := decodeJSONInto(ev, body, make([]byte, 0, len(body)), lim.withDefaults()); err != nil {
		return nil, err
	}
	return ev, nil
}

// decodeJSONInto reads the flat object FreeSWITCH's switch_event_serialize_json
// writes: string values, "_body" for the body, and arrays for multi-valued
// headers, which become FreeSWITCH's plain form "ARRAY::a|:b" so that every
// encoding of one event decodes to the same headers. A hand-written scanner
// rather than encoding/json keeps wire order and avoids a map per event.
func decodeJSONInto(ev *Event, body, dec []byte, lim Limits) error {
	p := jsonScanner{src: body, dec: dec}
	hdrs := make(Headers, 0, min(bytesCount(body, ','), lim.MaxHeaders))
	p.skipSpace()
	if !p.consume('{') {
		return p.errorf("expected '{'")
	}
	p.skipSpace()
	if p.consume('}') {
		ev.Headers = hdrs
		return p.end()
	}
	for {
		p.skipSpace()
		name, err := p.str()
		if err != nil {
			return err
		}
		p.skipSpace()
		if !p.consume(':') {
			return p.errorf("expected ':' after %q", name)
		}
		p.skipSpace()
		value, err := p.value()
		if err != nil {
			return err
		}
		if name == "_body" {
			ev.Body = []byte(value)
		} else {
			if len(hdrs) >= lim.MaxHeaders {
				return eventErr("more than %d headers", lim.MaxHeaders)
			}
			hdrs = append(hdrs, Header{Name: name, Value: value})
		}
		p.skipSpace()
		if p.consume(',') {
			continue
		}
		if p.consume('}') {
			break
		}
		return p.errorf("expected ',' or '}'")
	}
	ev.Headers = hdrs
	return p.end()
}

func bytesCount(b []byte, c byte) int {
	n := 1
	for _, x := range b {
		if x == c {
			n++
		}
	}
	return n
}

type jsonScanner struct {
	src []byte
	pos int
	// dec receives decoded strings; it is sized to src and decoding only
	// shrinks, so strings taken over it stay valid (see decodePlainInto).
	dec []byte
}

func (p *jsonScanner) errorf(format string, args ...any) error {
	return eventErr("json at byte %d: "+format, append([]any{p.pos}, args...)...)
}

func (p *jsonScanner) skipSpace() {
	for p.pos < len(p.src) {
		switch p.src[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsonScanner) consume(c byte) bool {
	if p.pos < len(p.src) && p.src[p.pos] == c {
		p.pos++
		return true
	}
	return false
}

func (p *jsonScanner) end() error {
	p.skipSpace()
	if p.pos != len(p.src) {
		return p.errorf("trailing data after the object")
	}
	return nil
}

// value reads a string, an array of scalars, or a bare scalar (number,
// true, false, null) kept as its text.
func (p *jsonScanner) value() (string, error) {
	if p.pos >= len(p.src) {
		return "", p.errorf("unexpected end")
	}
	switch c := p.src[p.pos]; {
	case c == '"':
		return p.str()
	case c == '[':
		return p.array()
	case c == '{':
		return "", p.errorf("nested objects are not FreeSWITCH events")
	default:
		start := p.pos
		for p.pos < len(p.src) {
			c := p.src[p.pos]
			if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\n' || c == '\r' || c == '\t' {
				break
			}
			p.pos++
		}
		tok := p.src[start:p.pos]
		if !validScalar(tok) {
			return "", p.errorf("bad value %.32q", tok)
		}
		s := len(p.dec)
		p.dec = append(p.dec, tok...)
		return bstr(p.dec[s:]), nil
	}
}

func validScalar(tok []byte) bool {
	switch string(tok) {
	case "true", "false", "null":
		return true
	}
	if len(tok) == 0 {
		return false
	}
	for _, c := range tok {
		if !(c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E') {
			return false
		}
	}
	return true
}

// array joins the elements as FreeSWITCH's plain encoding does. The result
// may be longer than its JSON, so it gets its own string.
func (p *jsonScanner) array() (string, error) {
	p.pos++ // '['
	var sb strings.Builder
	sb.WriteString("ARRAY::")
	for i := 0; ; i++ {
		p.skipSpace()
		if i == 0 && p.consume(']') {
			return sb.String(), nil
		}
		v, err := p.value()
		if err != nil {
			return "", err
		}
		if i > 0 {
			sb.WriteString("|:")
		}
		sb.WriteString(v)
		p.skipSpace()
		if p.consume(',') {
			continue
		}
		if p.consume(']') {
			return sb.String(), nil
		}
		return "", p.errorf("expected ',' or ']'")
	}
}

// str reads a JSON string starting at '"' and returns it unescaped.
func (p *jsonScanner) str() (string, error) {
	if !p.consume('"') {
		return "", p.errorf("expected a string")
	}
	start := len(p.dec)
	for {
		// Copy the run up to the next quote or backslash in one go.
		run := p.pos
		for run < len(p.src) && p.src[run] != '"' && p.src[run] != '\\' {
			run++
		}
		p.dec = append(p.dec, p.src[p.pos:run]...)
		p.pos = run
		if p.pos >= len(p.src) {
			return "", p.errorf("unterminated string")
		}
		if p.src[p.pos] == '"' {
			p.pos++
			return bstr(p.dec[start:]), nil
		}
		if err := p.escape(); err != nil {
			return "", err
		}
	}
}

func (p *jsonScanner) escape() error {
	if p.pos+1 >= len(p.src) {
		return p.errorf("unterminated escape")
	}
	c := p.src[p.pos+1]
	p.pos += 2
	switch c {
	case '"', '\\', '/':
		p.dec = append(p.dec, c)
	case 'b':
		p.dec = append(p.dec, '\b')
	case 'f':
		p.dec = append(p.dec, '\f')
	case 'n':
		p.dec = append(p.dec, '\n')
	case 'r':
		p.dec = append(p.dec, '\r')
	case 't':
		p.dec = append(p.dec, '\t')
	case 'u':
		r, ok := p.hex4()
		if !ok {
			return p.errorf("bad \\u escape")
		}
		if utf16.IsSurrogate(r) {
			r2 := utf8.RuneError
			if p.pos+1 < len(p.src) && p.src[p.pos] == '\\' && p.src[p.pos+1] == 'u' {
				save := p.pos
				p.pos += 2
				if lo, ok := p.hex4(); ok {
					r2 = utf16.DecodeRune(r, lo)
				} else {
					p.pos = save
				}
			}
			r = r2
		}
		p.dec = utf8.AppendRune(p.dec, r)
	default:
		return p.errorf("bad escape \\%c", c)
	}
	return nil
}

func (p *jsonScanner) hex4() (rune, bool) {
	if p.pos+4 > len(p.src) {
		return 0, false
	}
	var r rune
	for _, c := range p.src[p.pos : p.pos+4] {
		v, ok := unhex(c)
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	p.pos += 4
	return r, true
}
