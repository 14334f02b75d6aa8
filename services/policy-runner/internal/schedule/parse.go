package schedule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits on a schedules document.
const (
	MaxDocumentBytes   = 1 << 20
	MaxSchedules       = 1000
	MaxRangesPerDay    = 16
	MaxHolidays        = 1000
	MaxHolidayNameSize = 128
)

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// LoadFile reads and parses the schedules document at path.
func LoadFile(path string) (*Set, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("schedules: %w", err)
	}
	defer f.Close()
	// One byte past the limit is enough for ParseSet to refuse the size.
	data, err := io.ReadAll(io.LimitReader(f, MaxDocumentBytes+1))
	if err != nil {
		return nil, fmt.Errorf("schedules %s: %w", path, err)
	}
	set, err := ParseSet(data)
	if err != nil {
		return nil, fmt.Errorf("schedules %s: %w", path, err)
	}
	return set, nil
}

// ParseSet parses and validates a schedules document (see the package
// comment). Any problem rejects the whole document.
func ParseSet(data []byte) (*Set, error) {
	if len(data) > MaxDocumentBytes {
		return nil, fmt.Errorf("document is larger than %d bytes", MaxDocumentBytes)
	}
	// Decoding token by token bounds work by the entry limits rather than by
	// what a document claims, and lets duplicate keys be refused (plain
	// Unmarshal silently keeps the last).
	dec := json.NewDecoder(bytes.NewReader(data))
	set := &Set{byName: map[string]*Schedule{}}
	locs := map[string]*time.Location{}
	err := eachKey(dec, "", "schedule", func(name string) error {
		if len(set.byName) == MaxSchedules {
			return fmt.Errorf("more than %d schedules", MaxSchedules)
		}
		if !validName(name) {
			return fmt.Errorf("schedule %s: name must match ^[A-Za-z0-9_-]{1,64}$", quote(name))
		}
		sc, err := parseSchedule(dec, name, locs)
		if err != nil {
			return fmt.Errorf("schedule %q: %w", name, err)
		}
		set.byName[name] = sc
		set.names = append(set.names, name)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the schedules object")
	}
	slices.Sort(set.names)
	return set, nil
}

func validName(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func parseSchedule(dec *json.Decoder, name string, locs map[string]*time.Location) (*Schedule, error) {
	sc := &Schedule{name: name}
	for wd := range sc.weekly {
		sc.weekly[wd] = dayPlan{openReason: "weekly hours", closedReason: "closed"}
	}
	var zone string
	haveZone := false
	err := eachKey(dec, "", "field", func(key string) error {
		switch key {
		case "time_zone":
			haveZone = true
			return decodeString(dec, "time_zone", &zone)
		case "weekly":
			return parseWeekly(dec, sc)
		case "holidays":
			return parseHolidays(dec, sc)
		}
		return fmt.Errorf("unknown field %s (want time_zone, weekly, holidays)", quote(key))
	})
	if err != nil {
		return nil, err
	}

	switch {
	case !haveZone || zone == "": // LoadLocation("") would quietly mean UTC
		return nil, errors.New("time_zone: required, e.g. \"America/New_York\" or \"UTC\"")
	case zone == "Local":
		return nil, errors.New(`time_zone "Local": refused, a schedule must not depend on the server's zone; name it, e.g. "Europe/London"`)
	}
	loc, ok := locs[zone]
	if !ok {
		if loc, err = time.LoadLocation(zone); err != nil {
			return nil, fmt.Errorf("time_zone %s: %w", quote(zone), err)
		}
		locs[zone] = loc
	}
	sc.loc = loc

	plans := []*dayPlan{}
	for i := range sc.weekly {
		plans = append(plans, &sc.weekly[i])
	}
	for _, p := range sc.fixed {
		plans = append(plans, p)
	}
	for _, p := range sc.yearly {
		plans = append(plans, p)
	}
	for _, p := range plans {
		if n := len(p.spans); n > 0 && p.spans[n-1].end > minutesPerDay {
			sc.tails = true
		}
	}
	return sc, nil
}

func parseWeekly(dec *json.Decoder, sc *Schedule) error {
	return eachKey(dec, "weekly", "day", func(key string) error {
		wd, ok := dayNames[key]
		if !ok {
			return fmt.Errorf("weekly: unknown day %s (want mon, tue, wed, thu, fri, sat, sun)", quote(key))
		}
		spans, err := parseRanges(dec, "weekly."+key)
		sc.weekly[wd].spans = spans
		return err
	})
}

func parseHolidays(dec *json.Decoder, sc *Schedule) error {
	index := map[int]int{} // date key → holidays index, for duplicate errors
	return eachElem(dec, "holidays", MaxHolidays, func(i int) error {
		field := fmt.Sprintf("holidays[%d]", i)
		var date, name string
		var hours []span
		haveHours := false
		err := eachKey(dec, field, "field", func(key string) error {
			switch key {
			case "date":
				return decodeString(dec, field+".date", &date)
			case "name":
				return decodeString(dec, field+".name", &name)
			case "hours":
				haveHours = true
				var err error
				hours, err = parseRanges(dec, field+".hours")
				return err
			}
			return fmt.Errorf("%s: unknown field %s (want date, name, hours)", field, quote(key))
		})
		if err != nil {
			return err
		}

		if date == "" {
			return fmt.Errorf("%s.date: required", field)
		}
		key, yearly, err := parseDate(date)
		if err != nil {
			return fmt.Errorf("%s.date %s: %w", field, quote(date), err)
		}
		if j, dup := index[key]; dup {
			return fmt.Errorf("%s.date %s: duplicate of holidays[%d]", field, quote(date), j)
		}
		index[key] = i
		if err := checkHolidayName(name); err != nil {
			return fmt.Errorf("%s.name: %w", field, err)
		}
		if haveHours && len(hours) == 0 {
			return fmt.Errorf(`%s.hours: empty; leave out "hours" to close all day`, field)
		}

		p := &dayPlan{spans: hours, closedReason: "holiday: " + name}
		if haveHours {
			p.openReason = "special hours: " + name
			p.closedReason = p.openReason
		}
		m := &sc.fixed
		if yearly {
			m = &sc.yearly
		}
		if *m == nil {
			*m = map[int]*dayPlan{}
		}
		(*m)[key] = p
		return nil
	})
}

func checkHolidayName(name string) error {
	switch {
	case name == "":
		return errors.New("required")
	case len(name) > MaxHolidayNameSize:
		return fmt.Errorf("longer than %d bytes", MaxHolidayNameSize)
	case !utf8.ValidString(name):
		return errors.New("not valid UTF-8")
	}
	for _, r := range name {
		if unicode.IsControl(r) { // reasons end up in logs and call records
			return fmt.Errorf("%s: control characters are not allowed", quote(name))
		}
	}
	return nil
}

// parseDate accepts "YYYY-MM-DD" and "*-MM-DD". Yearly dates get key
// dateKey(0, m, d), which no fixed date can have since years start at 1.
func parseDate(s string) (key int, yearly bool, err error) {
	const want = "want YYYY-MM-DD or *-MM-DD"
	var y int
	var rest string
	switch {
	case len(s) == 10 && s[4] == '-':
		var ok bool
		if y, ok = digits(s[:4]); !ok || y == 0 {
			return 0, false, errors.New(want)
		}
		rest = s[5:]
	case len(s) == 7 && s[:2] == "*-":
		yearly, rest = true, s[2:]
	default:
		return 0, false, errors.New(want)
	}
	m, okm := digits(rest[:2])
	d, okd := digits(rest[3:])
	if rest[2] != '-' || !okm || !okd {
		return 0, false, errors.New(want)
	}
	checkYear := y
	if yearly {
		checkYear = 2000 // a leap year, so *-02-29 is a real date
	}
	t := time.Date(checkYear, time.Month(m), d, 0, 0, 0, 0, time.UTC)
	if t.Year() != checkYear || int(t.Month()) != m || t.Day() != d {
		return 0, false, errors.New("no such date")
	}
	return dateKey(y, time.Month(m), d), yearly, nil
}

// parseRanges reads a JSON array of "HH:MM-HH:MM" for one day, sorted.
func parseRanges(dec *json.Decoder, field string) ([]span, error) {
	var raw []string
	err := eachElem(dec, field, MaxRangesPerDay, func(i int) error {
		var s string
		err := decodeString(dec, fmt.Sprintf("%s[%d]", field, i), &s)
		raw = append(raw, s)
		return err
	})
	if err != nil {
		return nil, err
	}
	spans := make([]span, len(raw))
	for i, r := range raw {
		if spans[i], err = parseRange(r); err != nil {
			return nil, fmt.Errorf("%s[%d] %s: %w", field, i, quote(r), err)
		}
	}
	order := make([]int, len(raw))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return int(spans[a].start - spans[b].start) })
	for k := 1; k < len(order); k++ {
		a, b := order[k-1], order[k]
		if spans[a].end > spans[b].start {
			return nil, fmt.Errorf("%s[%d] %s overlaps %s[%d] %s", field, b, quote(raw[b]), field, a, quote(raw[a]))
		}
	}
	slices.SortFunc(spans, func(a, b span) int { return int(a.start - b.start) })
	return spans, nil
}

