// Package servicegateway is a fake of the SOAP "service-gateway" through
// which legacy orgs reach Salesforce objects. It speaks SOAP 1.1 with the
// Salesforce partner API's messages — query, queryMore, retrieve, update —
// authenticated by a SessionHeader the gateway issued for the org, and
// answers errors as SOAP faults (faultcode sf:MALFORMED_QUERY,
// sf:INVALID_SESSION_ID, sf:REQUEST_LIMIT_EXCEEDED, …) with HTTP 500.
// An outage is an HTTP 503 with an HTML body, as the load balancer in
// front of it sends.
package servicegateway

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/switchyard-voice/switchyard/pkg/crmfake"
	"github.com/switchyard-voice/switchyard/pkg/crmfake/soql"
)

// Namespaces of the messages.
const (
	NSEnvelope = "http://schemas.xmlsoap.org/soap/envelope/"
	NSPartner  = "urn:partner.soap.sforce.com"
	NSSObject  = "urn:sobject.partner.soap.sforce.com"
	NSFault    = "urn:fault.partner.soap.sforce.com"
	NSXSI      = "http://www.w3.org/2001/XMLSchema-instance"
)

// Options configure the fake.
type Options struct {
	// BatchSize is the number of records per query result (queryMore for
	// the rest); 0 means 500, the partner API's default.
	BatchSize int
}

// Server is the fake gateway; Data holds the org's records.
type Server struct {
	crmfake.Switches
	Data *soql.Store

	opts     Options
	mu       sync.Mutex
	sessions map[string]bool
	cursors  map[string]*cursor
	queries  []string
	bodies   [][]byte
	seq      int
}

type cursor struct {
	object string
	rows   []soql.Record
}

// New builds the fake; serve it with httptest.NewServer (any path).
func New(opts Options) *Server {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	return &Server{Data: soql.NewStore(), opts: opts, sessions: map[string]bool{}, cursors: map[string]*cursor{}}
}

// AddSession accepts a session id (the key the gateway issued an org).
func (s *Server) AddSession(id string) {
	s.mu.Lock()
	s.sessions[id] = true
	s.mu.Unlock()
}

// ExpireSessions forgets every session id: the next call faults with
// sf:INVALID_SESSION_ID.
func (s *Server) ExpireSessions() {
	s.mu.Lock()
	clear(s.sessions)
	s.mu.Unlock()
}

// Queries are the SOQL texts received (query calls), in order.
func (s *Server) Queries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.queries...)
}

// Bodies are the raw request bodies received, in order.
func (s *Server) Bodies() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.bodies...)
}

// node is any XML element.
type node struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Text     string     `xml:",chardata"`
	Children []node     `xml:",any"`
}

func (n *node) child(local string) *node {
	for i := range n.Children {
		if n.Children[i].XMLName.Local == local {
			return &n.Children[i]
		}
	}
	return nil
}

func (n *node) nil() bool {
	for _, a := range n.Attrs {
		if a.Name.Local == "nil" && a.Value == "true" {
			return true
		}
	}
	return false
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "SOAP requests are POSTed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<20))
	if err != nil {
		fault(w, "soapenv:Client", "request body too large or unreadable", "")
		return
	}
	s.mu.Lock()
	s.bodies = append(s.bodies, body)
	s.mu.Unlock()
	switch s.Apply(r) {
	case crmfake.Gone:
		return
	case crmfake.Down:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "<html><body><h1>503 Service Unavailable</h1>No server is available to handle this request.</body></html>")
		return
	case crmfake.Failing:
		fault(w, "sf:UNKNOWN_EXCEPTION", "UNKNOWN_EXCEPTION: An unexpected error occurred. Please include this ErrorId if you contact support: 987654-32", "UnexpectedErrorFault")
		return
	case crmfake.RateLimited:
		fault(w, "sf:REQUEST_LIMIT_EXCEEDED", "REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded.", "UnexpectedErrorFault")
		return
	}
	var env node
	if err := xml.Unmarshal(body, &env); err != nil || env.XMLName.Local != "Envelope" || env.XMLName.Space != NSEnvelope {
		fault(w, "soapenv:Client", "not a SOAP 1.1 envelope", "")
		return
	}
	var sid string
	if h := env.child("Header"); h != nil {
		if sh := h.child("SessionHeader"); sh != nil {
			if x := sh.child("sessionId"); x != nil {
				sid = strings.TrimSpace(x.Text)
			}
		}
	}
	b := env.child("Body")
	if b == nil || len(b.Children) != 1 {
		fault(w, "soapenv:Client", "the Body must hold one operation", "")
		return
	}
	s.mu.Lock()
	valid := s.sessions[sid]
	s.mu.Unlock()
	if !valid {
		fault(w, "sf:INVALID_SESSION_ID", "INVALID_SESSION_ID: Invalid Session ID found in SessionHeader: Illegal Session", "UnexpectedErrorFault")
		return
	}
	op := b.Children[0]
	switch op.XMLName.Local {
	case "query":
		s.query(w, &op)
	case "queryMore":
		s.queryMore(w, &op)
	case "retrieve":
		s.retrieve(w, &op)
	case "update":
		s.update(w, &op)
	default:
		fault(w, "soapenv:Client", fmt.Sprintf("No operation available for request {%s}%s", op.XMLName.Space, op.XMLName.Local), "")
	}
}

