// Package schedule parses named business-hours schedules and answers whether
// one is open at an instant; routing policies reach it as
// schedule.is_open(name, time).
//
// A schedules document is one JSON object mapping schedule names to schedules:
//
//	{
//	  "support": {
//	    "time_zone": "America/New_York",
//	    "weekly": {"mon": ["09:00-17:00"], "tue": ["09:00-12:30", "13:30-17:00"],
//	               "wed": ["09:00-17:00"], "thu": ["09:00-17:00"], "fri": ["09:00-17:00"],
//	               "sat": ["22:00-02:00"]},
//	    "holidays": [
//	      {"date": "2026-12-25", "name": "Christmas"},
//	      {"date": "*-01-01", "name": "New Year"},
//	      {"date": "2026-12-24", "name": "Christmas Eve", "hours": ["09:00-12:00"]}
//	    ]
//	  }
//	}
//
// Names match ^[A-Za-z0-9_-]{1,64}$. Fields:
//
//   - time_zone (required): an IANA zone name such as "Europe/London" or
//     "UTC". "Local" is refused: a schedule must not change meaning with the
//     server it runs on.
//   - weekly (optional): days mon tue wed thu fri sat sun, each a list of
//     "HH:MM-HH:MM" ranges (at most 16). A day that is missing or [] is closed;
//     so is every day of a schedule without weekly.
//   - holidays (optional, at most 1000): date "YYYY-MM-DD" (that date only) or
//     "*-MM-DD" (every year; "*-02-29" only in leap years), a name, and
//     optional hours. A holiday replaces the weekly hours of its date: without
//     hours the day is closed, with hours those hours apply instead.
//
// Ranges:
//
//   - Times are wall-clock in the schedule's zone, 00:00 to 24:00; ranges are
//     half-open [start, end), so 09:00-17:00 is open at 09:00 and closed at
//     17:00. Seconds are ignored: 16:59:59 is open.
//   - "00:00-24:00" is all day. 24:00 may only end a range. A range whose end
//     is before its start crosses midnight and belongs to its start day:
//     sat 22:00-02:00 is open on Sunday at 01:00, sun 23:00-01:00 on Monday at
//     00:30. "22:00-00:00" means 22:00-24:00. Empty ranges (09:00-09:00) are
//     refused, and so are ranges of one day that overlap each other; touching
//     ranges (09:00-12:00, 12:00-17:00) are fine.
//   - A range running past midnight is not cut by the next day's rules: the
//     tail of Christmas Eve's 20:00-02:00 stays open on Christmas at 01:00,
//     even though Christmas is closed. Tails may overlap the next day's own
//     ranges; the schedule is open if any range covers the moment.
//
// Holidays: at most one entry per date string. A fixed date and a yearly date
// may name the same day; the fixed date wins, which lets one year differ from
// the rule ("*-12-24" closed, "2026-12-24" with hours). Holidays are not moved
// to an observed weekday; list the observed date instead.
//
// Daylight saving: ranges are read in local wall-clock time, so 09:00-17:00
// is 09:00-17:00 local on both sides of a change. Each boundary takes effect
// the first time the local clock reads that time or later:
//
//   - spring forward: a range starting in the skipped hour (02:30 on a day
//     New York jumps from 02:00 to 03:00) opens at the jump, 03:00; one ending
//     there closes at the jump; one lying wholly inside it does not open.
//   - fall back: the clock is treated as standing still through the repeated
//     hour, so the state just before the change holds until the clock reaches
//     that time again. 01:30-03:00 stays open through the repeated hour;
//     00:00-01:30 closes at the first 01:30 and does not reopen.
//
// Limits, so that a hostile document costs one error: 1 MiB per document,
// 1000 schedules, 16 ranges per day, 1000 holidays per schedule, 128 bytes
// per holiday name. Errors name the schedule and field, e.g.
//
//	schedule "support": weekly.tue[1] "13:30-1700": want HH:MM-HH:MM
package schedule

import (
	"slices"
	"time"
	_ "time/tzdata" // zones must load on hosts without /usr/share/zoneinfo
)

const minutesPerDay = 24 * 60

// Horizon bounds how far State looks ahead for the next change.
const Horizon = 14 * 24 * time.Hour

// Set is a validated collection of named schedules.
type Set struct {
	byName map[string]*Schedule
	names  []string // sorted
}

// Get returns the schedule called name.
func (s *Set) Get(name string) (*Schedule, bool) {
	sc, ok := s.byName[name]
	return sc, ok
}

// Names returns the schedule names in sorted order.
func (s *Set) Names() []string { return slices.Clone(s.names) }

// Schedule is one validated schedule. It is immutable after parsing and safe
// for concurrent use.
type Schedule struct {
	name   string
	loc    *time.Location
	weekly [7]dayPlan       // by time.Weekday
	fixed  map[int]*dayPlan // by dateKey(y, m, d)
	yearly map[int]*dayPlan // by dateKey(0, m, d)
	tails  bool             // some range runs past midnight
}

