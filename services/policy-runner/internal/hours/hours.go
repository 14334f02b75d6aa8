// Package hours parses business-hours schedules and answers whether one is
// open at an instant (schedule.is_open in policies).
//
// A schedules file is a JSON object of named schedules:
//
//	{
//	  "support": {
//	    "time_zone": "America/New_York",
//	    "weekly": {"mon": ["09:00-17:00"], "tue": ["09:00-12:30", "13:30-17:00"],
//	               "sat": ["22:00-02:00"]},
//	    "holidays": [
//	      {"date": "2026-12-25", "name": "Christmas"},
//	      {"date": "*-01-01", "name": "New Year"},
//	      {"date": "2026-12-24", "name": "Christmas Eve", "hours": ["09:00-12:00"]}
//	    ]
//	  }
//	}
//
// Rules:
//   - Times are wall-clock in the schedule's zone (an IANA name; "Local" is
//     refused, a schedule must not depend on the server's zone). Ranges are
//     half-open, [start, end); "24:00" ends at midnight; an end before the
//     start crosses midnight and belongs to its start day (sat 22:00-02:00 is
//     open Sunday 01:00). A missing day is closed.
//   - A holiday ("YYYY-MM-DD", or "*-MM-DD" every year) replaces that day's
//     weekly hours: closed, or its own "hours". The previous day's range
//     running past midnight still runs into a holiday: it belongs to the day
//     it started on.
//   - On DST days the wall clock decides: 09:00-17:00 is 09:00-17:00 local. A
//     time inside a skipped hour does not exist and is never asked about.
//   - Bounds: 1 MiB per file, 1000 schedules, 16 ranges per day, 1000
//     holidays per schedule; overlapping ranges on one day are refused.
package hours

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"
	_ "time/tzdata" // zones work on machines without /usr/share/zoneinfo
)