func soqlFault(w http.ResponseWriter, err error) {
	code, msg, typ := "UNKNOWN_EXCEPTION", err.Error(), "UnexpectedErrorFault"
	if e, ok := err.(*soql.Error); ok {
		code, msg = e.Code, e.Message
		switch code {
		case "MALFORMED_QUERY":
			typ = "MalformedQueryFault"
		case "INVALID_FIELD":
			typ = "InvalidFieldFault"
		case "INVALID_TYPE":
			typ = "InvalidSObjectFault"
		}
	}
	fault(w, "sf:"+code, code+": "+msg, typ)
}

// fault writes a SOAP fault; detailType names the partner API fault
// element ("" for a plain soapenv fault).
func fault(w http.ResponseWriter, code, msg, detailType string) {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="` + NSEnvelope + `" xmlns:sf="` + NSFault + `" xmlns:xsi="` + NSXSI + `"><soapenv:Body><soapenv:Fault><faultcode>`)
	xml.EscapeText(&b, []byte(code))
	b.WriteString(`</faultcode><faultstring>`)
	xml.EscapeText(&b, []byte(msg))
	b.WriteString(`</faultstring>`)
	if detailType != "" {
		exc, _, _ := strings.Cut(msg, ": ")
		fmt.Fprintf(&b, `<detail><sf:%s xsi:type="sf:%s"><sf:exceptionCode>`, detailType, detailType)
		xml.EscapeText(&b, []byte(exc))
		b.WriteString(`</sf:exceptionCode><sf:exceptionMessage>`)
		xml.EscapeText(&b, []byte(msg))
		fmt.Fprintf(&b, `</sf:exceptionMessage></sf:%s></detail>`, detailType)
	}
	b.WriteString(`</soapenv:Fault></soapenv:Body></soapenv:Envelope>`)
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	w.Write(b.Bytes())
}

func respond(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="`+NSEnvelope+`" xmlns="`+NSPartner+`" xmlns:sf="`+NSSObject+`" xmlns:xsi="`+NSXSI+`"><soapenv:Body>`+body+`</soapenv:Body></soapenv:Envelope>`)
}

