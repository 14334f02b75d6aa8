package projection

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/domain"
)

// CheckData says whether data is what the projection's scripts read for
// an event of type typ: every field they use there, present and of the
// JSON type the domain writes. The scripts trust what they are given — a
// missing field stops one halfway, with what it wrote so far kept (Redis
// does not undo a script's writes) — so an event that fails here is
// applied as Malformed instead. Anywhere in data, also in fields nobody
// knows (the scripts store whole objects and write them back with
// cjson): no null (cjson's null is a value of its own, not nil), no
// number beyond a double, no nesting deeper than maxDepth. Field names
// are matched as the scripts match them: exactly. Unknown types are not
// its business: the scripts ignore them.
//
// It reads data once, without decoding it into Go values: a rebuild
// checks every event of the log.
func CheckData(typ string, data []byte) error {
	sh := shapes[typ]
	w := walker{data: data}
	if err := w.top(sh); err != nil {
		return fmt.Errorf("%s data: %w", typ, err)
	}
	if sh == nil {
		return nil
	}
	if err := w.required(typ); err != nil {
		return fmt.Errorf("%s data: %w", typ, err)
	}
	return nil
}

// maxDepth bounds how deeply data may nest: the domain nests four levels
// (queue.skill_escalation[].relax_levels); Redis' cjson refuses 1,000.
const maxDepth = 32

// kinds of JSON values a field may hold.
const (
	anyKind = iota // a field nobody knows
	stringKind
	numberKind
	intKind // a Go integer: the scripts may add it up in Redis (HINCRBY)
	boolKind
	objectKind // a struct: known fields
	mapKind    // any keys, values of elem
	arrayKind
)

// shape is what a JSON value may be, as the domain type it comes from.
type shape struct {
	kind   int
	fields map[string]known // objectKind
	elem   *shape           // mapKind values, arrayKind elements
}

// known is a field of an object's shape, under its own name (a key read
// from data finds it without a copy).
type known struct {
	name string
	sh   *shape
}

// shapes are the events' data, from the types the distributor writes.
var shapes = func() map[string]*shape {
	m := map[string]*shape{}
	for typ, v := range map[string]any{
		domain.QueueCreated: domain.QueueData{}, domain.QueueUpdated: domain.QueueData{},
		domain.TierSet: domain.TierData{}, domain.TierRemoved: domain.TierData{},
		domain.MemberJoined: domain.MemberData{}, domain.MemberOffered: domain.OfferData{},
		domain.MemberRequeued: domain.MemberEndData{}, domain.MemberAnswered: domain.MemberEndData{},
		domain.MemberAbandoned: domain.MemberEndData{}, domain.MemberExited: domain.MemberEndData{},
		domain.AgentCreated: domain.AgentData{}, domain.AgentUpdated: domain.AgentData{},
		domain.AgentStatusChanged: domain.StatusData{}, domain.AgentStateChanged: domain.StateData{},
		domain.AgentOfferDeclined: domain.DeclineData{},
		// Deletions carry nothing the scripts read.
		domain.QueueDeleted: struct{}{}, domain.AgentDeleted: struct{}{},
	} {
		m[typ] = shapeOf(reflect.TypeOf(v))
	}
	return m
}()

func shapeOf(t reflect.Type) *shape {
	switch t.Kind() {
	case reflect.Pointer:
		return shapeOf(t.Elem())
	case reflect.String:
		return &shape{kind: stringKind}
	case reflect.Bool:
		return &shape{kind: boolKind}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return &shape{kind: intKind}
	case reflect.Float32, reflect.Float64:
		return &shape{kind: numberKind}
	case reflect.Slice, reflect.Array:
		return &shape{kind: arrayKind, elem: shapeOf(t.Elem())}
	case reflect.Map:
		return &shape{kind: mapKind, elem: shapeOf(t.Elem())}
	case reflect.Struct:
		s := &shape{kind: objectKind, fields: map[string]known{}}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			s.fields[name] = known{name, shapeOf(f.Type)}
		}
		return s
	}
	return &shape{kind: anyKind}
}

// field is a known field found at the top of data or one object down.
type field struct {
	parent, key    string // parent "": at the top
	raw            []byte
	elems, empties int // an array's elements, and those that are ""
}

type walker struct {
	data  []byte
	i     int
	depth int
	found [48]field // known fields down to one object: the domain's largest object has 26
	n     int
}

