// Package soql is the in-memory org data of the Salesforce fakes and the
// subset of SOQL they evaluate: SELECT fields FROM object [WHERE condition]
// [ORDER BY field [ASC|DESC]] [LIMIT n], with =, !=, <>, <, <=, >, >=, LIKE,
// IN, NOT IN, AND, OR, NOT and parentheses. String literals are decoded with
// Salesforce's escapes (\' \" \\ \n \r \t \b \f \u and, in LIKE, \% \_), and
// a backslash before anything else is MALFORMED_QUERY, as Salesforce has it.
// Text comparisons ignore case, as in Salesforce.
package soql

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Record is one sObject's fields; "Id" is its id. Values are string,
// float64, bool or nil.
type Record map[string]any

// Error is a Salesforce error: its errorCode and message.
type Error struct {
	Code    string // MALFORMED_QUERY, INVALID_FIELD, INVALID_TYPE, NOT_FOUND
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func errf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Store holds records by sObject type. Type and field names are matched
// without regard to case; each keeps the spelling it was first stored with.
type Store struct {
	mu      sync.RWMutex
	objects map[string]*object // lower-case type name
	updates []Update
}

// Update is one update the store applied, as its caller named it (the
// object type as sent, the values as sent).
type Update struct {
	Object, ID string
	Values     map[string]any
}

// Updates are the updates applied, in order: what a fake's tests check
// reached the org.
func (s *Store) Updates() []Update {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]Update(nil), s.updates...)
}

type object struct {
	name    string
	fields  map[string]string // lower → canonical
	records map[string]Record // id → record
	order   []string          // ids in insertion order
}

// NewStore returns an empty store.
func NewStore() *Store { return &Store{objects: map[string]*object{}} }

// Put stores (or replaces) a record of the object type; r["Id"] is its id.
func (s *Store) Put(objectType string, r Record) {
	id, _ := r["Id"].(string)
	if id == "" {
		panic("soql: Put without an Id")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.objects[strings.ToLower(objectType)]
	if o == nil {
		o = &object{name: objectType, fields: map[string]string{"id": "Id"}, records: map[string]Record{}}
		s.objects[strings.ToLower(objectType)] = o
	}
	c := Record{}
	for k, v := range r {
		if _, ok := o.fields[strings.ToLower(k)]; !ok {
			o.fields[strings.ToLower(k)] = k
		}
		c[o.fields[strings.ToLower(k)]] = v
	}
	if _, ok := o.records[id]; !ok {
		o.order = append(o.order, id)
	}
	o.records[id] = c
}

// Get returns a copy of the record's fields (all when fields is empty),
// and its canonical type name.
func (s *Store) Get(objectType, id string, fields []string) (string, Record, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	o := s.objects[strings.ToLower(objectType)]
	if o == nil {
		return "", nil, errf("NOT_FOUND", "The requested resource does not exist")
	}
	r, ok := o.records[id]
	if !ok {
		return "", nil, errf("NOT_FOUND", "The requested resource does not exist")
	}
	if len(fields) == 0 {
		out := Record{}
		for k, v := range r {
			out[k] = v
		}
		return o.name, out, nil
	}
	out := Record{}
	for _, f := range fields {
		c, ok := o.fields[strings.ToLower(f)]
		if !ok {
			return "", nil, errf("INVALID_FIELD", "No such column '%s' on sobject of type %s", f, o.name)
		}
		out[c] = r[c]
	}
	return o.name, out, nil
}

// Update sets fields of an existing record.
func (s *Store) Update(objectType, id string, values map[string]any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.objects[strings.ToLower(objectType)]
	if o == nil {
		return errf("NOT_FOUND", "The requested resource does not exist")
	}
	r, ok := o.records[id]
	if !ok {
		return errf("NOT_FOUND", "The requested resource does not exist")
	}
	for k := range values {
		if _, ok := o.fields[strings.ToLower(k)]; !ok || strings.EqualFold(k, "Id") {
			return errf("INVALID_FIELD", "No such column '%s' on sobject of type %s", k, o.name)
		}
	}
	for k, v := range values {
		r[o.fields[strings.ToLower(k)]] = v
	}
	s.updates = append(s.updates, Update{Object: objectType, ID: id, Values: values})
	return nil
}

// Query runs a SOQL query: the object's canonical name and the matching
// records with the selected fields.
func (s *Store) Query(text string) (string, []Record, error) {
	q, err := Parse(text)
	if err != nil {
		return "", nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	o := s.objects[strings.ToLower(q.From)]
	if o == nil {
		return "", nil, errf("INVALID_TYPE", "sObject type '%s' is not supported.", q.From)
	}
	for _, f := range q.Fields {
		if _, ok := o.fields[strings.ToLower(f)]; !ok {
			return "", nil, errf("INVALID_FIELD", "No such column '%s' on entity '%s'.", f, o.name)
		}
	}
	if err := q.Where.check(o); err != nil {
		return "", nil, err
	}
	var matched []Record
	for _, id := range o.order {
		if r := o.records[id]; q.Where == nil || q.Where.eval(o, r) {
			matched = append(matched, r)
		}
	}
	if q.OrderBy != "" {
		c, ok := o.fields[strings.ToLower(q.OrderBy)]
		if !ok {
			return "", nil, errf("INVALID_FIELD", "No such column '%s' on entity '%s'.", q.OrderBy, o.name)
		}
		slices.SortStableFunc(matched, func(a, b Record) int {
			n := compare(a[c], b[c])
			if q.Desc {
				return -n
			}
			return n
		})
	}
	rows := make([]Record, 0, len(matched))
	for _, r := range matched {
		out := Record{}
		for _, f := range q.Fields {
			c := o.fields[strings.ToLower(f)]
			out[c] = r[c]
		}
		rows = append(rows, out)
	}
	if q.Limit >= 0 && len(rows) > q.Limit {
		rows = rows[:q.Limit]
	}
	return o.name, rows, nil
}

// compare orders values: nil first, then numbers, then text (case-folded).
func compare(a, b any) int {
	rank := func(v any) int {
		switch v.(type) {
		case nil:
			return 0
		case float64:
			return 1
		case bool:
			return 2
		}
		return 3
	}
	if ra, rb := rank(a), rank(b); ra != rb {
		return cmp.Compare(ra, rb)
	}
	switch x := a.(type) {
	case float64:
		return cmp.Compare(x, b.(float64))
	case bool:
		y := b.(bool)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		}
		return 1
	case nil:
		return 0
	}
	return strings.Compare(strings.ToLower(fmt.Sprint(a)), strings.ToLower(fmt.Sprint(b)))
}
