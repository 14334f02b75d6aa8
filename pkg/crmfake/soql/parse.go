package soql

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Query is a parsed SOQL query.
type Query struct {
	Fields  []string
	From    string
	Where   *Cond // nil: every record
	OrderBy string
	Desc    bool
	Limit   int // -1: none
}

// Cond is a WHERE condition: a boolean node (and, or, not) or a
// comparison of a field (cmp, in, like).
type Cond struct {
	Kind    string // and, or, not, cmp, in, like
	L, R    *Cond
	Field   string
	Op      string // =, !=, <, <=, >, >= (cmp)
	Value   any
	Values  []any   // in
	Negate  bool    // NOT IN, NOT LIKE
	Pattern []token // like: the literal's characters, wildcard or not
}

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tString
	tNumber
	tSym
)

type token struct {
	kind tokKind
	text string // identifier, symbol, number text, decoded string
	// wild marks, for a string, the runes of text that are LIKE wildcards
	// (an unescaped % or _).
	wild []bool
	pos  int
}

// Parse parses the SOQL subset.
func Parse(text string) (*Query, error) {
	toks, err := lex(text)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	return p.query()
}

func lex(s string) ([]token, error) {
	var out []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case isIdentStart(c):
			j := i + 1
			for j < len(s) && (isIdentStart(s[j]) || (s[j] >= '0' && s[j] <= '9') || s[j] == '.') {
				j++
			}
			out = append(out, token{kind: tIdent, text: s[i:j], pos: i})
			i = j
		case c >= '0' && c <= '9' || (c == '-' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9'):
			j := i + 1
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
				j++
			}
			out = append(out, token{kind: tNumber, text: s[i:j], pos: i})
			i = j
		case c == '\'':
			t, n, err := lexString(s, i)
			if err != nil {
				return nil, err
			}
			out = append(out, t)
			i = n
		case strings.ContainsRune("(),", rune(c)):
			out = append(out, token{kind: tSym, text: string(c), pos: i})
			i++
		case c == '=' || c == '<' || c == '>' || c == '!':
			j := i + 1
			if j < len(s) && (s[j] == '=' || (c == '<' && s[j] == '>')) {
				j++
			}
			op := s[i:j]
			if op == "!" {
				return nil, errf("MALFORMED_QUERY", "unexpected token: '!' at column %d", i+1)
			}
			out = append(out, token{kind: tSym, text: op, pos: i})
			i = j
		default:
			r, _ := utf8.DecodeRuneInString(s[i:])
			return nil, errf("MALFORMED_QUERY", "unexpected token: '%c' at column %d", r, i+1)
		}
	}
	return append(out, token{kind: tEOF, pos: len(s)}), nil
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}

// lexString decodes the literal that starts with the single quote at s[i].
func lexString(s string, i int) (token, int, error) {
	var b strings.Builder
	var wild []bool
	add := func(r rune, w bool) {
		b.WriteRune(r)
		wild = append(wild, w)
	}
	for j := i + 1; j < len(s); {
		r, n := utf8.DecodeRuneInString(s[j:])
		switch r {
		case '\'':
			return token{kind: tString, text: b.String(), wild: wild, pos: i}, j + 1, nil
		case '%', '_':
			add(r, true)
			j += n
		case '\\':
			if j+1 >= len(s) {
				return token{}, 0, errf("MALFORMED_QUERY", "unterminated string literal at column %d", i+1)
			}
			e := s[j+1]
			j += 2
			switch e {
			case '\'', '"', '\\', '%', '_':
				add(rune(e), false)
			case 'n':
				add('\n', false)
			case 'r':
				add('\r', false)
			case 't':
				add('\t', false)
			case 'b':
				add('\b', false)
			case 'f':
				add('\f', false)
			case 'u':
				if j+4 > len(s) {
					return token{}, 0, errf("MALFORMED_QUERY", "Invalid string literal: bad \\u escape at column %d", j)
				}
				v, err := strconv.ParseUint(s[j:j+4], 16, 16)
				if err != nil {
					return token{}, 0, errf("MALFORMED_QUERY", "Invalid string literal: bad \\u escape at column %d", j)
				}
				add(rune(v), false)
				j += 4
			default:
				return token{}, 0, errf("MALFORMED_QUERY", "Invalid string literal '%s'. Illegal character sequence '\\%c' in string literal.", s[i:], e)
			}
		default:
			add(r, false)
			j += n
		}
	}
	return token{}, 0, errf("MALFORMED_QUERY", "unterminated string literal at column %d", i+1)
}