var errNull = errors.New("null where a value belongs (leave the field out)")

// top walks data, an object (or nothing), against sh (nil: no known
// fields).
func (w *walker) top(sh *shape) error {
	w.space()
	if w.i == len(w.data) {
		return nil // no data: as {}
	}
	if w.data[w.i] != '{' {
		return errors.New("not a JSON object")
	}
	if sh == nil {
		sh = &shape{kind: objectKind}
	}
	if err := w.value(sh, "", ""); err != nil {
		return err
	}
	if w.space(); w.i != len(w.data) {
		return errors.New("not one JSON value")
	}
	return nil
}

func (w *walker) space() {
	for w.i < len(w.data) && (w.data[w.i] == ' ' || w.data[w.i] == '\t' || w.data[w.i] == '\n' || w.data[w.i] == '\r') {
		w.i++
	}
}

// value walks one value that should be of shape sh (nil or anyKind:
// anything). parent and key name it when it is a field to remember.
func (w *walker) value(sh *shape, parent, key string) error {
	w.space()
	if w.i == len(w.data) {
		return errors.New("unexpected end of data")
	}
	kind := anyKind
	if sh != nil {
		kind = sh.kind
	}
	start := w.i
	var f *field
	if key != "" && w.depth <= 2 {
		// Remembered for the checks of what must be there. Twice is
		// refused: the checks would read the first, cjson keeps the
		// last.
		if w.get(parent, key) != nil {
			return fmt.Errorf("%s: twice", path(parent, key))
		}
		if w.n == len(w.found) {
			return errors.New("too many fields")
		}
		f = &w.found[w.n]
		w.n++
		*f = field{parent: parent, key: key}
	}
	want := func(what string) error {
		return fmt.Errorf("%s: %s where %s belongs", path(parent, key), describe(w.data[start]), what)
	}
	switch c := w.data[w.i]; {
	case c == '"':
		if kind != anyKind && kind != stringKind {
			return want(kindName(kind))
		}
		if err := w.string(); err != nil {
			return err
		}
	case c == '{':
		if kind != anyKind && kind != objectKind && kind != mapKind {
			return want(kindName(kind))
		}
		if err := w.object(sh, key); err != nil {
			return err
		}
	case c == '[':
		if kind != anyKind && kind != arrayKind {
			return want(kindName(kind))
		}
		if err := w.array(sh, f); err != nil {
			return err
		}
	case c == 't' || c == 'f':
		if kind != anyKind && kind != boolKind {
			return want(kindName(kind))
		}
		if err := w.literal(); err != nil {
			return err
		}
	case c == 'n':
		return fmt.Errorf("%s: %w", path(parent, key), errNull)
	case c == '-' || (c >= '0' && c <= '9'):
		if kind != anyKind && kind != numberKind && kind != intKind {
			return want(kindName(kind))
		}
		if err := w.number(kind == intKind); err != nil {
			return fmt.Errorf("%s: %w", path(parent, key), err)
		}
	default:
		return fmt.Errorf("%s: not JSON at byte %d", path(parent, key), w.i)
	}
	if f != nil {
		f.raw = w.data[start:w.i]
	}
	return nil
}

// open enters an object or an array (its opening byte at w.i).
func (w *walker) open() error {
	if w.depth++; w.depth > maxDepth {
		return fmt.Errorf("nested deeper than %d levels", maxDepth)
	}
	w.i++
	return nil
}

// next moves to the next member of the object or array being walked:
// false at its closing byte (then left), true before its next member
// (past the comma that separates it from the one before).
func (w *walker) next(closing byte, first bool) (bool, error) {
	w.space()
	if w.i < len(w.data) && w.data[w.i] == closing {
		w.i++
		w.depth--
		return false, nil
	}
	if !first {
		if w.i == len(w.data) || w.data[w.i] != ',' {
			return false, fmt.Errorf("not JSON at byte %d", w.i)
		}
		w.i++
		w.space()
	}
	return true, nil
}