// State explains an answer of IsOpen.
type State struct {
	Open bool
	// Reason is "weekly hours", "holiday: <name>", "special hours: <name>"
	// or "closed". When a range running past midnight decides, it names the
	// day the range started on.
	Reason string
	// Until is the first instant after t at which Open differs, in the
	// schedule's zone; zero if Open does not change within Horizon.
	Until time.Time
}

// span is [start, end) in minutes from the local midnight of its day; end
// exceeds minutesPerDay when the range crosses midnight.
type span struct{ start, end int32 }

// dayPlan is what one local date contributes: the ranges starting on it and
// how to explain the answer.
type dayPlan struct {
	spans        []span // sorted, non-overlapping
	openReason   string
	closedReason string
}

func (p *dayPlan) covers(minute int32) bool {
	for _, sp := range p.spans {
		if minute < sp.start {
			return false
		}
		if minute < sp.end {
			return true
		}
	}
	return false
}

func dateKey(y int, m time.Month, d int) int { return y*10000 + int(m)*100 + d }

// Name returns the schedule's name.
func (s *Schedule) Name() string { return s.name }

// Location returns the zone the schedule's times are read in.
func (s *Schedule) Location() *time.Location { return s.loc }

// IsOpen reports whether the schedule is open at t. It does not allocate.
func (s *Schedule) IsOpen(t time.Time) bool {
	open, _ := s.eval(t)
	return open
}

// State reports whether the schedule is open at t, why, and until when.
func (s *Schedule) State(t time.Time) State {
	open, reason := s.eval(t)
	return State{Open: open, Reason: reason, Until: s.nextChange(t, open)}
}

func (s *Schedule) plan(y int, m time.Month, d int, wd time.Weekday) *dayPlan {
	if s.fixed != nil {
		if p, ok := s.fixed[dateKey(y, m, d)]; ok {
			return p
		}
	}
	if s.yearly != nil {
		if p, ok := s.yearly[dateKey(0, m, d)]; ok {
			return p
		}
	}
	return &s.weekly[wd]
}

func (s *Schedule) eval(t time.Time) (bool, string) {
	w := s.wall(t)
	y, m, d := w.Date()
	hh, mm, _ := w.Clock()
	minute := int32(hh*60 + mm)
	wd := w.Weekday()
	today := s.plan(y, m, d, wd)
	if today.covers(minute) {
		return true, today.openReason
	}
	if s.tails {
		py, pm, pd := time.Date(y, m, d-1, 0, 0, 0, 0, time.UTC).Date()
		prev := s.plan(py, pm, pd, (wd+6)%7)
		if prev.covers(minute + minutesPerDay) {
			return true, prev.openReason
		}
	}
	return false, today.closedReason
}

// wall returns the local time that decides the answer at t: the wall clock,
// except that during the repeated stretch after clocks go back it stays at
// the last moment before the change, so no boundary is crossed twice.
func (s *Schedule) wall(t time.Time) time.Time {
	lt := t.In(s.loc)
	start, _ := lt.ZoneBounds()
	if start.IsZero() {
		return lt
	}
	since := lt.Sub(start)
	if since >= 24*time.Hour { // no zone has ever gone back by a day
		return lt
	}
	before := start.Add(-time.Nanosecond).In(s.loc)
	_, off := lt.Zone()
	_, prevOff := before.Zone()
	if back := time.Duration(prevOff-off) * time.Second; since < back {
		return before
	}
	return lt
}

// nextChange finds the first instant in (t, t+Horizon] where IsOpen differs
// from open. The answer can only change where the wall clock reaches a range
// boundary or where it jumps forward at a zone change (a stood-still clock
// resumes at the whole minute it stopped at, itself a boundary if anything
// changes there). Every such instant is a candidate; the earliest one with a
// different answer is the change.
func (s *Schedule) nextChange(t time.Time, open bool) time.Time {
	end := t.Add(Horizon)
	var cands []time.Time
	cur := t.In(s.loc)
	_, off := cur.Zone()
	offsets := []int{off}
	for {
		_, next := cur.ZoneBounds()
		if next.IsZero() || next.After(end) {
			break
		}
		cur = next.In(s.loc)
		_, off = cur.Zone()
		cands = append(cands, next)
		offsets = append(offsets, off)
	}

	y, m, d := t.In(s.loc).Date()
	for i := -1; i <= int(Horizon/(24*time.Hour))+1; i++ {
		day := time.Date(y, m, d+i, 0, 0, 0, 0, time.UTC)
		dy, dm, dd := day.Date()
		p := s.plan(dy, dm, dd, day.Weekday())
		add := func(minute int32) {
			wall := day.Unix() + int64(minute)*60
			for _, o := range offsets {
				c := time.Unix(wall-int64(o), 0)
				if _, co := c.In(s.loc).Zone(); co == o { // the clock really reads wall at c
					cands = append(cands, c)
				}
			}
		}
		for _, sp := range p.spans {
			add(sp.start)
			add(sp.end)
		}
	}

	slices.SortFunc(cands, time.Time.Compare)
	for _, c := range cands {
		if !c.After(t) || c.After(end) {
			continue
		}
		if s.IsOpen(c) != open {
			return c.In(s.loc)
		}
	}
	return time.Time{}
}