func parseRange(s string) (span, error) {
	if len(s) != 11 || s[5] != '-' {
		return span{}, errors.New("want HH:MM-HH:MM")
	}
	start, ok1 := parseClock(s[:5])
	end, ok2 := parseClock(s[6:])
	switch {
	case !ok1 || !ok2:
		return span{}, errors.New("want HH:MM-HH:MM, from 00:00 to 24:00")
	case start == minutesPerDay:
		return span{}, errors.New("24:00 can only end a range")
	case start == end:
		return span{}, errors.New(`empty range; use "00:00-24:00" for all day`)
	case end < start:
		end += minutesPerDay // crosses midnight
	}
	return span{start, end}, nil
}

func parseClock(s string) (int32, bool) {
	h, okh := digits(s[:2])
	m, okm := digits(s[3:])
	if s[2] != ':' || !okh || !okm || m > 59 || h > 24 || h == 24 && m != 0 {
		return 0, false
	}
	return int32(h*60 + m), true
}

func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

// eachKey reads a JSON object, calling fn for each key with dec positioned
// at its value; fn must consume the value. Duplicate keys are refused. Its
// own errors are prefixed with field; fn's errors are returned as they are.
func eachKey(dec *json.Decoder, field, what string, fn func(key string) error) error {
	if err := expectDelim(dec, field, '{', "object"); err != nil {
		return err
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return prefix(field, jsonErr(err))
		}
		key, _ := tok.(string) // inside an object the decoder only yields string keys
		if seen[key] {
			return prefix(field, fmt.Errorf("duplicate %s %s", what, quote(key)))
		}
		seen[key] = true
		if err := fn(key); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return prefix(field, jsonErr(err))
	}
	return nil
}