func (w *walker) object(sh *shape, name string) error {
	if err := w.open(); err != nil {
		return err
	}
	for first := true; ; first = false {
		if more, err := w.next('}', first); !more {
			return err
		}
		if w.i == len(w.data) || w.data[w.i] != '"' {
			return fmt.Errorf("not JSON at byte %d", w.i)
		}
		k0 := w.i + 1
		if err := w.string(); err != nil {
			return err
		}
		key := w.data[k0 : w.i-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			// cjson reads the escapes: so must the shape's look-up.
			var k string
			if err := json.Unmarshal(w.data[k0-1:w.i], &k); err != nil {
				return fmt.Errorf("key at byte %d: %w", k0, err)
			}
			key = []byte(k)
		}
		if w.space(); w.i == len(w.data) || w.data[w.i] != ':' {
			return fmt.Errorf("not JSON at byte %d", w.i)
		}
		w.i++
		var fsh *shape
		var fieldName string
		switch {
		case sh != nil && sh.kind == objectKind:
			if k, ok := sh.fields[string(key)]; ok {
				fsh, fieldName = k.sh, k.name
			}
		case sh != nil && sh.kind == mapKind:
			fsh = sh.elem
		}
		parent := ""
		if w.depth == 2 {
			parent = name
		}
		if err := w.value(fsh, parent, fieldName); err != nil {
			return err
		}
	}
}

func (w *walker) array(sh *shape, f *field) error {
	var elem *shape
	if sh != nil {
		elem = sh.elem
	}
	if err := w.open(); err != nil {
		return err
	}
	for first := true; ; first = false {
		if more, err := w.next(']', first); !more {
			return err
		}
		start := w.i
		if err := w.value(elem, "", ""); err != nil {
			return err
		}
		if f != nil {
			f.elems++
			if w.i-start == 2 && w.data[start] == '"' {
				f.empties++
			}
		}
	}
}

// string reads a string: what it accepts, JSON (and so cjson) reads.
func (w *walker) string() error {
	for w.i++; w.i < len(w.data); w.i++ {
		switch c := w.data[w.i]; {
		case c == '\\':
			if w.i++; w.i == len(w.data) {
				break
			}
			switch w.data[w.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(w.data)-w.i < 5 || !hex4(w.data[w.i+1:w.i+5]) {
					return fmt.Errorf("bad escape in a string at byte %d", w.i)
				}
				w.i += 4
			default:
				return fmt.Errorf("bad escape in a string at byte %d", w.i)
			}
		case c == '"':
			w.i++
			return nil
		case c < 0x20:
			return fmt.Errorf("control character in a string at byte %d", w.i)
		}
	}
	return errors.New("unterminated string")
}

