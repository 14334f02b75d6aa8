package esl

import (
	"bytes"
	"strings"
	"unsafe"
)

// Header is one "Name: value" pair as FreeSWITCH sent it.
type Header struct {
	Name  string
	Value string
}

// Headers keeps the headers of a frame or event in wire order. Order matters:
// FreeSWITCH may send the same name twice (and, in JSON events, the same name
// in two spellings), and a faithful re-serialisation needs the original order.
type Headers []Header

// Get returns the value of the first header named exactly name, falling back
// to a case-insensitive match so that callers who type "Unique-Id" still find
// FreeSWITCH's "Unique-ID". An exact match always wins: JSON events carry both
// "Channel-Read-Codec-Name" and "channel-read-codec-name".
func (h Headers) Get(name string) string {
	v, _ := h.Lookup(name)
	return v
}

// Lookup is Get that also says whether the header was present.
func (h Headers) Lookup(name string) (string, bool) {
	for i := range h {
		if h[i].Name == name {
			return h[i].Value, true
		}
	}
	for i := range h {
		if strings.EqualFold(h[i].Name, name) {
			return h[i].Value, true
		}
	}
	return "", false
}

// Map copies the headers into a map; for duplicates the first value wins,
// matching Get.
func (h Headers) Map() map[string]string {
	m := make(map[string]string, len(h))
	for i := range h {
		if _, dup := m[h[i].Name]; !dup {
			m[h[i].Name] = h[i].Value
		}
	}
	return m
}

// bstr views b as a string without copying. Callers guarantee b is never
// written again: every buffer handed to bstr is owned by one frame or event
// and filled completely before the first string is taken over it.
func bstr(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// urlDecodeAppend appends src to dst with %XX escapes decoded exactly as
// FreeSWITCH's switch_url_decode does: only "%" followed by two hex digits is
// an escape, "+" stays "+", and a malformed escape is kept literally (the
// sender is FreeSWITCH; refusing its output would lose events).
func urlDecodeAppend(dst, src []byte) []byte {
	for {
		i := indexPercent(src)
		if i < 0 {
			return append(dst, src...)
		}
		dst = append(dst, src[:i]...)
		src = src[i:]
		if len(src) >= 3 {
			if hi, ok := unhex(src[1]); ok {
				if lo, ok := unhex(src[2]); ok {
					dst = append(dst, hi<<4|lo)
					src = src[3:]
					continue
				}
			}
		}
		dst = append(dst, '%')
		src = src[1:]
	}
}

func indexPercent(b []byte) int { return bytes.IndexByte(b, '%') }

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// URLDecode decodes a value the way FreeSWITCH's switch_url_decode does.
func URLDecode(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	return string(urlDecodeAppend(make([]byte, 0, len(s)), []byte(s)))
}

// URLEncode encodes a header value the way FreeSWITCH's switch_url_encode
// does when it serialises plain events: control bytes, bytes above '~' and the
// characters of urlUnsafe become %XX, and an escape that is already valid
// (% followed by two hex digits) is left alone, because FreeSWITCH does not
// double-encode. Commas, slashes and parentheses pass through, as the
// transcripts show ("Mon,%2023%20Nov", "agents%20%26park()").
func URLEncode(s string) string {
	return string(AppendURLEncode(nil, s))
}

const urlUnsafe = "\r\n \"#%&+:;<=>?@[\\]^`{|}"

// AppendURLEncode is URLEncode appending to dst.
func AppendURLEncode(dst []byte, s string) []byte {
	const hexdig = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			dst = append(dst, c)
			continue
		}
		if c < ' ' || c > '~' || strings.IndexByte(urlUnsafe, c) >= 0 {
			dst = append(dst, '%', hexdig[c>>4], hexdig[c&15])
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

func isHex(c byte) bool {
	_, ok := unhex(c)
	return ok
}

// NewHeaders builds headers from name, value pairs: NewHeaders("Event-Name",
// "CUSTOM", "Event-Subclass", "a::b"). An odd trailing name gets "".
func NewHeaders(kv ...string) Headers {
	h := make(Headers, 0, (len(kv)+1)/2)
	for i := 0; i < len(kv); i += 2 {
		v := ""
		if i+1 < len(kv) {
			v = kv[i+1]
		}
		h = append(h, Header{Name: kv[i], Value: v})
	}
	return h
}