const (
	maxFileBytes = 1 << 20
	maxSchedules = 1000
	maxRanges    = 16
	maxHolidays  = 1000
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_\-]{1,64}$`)

// span is [from, to) in minutes of the day; to may exceed 1440 when the
// range crosses midnight.
type span struct{ from, to int }

// Schedule is one parsed schedule, immutable and safe for concurrent use.
type Schedule struct {
	name   string
	loc    *time.Location
	weekly [7][]span       // by time.Weekday
	dated  map[int]holiday // year*10000 + month*100 + day
	yearly map[int]holiday // month*100 + day
}

type holiday struct {
	name  string
	spans []span // nil: closed all day
}

// Set is a validated collection of named schedules.
type Set struct{ byName map[string]*Schedule }

// Get returns a schedule by name.
func (s *Set) Get(name string) (*Schedule, bool) {
	sc, ok := s.byName[name]
	return sc, ok
}

// Names lists the schedules, sorted.
func (s *Set) Names() []string {
	out := make([]string, 0, len(s.byName))
	for n := range s.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Name is the schedule's name.
func (s *Schedule) Name() string { return s.name }

// Location is the schedule's time zone.
func (s *Schedule) Location() *time.Location { return s.loc }

// LoadFile reads and parses a schedules file.
func LoadFile(path string) (*Set, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFileBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxFileBytes)
	}
	set, err := ParseSet(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return set, nil
}

type jsonHoliday struct {
	Date  string   `json:"date"`
	Name  string   `json:"name"`
	Hours []string `json:"hours"`
}

type jsonSchedule struct {
	TimeZone string              `json:"time_zone"`
	Weekly   map[string][]string `json:"weekly"`
	Holidays []jsonHoliday       `json:"holidays"`
}

var dayIndex = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday,
	"wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// ParseSet parses a schedules document.
func ParseSet(data []byte) (*Set, error) {
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("schedules: larger than %d bytes", maxFileBytes)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("schedules: want a JSON object of named schedules: %w", err)
	}
	if len(raw) > maxSchedules {
		return nil, fmt.Errorf("schedules: %d schedules; at most %d", len(raw), maxSchedules)
	}
	set := &Set{byName: map[string]*Schedule{}}
	for name, body := range raw {
		if !nameRE.MatchString(name) {
			return nil, fmt.Errorf("schedule %q: a name is 1-64 letters, digits, _ or -", name)
		}
		sc, err := parseSchedule(name, body)
		if err != nil {
			return nil, err
		}
		set.byName[name] = sc
	}
	return set, nil
}

func parseSchedule(name string, body []byte) (*Schedule, error) {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("schedule %q: %s: %s", name, field, fmt.Sprintf(format, args...))
	}
	var js jsonSchedule
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&js); err != nil {
		return nil, fmt.Errorf("schedule %q: %w", name, err)
	}
	if js.TimeZone == "" || js.TimeZone == "Local" {
		return nil, bad("time_zone", "give an IANA zone such as Europe/London (Local would depend on the server)")
	}
	loc, err := time.LoadLocation(js.TimeZone)
	if err != nil {
		return nil, bad("time_zone", "%q: %v", js.TimeZone, err)
	}
	sc := &Schedule{name: name, loc: loc, dated: map[int]holiday{}, yearly: map[int]holiday{}}
	for day, ranges := range js.Weekly {
		wd, ok := dayIndex[day]
		if !ok {
			return nil, bad("weekly."+day, "unknown day; use mon tue wed thu fri sat sun")
		}
		spans, err := parseSpans(ranges)
		if err != nil {
			return nil, bad("weekly."+day, "%v", err)
		}
		sc.weekly[wd] = spans
	}
	if len(js.Holidays) > maxHolidays {
		return nil, bad("holidays", "%d holidays; at most %d", len(js.Holidays), maxHolidays)
	}
	for i, h := range js.Holidays {
		field := fmt.Sprintf("holidays[%d]", i)
		var spans []span
		if h.Hours != nil {
			if spans, err = parseSpans(h.Hours); err != nil {
				return nil, bad(field+".hours", "%v", err)
			}
			if spans == nil {
				spans = []span{} // "hours": [] is closed too, said explicitly
			}
		}
		hol := holiday{name: h.Name, spans: spans}
		date, yearly := strings.CutPrefix(h.Date, "*-")
		if yearly {
			date = "2024-" + date // a leap year, so *-02-29 is a date
		}
		d, err := time.Parse("2006-01-02", date)
		if err != nil || len(date) != 10 {
			return nil, bad(field+".date", "%q: want YYYY-MM-DD or *-MM-DD", h.Date)
		}
		table, key := sc.dated, d.Year()*10000+int(d.Month())*100+d.Day()
		if yearly {
			table, key = sc.yearly, int(d.Month())*100+d.Day()
		}
		if _, dup := table[key]; dup {
			return nil, bad(field+".date", "%q appears twice", h.Date)
		}
		table[key] = hol
	}
	return sc, nil
}

func parseSpans(ranges []string) ([]span, error) {
	if len(ranges) > maxRanges {
		return nil, fmt.Errorf("%d ranges; at most %d", len(ranges), maxRanges)
	}
	var out []span
	for i, r := range ranges {
		from, to, ok := strings.Cut(r, "-")
		f, err1 := clock(from)
		t, err2 := clock(to)
		if !ok || err1 != nil || err2 != nil || f == 1440 {
			return nil, fmt.Errorf("[%d] %q: want HH:MM-HH:MM", i, r)
		}
		if f == t {
			return nil, fmt.Errorf("[%d] %q: an empty range", i, r)
		}
		if t < f {
			t += 1440
		}
		out = append(out, span{f, t})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].from < out[j].from })
	for i := 1; i < len(out); i++ {
		if out[i].from < out[i-1].to {
			return nil, fmt.Errorf("ranges overlap")
		}
	}
	return out, nil
}

// clock parses HH:MM into minutes, 00:00-24:00.
func clock(s string) (int, error) {
	if len(s) != 5 || s[2] != ':' {
		return 0, fmt.Errorf("bad time")
	}
	var h, m int
	for _, c := range s[:2] + s[3:] {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("bad time")
		}
	}
	h = int(s[0]-'0')*10 + int(s[1]-'0')
	m = int(s[3]-'0')*10 + int(s[4]-'0')
	if m > 59 || h > 24 || h == 24 && m != 0 {
		return 0, fmt.Errorf("bad time")
	}
	return h*60 + m, nil
}

// spansOn is the ranges that start on the local date y-m-d.
func (s *Schedule) spansOn(y int, mo time.Month, d int, wd time.Weekday) []span {
	md := int(mo)*100 + d
	if h, ok := s.dated[y*10000+md]; ok {
		return h.spans
	}
	if h, ok := s.yearly[md]; ok {
		return h.spans
	}
	return s.weekly[wd]
}

// IsOpen reports whether the schedule is open at t.
func (s *Schedule) IsOpen(t time.Time) bool {
	lt := t.In(s.loc)
	minute := lt.Hour()*60 + lt.Minute()
	y, mo, d := lt.Date()
	for _, sp := range s.spansOn(y, mo, d, lt.Weekday()) {
		if minute >= sp.from && minute < sp.to {
			return true
		}
	}
	// Yesterday's ranges that run past midnight.
	py, pmo, pd := lt.AddDate(0, 0, -1).Date()
	for _, sp := range s.spansOn(py, pmo, pd, (lt.Weekday()+6)%7) {
		if sp.to > 1440 && minute+1440 >= sp.from && minute+1440 < sp.to {
			return true
		}
	}
	return false
}
