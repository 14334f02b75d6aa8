package domain

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Parameters travel apart from the query text and are bound here, escaped
// for the language they land in; a caller-supplied value never becomes
// query syntax. Every placeholder needs a parameter and every parameter a
// placeholder: a mismatch is an invalid_request naming it.

// BindSOQL replaces each :name outside string literals with the SOQL
// literal of params[name]: text is quoted with ' and its \ ' " and control
// characters escaped; numbers, true/false and null are written as such;
// a list becomes (a, b, …) for IN. % and _ are left alone: inside LIKE
// they are the caller's wildcards, elsewhere they are plain characters.
func BindSOQL(query string, params map[string]any) (string, error) {
	var b strings.Builder
	used := map[string]bool{}
	inString := false
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case inString:
			b.WriteByte(c)
			if c == '\\' && i+1 < len(query) {
				i++
				b.WriteByte(query[i])
			} else if c == '\'' {
				inString = false
			}
		case c == '\'':
			inString = true
			b.WriteByte(c)
		case c == ':' && i+1 < len(query) && identStart(query[i+1]) && (i == 0 || !identChar(query[i-1])):
			j := i + 1
			for j < len(query) && identChar(query[j]) {
				j++
			}
			name := query[i+1 : j]
			v, ok := params[name]
			if !ok {
				return "", Invalid("params", "the query binds :%s but params has no %q", name, name)
			}
			lit, err := SOQLLiteral(v)
			if err != nil {
				return "", Invalid("params."+name, "%v", err)
			}
			b.WriteString(lit)
			used[name] = true
			i = j - 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), unused(params, used, ":", "")
}

func identStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func identChar(c byte) bool  { return identStart(c) || c >= '0' && c <= '9' }

func unused(params map[string]any, used map[string]bool, open, close string) error {
	var names []string
	for k := range params {
		if !used[k] {
			names = append(names, k)
		}
	}
	if len(names) == 0 {
		return nil
	}
	sort.Strings(names)
	return Invalid("params."+names[0], "params.%s is not used (no %s%s%s placeholder)", names[0], open, names[0], close)
}

// SOQLLiteral is the SOQL literal of a parameter value.
func SOQLLiteral(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "null", nil
	case bool:
		return strconv.FormatBool(x), nil
	case json.Number:
		if !numberPattern.MatchString(string(x)) {
			return "", fmt.Errorf("number %s is not a plain decimal", clip(string(x)))
		}
		return string(x), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case string:
		return SOQLString(x), nil
	case []any:
		if len(x) == 0 {
			return "", fmt.Errorf("an empty list cannot be bound")
		}
		parts := make([]string, len(x))
		for i, e := range x {
			if _, nested := e.([]any); nested {
				return "", fmt.Errorf("a list inside a list cannot be bound")
			}
			l, err := SOQLLiteral(e)
			if err != nil {
				return "", err
			}
			parts[i] = l
		}
		return "(" + strings.Join(parts, ", ") + ")", nil
	}
	return "", fmt.Errorf("a %T cannot be bound", v)
}

// soqlEscaper escapes what SOQL string literals escape.
var soqlEscaper = strings.NewReplacer(`\`, `\\`, `'`, `\'`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\t", `\t`, "\b", `\b`, "\f", `\f`)

// SOQLString is s as a quoted SOQL string literal.
func SOQLString(s string) string { return "'" + soqlEscaper.Replace(s) + "'" }

var placeholder = regexp.MustCompile(`\{\{([A-Za-z_][A-Za-z0-9_]{0,63})\}\}`)

// Placeholders lists the {{name}} placeholders of a template.
func Placeholders(tmpl string) []string {
	var out []string
	for _, m := range placeholder.FindAllStringSubmatch(tmpl, -1) {
		out = append(out, m[1])
	}
	return out
}

// CheckURLTemplate refuses a URL template whose scheme, host or port could
// be changed by a parameter, so that no caller can point a connector at
// another server.
func CheckURLTemplate(tmpl string) error {
	u, err := url.Parse(placeholder.ReplaceAllString(tmpl, "x"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Fragment != "" {
		return fmt.Errorf("url %q: want http(s)://host[:port]/path[?query] without user info or fragment", tmpl)
	}
	rest := tmpl[strings.Index(tmpl, "://")+3:]
	slash := strings.IndexAny(rest, "/?")
	if loc := placeholder.FindStringIndex(rest); loc != nil && (slash < 0 || loc[0] < slash) {
		return fmt.Errorf("url %q: placeholders may only stand in the path or query, not the host", tmpl)
	}
	return nil
}

// Bound is a template expanded with parameters.
type Bound struct {
	URL  string
	Body string // "" when the template has none
}

// BindHTTP expands a URL template (placeholders in the path are
// path-escaped, in the query string query-escaped) and a JSON body
// template (each placeholder becomes the value's JSON encoding, so it must
// stand where a JSON value may: {"phone": {{phone}}}).
func BindHTTP(urlTmpl, bodyTmpl string, params map[string]any) (Bound, error) {
	used := map[string]bool{}
	var firstErr error
	query := strings.IndexByte(urlTmpl, '?')
	out := Bound{}
	out.URL = expand(urlTmpl, func(name string, at int) string {
		v, ok := params[name]
		used[name] = true
		if !ok {
			if firstErr == nil {
				firstErr = Invalid("params", "the endpoint's URL has {{%s}} but params has no %q", name, name)
			}
			return ""
		}
		s, err := urlText(v)
		if err == nil && (query < 0 || at < query) && (s == "." || s == "..") {
			err = fmt.Errorf("%q cannot stand for a path segment", s)
		}
		if err != nil {
			if firstErr == nil {
				firstErr = Invalid("params."+name, "%v", err)
			}
			return ""
		}
		if query >= 0 && at > query {
			return url.QueryEscape(s)
		}
		return url.PathEscape(s)
	})
	if bodyTmpl != "" {
		out.Body = expand(bodyTmpl, func(name string, _ int) string {
			v, ok := params[name]
			used[name] = true
			if !ok {
				if firstErr == nil {
					firstErr = Invalid("params", "the endpoint's body has {{%s}} but params has no %q", name, name)
				}
				return "null"
			}
			b, err := json.Marshal(v)
			if err != nil && firstErr == nil {
				firstErr = Invalid("params."+name, "%v", err)
			}
			return string(b)
		})
		if firstErr == nil && !json.Valid([]byte(out.Body)) {
			firstErr = Errorf(CodeInvalidRequest, "the endpoint's body template does not give JSON; placeholders stand unquoted where a value goes")
		}
	}
	if firstErr != nil {
		return Bound{}, firstErr
	}
	return out, unused(params, used, "{{", "}}")
}

func expand(tmpl string, f func(name string, at int) string) string {
	var b strings.Builder
	last := 0
	for _, m := range placeholder.FindAllStringSubmatchIndex(tmpl, -1) {
		b.WriteString(tmpl[last:m[0]])
		b.WriteString(f(tmpl[m[2]:m[3]], m[0]))
		last = m[1]
	}
	b.WriteString(tmpl[last:])
	return b.String()
}

func urlText(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case bool, json.Number, float64, int, int64:
		return fmt.Sprint(x), nil
	}
	return "", fmt.Errorf("a %T cannot stand in a URL", v)
}