func hex4(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func (w *walker) literal() error {
	for _, lit := range []string{"true", "false"} {
		if len(w.data)-w.i >= len(lit) && string(w.data[w.i:w.i+len(lit)]) == lit {
			w.i += len(lit)
			return nil
		}
	}
	return fmt.Errorf("not JSON at byte %d", w.i)
}

// number reads a number, which must be a finite double: cjson reads
// 1e999 as inf and then refuses to write it back. An integer is digits
// alone, at most 14 of them: Lua hands a number to Redis as %.14g, so a
// longer one would reach HINCRBY as "1e+15".
func (w *walker) number(integer bool) error {
	start := w.i
	digits := func() int {
		n := 0
		for ; w.i < len(w.data) && '0' <= w.data[w.i] && w.data[w.i] <= '9'; w.i++ {
			n++
		}
		return n
	}
	// JSON's grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
	if w.data[w.i] == '-' {
		w.i++
	}
	d0 := w.i
	if n := digits(); n == 0 || (n > 1 && w.data[d0] == '0') {
		return fmt.Errorf("not a JSON number at byte %d", start)
	}
	exp := false
	if w.i < len(w.data) && w.data[w.i] == '.' {
		w.i++
		if digits() == 0 {
			return fmt.Errorf("not a JSON number at byte %d", start)
		}
		exp = true
	}
	if w.i < len(w.data) && (w.data[w.i] == 'e' || w.data[w.i] == 'E') {
		if w.i++; w.i < len(w.data) && (w.data[w.i] == '+' || w.data[w.i] == '-') {
			w.i++
		}
		if digits() == 0 {
			return fmt.Errorf("not a JSON number at byte %d", start)
		}
		exp = true
	}
	tok := w.data[start:w.i]
	if integer {
		if digits := len(bytes.TrimPrefix(tok, []byte("-"))); exp || digits > 14 {
			return fmt.Errorf("%.40s: want an integer of at most 14 digits", tok)
		}
		return nil
	}
	// Short numbers without an exponent or a fraction are finite: most
	// of them, read without a conversion.
	if !exp && len(tok) <= 300 {
		return nil
	}
	if f, err := strconv.ParseFloat(string(tok), 64); err != nil || math.IsInf(f, 0) {
		return fmt.Errorf("number %.40s is out of range", tok)
	}
	return nil
}

// get is the raw value of a known field (nil: missing).
func (w *walker) get(parent, key string) *field {
	for i := range w.found[:w.n] {
		if f := &w.found[i]; f.parent == parent && f.key == key {
			return f
		}
	}
	return nil
}

func (w *walker) has(parent, key string) bool { return w.get(parent, key) != nil }

// text: the field is a string that is not empty.
func (w *walker) text(parent, key string) bool {
	f := w.get(parent, key)
	return f != nil && len(f.raw) > 2
}

func (w *walker) is(parent, key string, values ...string) bool {
	f := w.get(parent, key)
	if f == nil {
		return false
	}
	for _, v := range values {
		if len(f.raw) == len(v)+2 && string(f.raw[1:len(f.raw)-1]) == v {
			return true
		}
	}
	return false
}

// required checks what must be there for each script not to stop
// halfway.
func (w *walker) required(typ string) error {
	need := func(ok bool, field string) error {
		if ok {
			return nil
		}
		return fmt.Errorf("%s is missing", field)
	}
	switch typ {
	case domain.QueueCreated, domain.QueueUpdated:
		return need(w.text("queue", "strategy"), "queue.strategy")
	case domain.TierSet:
		return errors.Join(need(w.text("", "agent"), "agent"), need(w.has("", "level"), "level"))
	case domain.TierRemoved:
		return need(w.text("", "agent"), "agent")
	case domain.MemberJoined:
		return errors.Join(need(w.text("member", "call_id"), "member.call_id"),
			need(w.has("member", "node"), "member.node"), need(w.has("member", "joined_ms"), "member.joined_ms"))
	case domain.MemberOffered:
		agents := w.get("", "agents")
		return errors.Join(need(w.text("", "call_id"), "call_id"), need(w.has("", "offer_id"), "offer_id"),
			need(agents != nil && agents.elems > 0 && agents.empties == 0, "agents (one or more agent ids)"))
	case domain.MemberRequeued:
		return need(w.text("", "call_id"), "call_id")
	case domain.MemberAnswered, domain.MemberAbandoned, domain.MemberExited:
		return errors.Join(need(w.text("", "call_id"), "call_id"), need(w.has("", "at_ms"), "at_ms"))
	case domain.AgentCreated, domain.AgentUpdated:
		return need(w.has("", "agent"), "agent")
	case domain.AgentStatusChanged:
		switch {
		case w.is("", "status", domain.StatusAvailable):
			return need(w.has("", "at_ms"), "at_ms")
		case w.is("", "status", domain.StatusOnBreak, domain.StatusLoggedOut):
			return nil
		}
		return errors.New("status: want available, on_break or logged_out")
	case domain.AgentStateChanged:
		switch {
		case !w.has("", "state"):
			return need(false, "state")
		case w.is("", "state", domain.StateOffered):
			return errors.Join(need(w.text("", "call_id"), "call_id"), need(w.has("", "offer_id"), "offer_id"),
				need(w.text("", "queue"), "queue"), need(w.has("", "at_ms"), "at_ms"))
		case w.is("", "state", domain.StateInCall, domain.StateWrapUp):
			return errors.Join(need(w.text("", "call_id"), "call_id"), need(w.has("", "at_ms"), "at_ms"))
		}
		return nil // idle, or a state the scripts ignore
	case domain.AgentOfferDeclined:
		return errors.Join(need(w.has("", "offer_id"), "offer_id"), need(w.has("", "at_ms") || w.has("", "ready_at_ms"), "at_ms"))
	}
	return nil
}

func path(parent, key string) string {
	switch {
	case key == "":
		return "a value"
	case parent == "":
		return key
	}
	return parent + "." + key
}

func describe(c byte) string {
	switch {
	case c == '"':
		return "a string"
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == 't' || c == 'f':
		return "a boolean"
	}
	return "a number"
}

func kindName(k int) string {
	return [...]string{"a value", "a string", "a number", "an integer", "a boolean", "an object", "an object", "an array"}[k]
}
