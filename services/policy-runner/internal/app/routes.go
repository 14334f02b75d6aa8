package app

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Route sends destinations to a policy. Pattern is an exact number
// ("8084"), a prefix ending in "*" ("44*"), or a regular expression
// starting with "~" ("~^1800[0-9]{7}$", RE2 syntax: linear time, no
// backtracking bombs).
type Route struct {
	Pattern string `json:"pattern"`
	Policy  string `json:"policy"`
}

// ErrBadRoute: a route that cannot be used.
var ErrBadRoute = errors.New("invalid route")

// MaxRoutes bounds the route table.
const MaxRoutes = 10000

var destinationRE = regexp.MustCompile(`^[A-Za-z0-9+#*_.@\-]{1,64}$`)

// ParseRoute checks a route and compiles its pattern.
func ParseRoute(rt Route) (compiledRoute, error) {
	if !ValidName(rt.Policy) {
		return compiledRoute{}, fmt.Errorf("%w: policy %q is not a policy name (letters, digits, _ and -, at most 64)", ErrBadRoute, rt.Policy)
	}
	c := compiledRoute{Route: rt}
	switch p := rt.Pattern; {
	case strings.HasPrefix(p, "~"):
		if len(p) > 256 {
			return c, fmt.Errorf("%w: pattern longer than 256 bytes", ErrBadRoute)
		}
		re, err := regexp.Compile(p[1:])
		if err != nil {
			return c, fmt.Errorf("%w: pattern %q: %v", ErrBadRoute, p, err)
		}
		c.re = re
	case strings.HasSuffix(p, "*"):
		if pre := strings.TrimSuffix(p, "*"); pre != "" && !destinationRE.MatchString(pre) {
			return c, fmt.Errorf("%w: prefix %q: want digits, letters or +#*_.@-", ErrBadRoute, pre)
		}
		c.prefix = strings.TrimSuffix(p, "*")
		c.isPrefix = true
	default:
		if !destinationRE.MatchString(p) {
			return c, fmt.Errorf("%w: destination %q: want 1-64 digits, letters or +#*_.@- (a prefix ends in *, a pattern starts with ~)", ErrBadRoute, p)
		}
	}
	return c, nil
}

type compiledRoute struct {
	Route
	prefix   string
	isPrefix bool
	re       *regexp.Regexp
}

// routeTable matches in a fixed order: the exact number, then the longest
// prefix, then the patterns in the order of their text.
type routeTable struct {
	exact    map[string]string
	prefixes []compiledRoute // longest first
	patterns []compiledRoute // sorted by pattern text
	all      []Route         // sorted by pattern text
}

func (t *routeTable) match(dest string) (string, bool) {
	if t == nil {
		return "", false
	}
	if p, ok := t.exact[dest]; ok {
		return p, true
	}
	for _, r := range t.prefixes {
		if strings.HasPrefix(dest, r.prefix) {
			return r.Policy, true
		}
	}
	for _, r := range t.patterns {
		if r.re.MatchString(dest) {
			return r.Policy, true
		}
	}
	return "", false
}

// SetRoutes replaces the route table at once: a call sees the old table or
// the new, never half of each. A table with a bad route is refused whole.
func (r *Runner) SetRoutes(routes []Route) error {
	t, err := buildTable(routes)
	if err != nil {
		return err
	}
	r.routes.Store(t)
	return nil
}

// ValidateRoutes checks a table without using it.
func ValidateRoutes(routes []Route) error {
	_, err := buildTable(routes)
	return err
}

func buildTable(routes []Route) (*routeTable, error) {
	if len(routes) > MaxRoutes {
		return nil, fmt.Errorf("%w: %d routes; at most %d", ErrBadRoute, len(routes), MaxRoutes)
	}
	t := &routeTable{exact: map[string]string{}}
	seen := map[string]bool{}
	for _, rt := range routes {
		c, err := ParseRoute(rt)
		if err != nil {
			return nil, err
		}
		if seen[rt.Pattern] {
			return nil, fmt.Errorf("%w: pattern %q appears twice", ErrBadRoute, rt.Pattern)
		}
		seen[rt.Pattern] = true
		switch {
		case c.re != nil:
			t.patterns = append(t.patterns, c)
		case c.isPrefix:
			t.prefixes = append(t.prefixes, c)
		default:
			t.exact[rt.Pattern] = rt.Policy
		}
		t.all = append(t.all, rt)
	}
	sort.SliceStable(t.prefixes, func(i, j int) bool { return len(t.prefixes[i].prefix) > len(t.prefixes[j].prefix) })
	sort.Slice(t.patterns, func(i, j int) bool { return t.patterns[i].Pattern < t.patterns[j].Pattern })
	sort.Slice(t.all, func(i, j int) bool { return t.all[i].Pattern < t.all[j].Pattern })
	return t, nil
}

// Routes is the route table in force.
func (r *Runner) Routes() []Route {
	t := r.routes.Load()
	if t == nil {
		return nil
	}
	return append([]Route(nil), t.all...)
}
