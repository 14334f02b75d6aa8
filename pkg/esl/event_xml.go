package esl

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
)

// DecodeXML decodes the body of a text/event-xml frame.
func DecodeXML(body []byte, lim Limits) (*Event, error) {
	ev := &Event{}
	if err := decodeXMLInto(ev, body, lim.withDefaults()); err != nil {
		return nil, err
	}
	return ev, nil
}

// decodeXMLInto reads <event><headers><Name>value</Name>…</headers>
// <body>…</body></event>. FreeSWITCH URL-encodes header values inside the
// XML as it does in plain events, so they are URL-decoded after XML
// unescaping. XML events are rare (few subscribe to them); encoding/xml is
// fast enough and far safer than a hand parser here.
func decodeXMLInto(ev *Event, body []byte, lim Limits) error {
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	var (
		path  []string // element names from <event> down
		text  []byte
		hdrs  Headers
		seen  bool
		depth int
	)
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return eventErr("xml: %v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth > 3 {
				return eventErr("xml nests deeper than an event")
			}
			path = append(path, t.Name.Local)
			text = text[:0]
			if depth == 1 {
				if t.Name.Local != "event" {
					return eventErr("xml root is <%s>, want <event>", t.Name.Local)
				}
				seen = true
			}
		case xml.CharData:
			text = append(text, t...)
		case xml.EndElement:
			switch {
			case depth == 3 && path[1] == "headers":
				if len(hdrs) >= lim.MaxHeaders {
					return eventErr("more than %d headers", lim.MaxHeaders)
				}
				hdrs = append(hdrs, Header{Name: t.Name.Local, Value: string(urlDecodeAppend(nil, text))})
			case depth == 2 && t.Name.Local == "body":
				ev.Body = append([]byte(nil), text...)
			}
			text = text[:0]
			path = path[:len(path)-1]
			depth--
		}
	}
	if !seen {
		return eventErr("xml holds no <event>")
	}
	ev.Headers = hdrs
	return nil
}