type parser struct {
	toks []token
	i    int
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) keyword(kw string) bool {
	t := p.peek()
	if t.kind == tIdent && strings.EqualFold(t.text, kw) {
		p.i++
		return true
	}
	return false
}

func (p *parser) sym(s string) bool {
	t := p.peek()
	if t.kind == tSym && t.text == s {
		p.i++
		return true
	}
	return false
}

func (p *parser) unexpected() error {
	t := p.peek()
	if t.kind == tEOF {
		return errf("MALFORMED_QUERY", "unexpected end of query")
	}
	if t.kind == tString {
		return errf("MALFORMED_QUERY", "unexpected token: '%s' at column %d", t.text, t.pos+1)
	}
	return errf("MALFORMED_QUERY", "unexpected token: %s at column %d", t.text, t.pos+1)
}

var reserved = map[string]bool{"select": true, "from": true, "where": true, "and": true, "or": true, "not": true,
	"like": true, "in": true, "limit": true, "order": true, "by": true, "asc": true, "desc": true,
	"null": true, "true": true, "false": true}

func (p *parser) ident() (string, error) {
	t := p.peek()
	if t.kind != tIdent || reserved[strings.ToLower(t.text)] {
		return "", p.unexpected()
	}
	p.i++
	return t.text, nil
}

func (p *parser) query() (*Query, error) {
	q := &Query{Limit: -1}
	if !p.keyword("SELECT") {
		return nil, p.unexpected()
	}
	for {
		f, err := p.ident()
		if err != nil {
			return nil, err
		}
		q.Fields = append(q.Fields, f)
		if !p.sym(",") {
			break
		}
	}
	if !p.keyword("FROM") {
		return nil, p.unexpected()
	}
	var err error
	if q.From, err = p.ident(); err != nil {
		return nil, err
	}
	if p.keyword("WHERE") {
		if q.Where, err = p.or(); err != nil {
			return nil, err
		}
	}
	if p.keyword("ORDER") {
		if !p.keyword("BY") {
			return nil, p.unexpected()
		}
		if q.OrderBy, err = p.ident(); err != nil {
			return nil, err
		}
		if p.keyword("DESC") {
			q.Desc = true
		} else {
			p.keyword("ASC")
		}
	}
	if p.keyword("LIMIT") {
		t := p.next()
		n, err := strconv.Atoi(t.text)
		if t.kind != tNumber || err != nil || n < 0 {
			p.i--
			return nil, p.unexpected()
		}
		q.Limit = n
	}
	if p.peek().kind != tEOF {
		return nil, p.unexpected()
	}
	return q, nil
}

func (p *parser) or() (*Cond, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.keyword("OR") {
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = &Cond{Kind: "or", L: l, R: r}
	}
	return l, nil
}

func (p *parser) and() (*Cond, error) {
	l, err := p.not()
	if err != nil {
		return nil, err
	}
	for p.keyword("AND") {
		r, err := p.not()
		if err != nil {
			return nil, err
		}
		l = &Cond{Kind: "and", L: l, R: r}
	}
	return l, nil
}

func (p *parser) not() (*Cond, error) {
	if p.keyword("NOT") {
		c, err := p.not()
		if err != nil {
			return nil, err
		}
		return &Cond{Kind: "not", L: c}, nil
	}
	if p.sym("(") {
		c, err := p.or()
		if err != nil {
			return nil, err
		}
		if !p.sym(")") {
			return nil, p.unexpected()
		}
		return c, nil
	}
	return p.comparison()
}