// eachElem reads a JSON array of at most max elements, calling fn(i) with dec
// positioned at each element; fn must consume it.
func eachElem(dec *json.Decoder, field string, max int, fn func(i int) error) error {
	if err := expectDelim(dec, field, '[', "array"); err != nil {
		return err
	}
	for i := 0; dec.More(); i++ {
		if i == max {
			return fmt.Errorf("%s: more than %d entries", field, max)
		}
		if err := fn(i); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return prefix(field, jsonErr(err))
	}
	return nil
}

func expectDelim(dec *json.Decoder, field string, want json.Delim, kind string) error {
	tok, err := dec.Token()
	if err != nil {
		return prefix(field, jsonErr(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return prefix(field, fmt.Errorf("want a JSON %s, got %s", kind, kindOf(tok)))
	}
	return nil
}

func decodeString(dec *json.Decoder, field string, dst *string) error {
	if err := dec.Decode(dst); err != nil {
		return prefix(field, fmt.Errorf("want a JSON string: %w", jsonErr(err)))
	}
	return nil
}

func kindOf(tok json.Token) string {
	switch tok.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case float64, json.Number:
		return "a number"
	case string:
		return "a string"
	}
	if tok == json.Delim('[') {
		return "an array"
	}
	return "an object"
}

func jsonErr(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func prefix(field string, err error) error {
	if field == "" {
		return err
	}
	return fmt.Errorf("%s: %w", field, err)
}

// quote quotes user text for an error, cut short so a hostile document
// cannot produce a megabyte error message.
func quote(s string) string {
	const max = 80
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return fmt.Sprintf("%q…", s[:cut])
	}
	return fmt.Sprintf("%q", s)
}