func escape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// sObject renders a record as the partner API does: type, then Id, then
// the other fields, every value as text, nil as xsi:nil.
func sObject(tag, object string, r soql.Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<%s xsi:type="sf:sObject"><sf:type>%s</sf:type>`, tag, escape(object))
	if id, ok := r["Id"].(string); ok {
		fmt.Fprintf(&b, `<sf:Id>%s</sf:Id>`, escape(id))
	}
	for k, v := range r {
		if k == "Id" {
			continue
		}
		switch x := v.(type) {
		case nil:
			fmt.Fprintf(&b, `<sf:%s xsi:nil="true"/>`, k)
		case float64:
			fmt.Fprintf(&b, `<sf:%s>%s</sf:%s>`, k, strconv.FormatFloat(x, 'f', -1, 64), k)
		default:
			fmt.Fprintf(&b, `<sf:%s>%s</sf:%s>`, k, escape(fmt.Sprint(x)), k)
		}
	}
	fmt.Fprintf(&b, `</%s>`, tag)
	return b.String()
}

func (s *Server) query(w http.ResponseWriter, op *node) {
	q := op.child("queryString")
	if q == nil {
		fault(w, "soapenv:Client", "query needs a queryString", "")
		return
	}
	s.mu.Lock()
	s.queries = append(s.queries, q.Text)
	s.mu.Unlock()
	obj, rows, err := s.Data.Query(q.Text)
	if err != nil {
		soqlFault(w, err)
		return
	}
	s.result(w, "queryResponse", &cursor{object: obj, rows: rows}, 0)
}

func (s *Server) queryMore(w http.ResponseWriter, op *node) {
	q := op.child("queryLocator")
	var id, off string
	if q != nil {
		id, off, _ = strings.Cut(strings.TrimSpace(q.Text), "-")
	}
	n, err := strconv.Atoi(off)
	s.mu.Lock()
	c := s.cursors[id]
	s.mu.Unlock()
	if c == nil || err != nil || n < 0 || n > len(c.rows) {
		fault(w, "sf:INVALID_QUERY_LOCATOR", "INVALID_QUERY_LOCATOR: invalid query locator", "InvalidQueryLocatorFault")
		return
	}
	s.result(w, "queryMoreResponse", c, n)
}

func (s *Server) result(w http.ResponseWriter, tag string, c *cursor, offset int) {
	end := min(offset+s.opts.BatchSize, len(c.rows))
	var b strings.Builder
	fmt.Fprintf(&b, `<%s><result xsi:type="QueryResult"><done>%t</done>`, tag, end == len(c.rows))
	if end < len(c.rows) {
		s.mu.Lock()
		s.seq++
		id := fmt.Sprintf("01g0000000%05dAAA", s.seq%100000)
		s.cursors[id] = c
		s.mu.Unlock()
		fmt.Fprintf(&b, `<queryLocator>%s-%d</queryLocator>`, id, end)
	} else {
		b.WriteString(`<queryLocator xsi:nil="true"/>`)
	}
	for _, r := range c.rows[offset:end] {
		b.WriteString(sObject("records", c.object, r))
	}
	fmt.Fprintf(&b, `<size>%d</size></result></%s>`, len(c.rows), tag)
	respond(w, b.String())
}

func (s *Server) retrieve(w http.ResponseWriter, op *node) {
	var fields []string
	if f := op.child("fieldList"); f != nil {
		for _, x := range strings.Split(f.Text, ",") {
			if x = strings.TrimSpace(x); x != "" {
				fields = append(fields, x)
			}
		}
	}
	typ := op.child("sObjectType")
	if typ == nil || len(fields) == 0 {
		fault(w, "soapenv:Client", "retrieve needs fieldList and sObjectType", "")
		return
	}
	var b strings.Builder
	b.WriteString(`<retrieveResponse>`)
	for _, c := range op.Children {
		if c.XMLName.Local != "ids" {
			continue
		}
		obj, rec, err := s.Data.Get(typ.Text, strings.TrimSpace(c.Text), fields)
		var se *soql.Error
		switch {
		case err == nil:
			rec["Id"] = strings.TrimSpace(c.Text)
			b.WriteString(sObject("result", obj, rec))
		case asSOQL(err, &se) && se.Code == "NOT_FOUND":
			b.WriteString(`<result xsi:nil="true"/>`)
		default:
			soqlFault(w, err)
			return
		}
	}
	b.WriteString(`</retrieveResponse>`)
	respond(w, b.String())
}

func asSOQL(err error, out **soql.Error) bool {
	e, ok := err.(*soql.Error)
	*out = e
	return ok
}

func (s *Server) update(w http.ResponseWriter, op *node) {
	var b strings.Builder
	b.WriteString(`<updateResponse>`)
	for _, o := range op.Children {
		if o.XMLName.Local != "sObjects" {
			continue
		}
		var typ, id string
		values := map[string]any{}
		for _, f := range o.Children {
			switch f.XMLName.Local {
			case "type":
				typ = strings.TrimSpace(f.Text)
			case "Id":
				id = strings.TrimSpace(f.Text)
			case "fieldsToNull":
				values[strings.TrimSpace(f.Text)] = nil
			default:
				if f.nil() {
					values[f.XMLName.Local] = nil
				} else {
					values[f.XMLName.Local] = f.Text
				}
			}
		}
		err := s.Data.Update(typ, id, values)
		if err == nil {
			fmt.Fprintf(&b, `<result><id>%s</id><success>true</success></result>`, escape(id))
			continue
		}
		code, msg := "UNKNOWN_EXCEPTION", err.Error()
		var se *soql.Error
		if asSOQL(err, &se) {
			code, msg = se.Code, se.Message
			if code == "NOT_FOUND" {
				code, msg = "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id"
			}
		}
		fmt.Fprintf(&b, `<result><errors><message>%s</message><statusCode>%s</statusCode></errors><id xsi:nil="true"/><success>false</success></result>`, escape(msg), escape(code))
	}
	b.WriteString(`</updateResponse>`)
	respond(w, b.String())
}