func (p *parser) comparison() (*Cond, error) {
	f, err := p.ident()
	if err != nil {
		return nil, err
	}
	c := &Cond{Field: f}
	if p.keyword("NOT") {
		c.Negate = true
		if !(p.peek().kind == tIdent && (strings.EqualFold(p.peek().text, "IN") || strings.EqualFold(p.peek().text, "LIKE"))) {
			return nil, p.unexpected()
		}
	}
	switch {
	case p.keyword("LIKE"):
		t := p.next()
		if t.kind != tString {
			p.i--
			return nil, p.unexpected()
		}
		c.Kind, c.Value, c.Pattern = "like", t.text, []token{t}
		return c, nil
	case p.keyword("IN"):
		if !p.sym("(") {
			return nil, p.unexpected()
		}
		c.Kind = "in"
		for {
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			c.Values = append(c.Values, v)
			if !p.sym(",") {
				break
			}
		}
		if !p.sym(")") {
			return nil, p.unexpected()
		}
		return c, nil
	}
	t := p.next()
	switch t.text {
	case "=", "!=", "<>", "<", "<=", ">", ">=":
		if t.kind != tSym {
			break
		}
		c.Kind, c.Op = "cmp", t.text
		if c.Op == "<>" {
			c.Op = "!="
		}
		if c.Value, err = p.value(); err != nil {
			return nil, err
		}
		return c, nil
	}
	p.i--
	return nil, p.unexpected()
}

func (p *parser) value() (any, error) {
	t := p.next()
	switch t.kind {
	case tString:
		return t.text, nil
	case tNumber:
		v, err := strconv.ParseFloat(t.text, 64)
		if err != nil {
			p.i--
			return nil, p.unexpected()
		}
		return v, nil
	case tIdent:
		switch strings.ToLower(t.text) {
		case "null":
			return nil, nil
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
	}
	p.i--
	return nil, p.unexpected()
}

// check reports fields the condition names that the object lacks.
func (c *Cond) check(o *object) error {
	if c == nil {
		return nil
	}
	switch c.Kind {
	case "and", "or":
		if err := c.L.check(o); err != nil {
			return err
		}
		return c.R.check(o)
	case "not":
		return c.L.check(o)
	}
	if _, ok := o.fields[strings.ToLower(c.Field)]; !ok {
		return errf("INVALID_FIELD", "No such column '%s' on entity '%s'.", c.Field, o.name)
	}
	return nil
}

func (c *Cond) eval(o *object, r Record) bool {
	switch c.Kind {
	case "and":
		return c.L.eval(o, r) && c.R.eval(o, r)
	case "or":
		return c.L.eval(o, r) || c.R.eval(o, r)
	case "not":
		return !c.L.eval(o, r)
	}
	v := r[o.fields[strings.ToLower(c.Field)]]
	switch c.Kind {
	case "in":
		for _, x := range c.Values {
			if equal(v, x) {
				return !c.Negate
			}
		}
		return c.Negate
	case "like":
		s, ok := v.(string)
		return ok && like(c.Pattern[0], s) != c.Negate
	}
	if c.Value == nil || v == nil {
		switch c.Op {
		case "=":
			return v == nil && c.Value == nil
		case "!=":
			return (v == nil) != (c.Value == nil)
		}
		return false
	}
	n := compare(v, c.Value)
	switch c.Op {
	case "=":
		return equal(v, c.Value)
	case "!=":
		return !equal(v, c.Value)
	case "<":
		return n < 0
	case "<=":
		return n <= 0
	case ">":
		return n > 0
	}
	return n >= 0
}

func equal(a, b any) bool {
	as, aok := a.(string)
	bs, bok := b.(string)
	if aok && bok {
		return strings.EqualFold(as, bs)
	}
	return a == b
}

// like matches s against the literal's pattern: % any run, _ one
// character, case-insensitive.
func like(pat token, s string) bool {
	p := []rune(pat.text)
	r := []rune(s)
	var match func(i, j int) bool
	match = func(i, j int) bool {
		for i < len(p) {
			if pat.wild[i] && p[i] == '%' {
				for k := j; k <= len(r); k++ {
					if match(i+1, k) {
						return true
					}
				}
				return false
			}
			if j >= len(r) {
				return false
			}
			if !(pat.wild[i] && p[i] == '_') && unicode.ToLower(p[i]) != unicode.ToLower(r[j]) {
				return false
			}
			i++
			j++
		}
		return j == len(r)
	}
	return match(0, 0)
}
