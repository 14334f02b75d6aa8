package hours

import (
	"strings"
	"testing"
	"time"
)

const doc = `{
  "support": {
    "time_zone": "America/New_York",
    "weekly": {"mon": ["09:00-17:00"], "tue": ["09:00-12:30", "13:30-17:00"], "fri": ["09:00-24:00"],
               "sat": ["22:00-02:00"], "sun": ["23:00-01:00"]},
    "holidays": [
      {"date": "2026-12-25", "name": "Christmas"},
      {"date": "*-01-01", "name": "New Year"},
      {"date": "2026-12-24", "name": "Christmas Eve", "hours": ["09:00-12:00"]}
    ]
  },
  "london": {"time_zone": "Europe/London", "weekly": {"sun": ["01:30-02:30"], "mon": ["08:00-20:00"]}}
}`

func TestIsOpen(t *testing.T) {
	set, err := ParseSet([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	ny, _ := time.LoadLocation("America/New_York")
	ldn, _ := time.LoadLocation("Europe/London")
	at := func(loc *time.Location, s string) time.Time {
		tm, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	for _, tc := range []struct {
		schedule string
		t        time.Time
		want     bool
	}{
		{"support", at(ny, "2026-11-23 09:00"), true},  // Monday, opening minute
		{"support", at(ny, "2026-11-23 08:59"), false}, // before
		{"support", at(ny, "2026-11-23 16:59"), true},
		{"support", at(ny, "2026-11-23 17:00"), false}, // half-open: closing minute is closed
		{"support", at(ny, "2026-11-24 12:45"), false}, // Tuesday lunch break
		{"support", at(ny, "2026-11-24 13:30"), true},
		{"support", at(ny, "2026-11-25 10:00"), false}, // Wednesday: no hours
		{"support", at(ny, "2026-11-27 23:59"), true},  // Friday to 24:00
		{"support", at(ny, "2026-11-28 00:00"), false}, // ... and not a minute past
		{"support", at(ny, "2026-11-28 22:00"), true},  // Saturday night range
		{"support", at(ny, "2026-11-29 01:59"), true},  // runs into Sunday
		{"support", at(ny, "2026-11-29 02:00"), false},
		{"support", at(ny, "2026-11-30 00:30"), true},  // Sunday 23:00-01:00 wraps into Monday
		{"support", at(ny, "2026-12-25 10:00"), false}, // a Friday, but Christmas
		{"support", at(ny, "2026-12-24 11:00"), true},  // Christmas Eve special hours
		{"support", at(ny, "2026-12-24 13:00"), false},
		{"support", at(ny, "2029-01-01 10:00"), false}, // New Year every year (a Monday)
		{"support", at(ny, "2029-01-08 10:00"), true},
		// One instant, two zones: 14:00 UTC is 09:00 in New York (open) and
		// 14:00 in London on a Tuesday (closed there: only Mondays).
		{"support", time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC), true},
		{"london", time.Date(2026, 11, 24, 14, 0, 0, 0, time.UTC), false},
		{"london", time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC), true},
		// DST: New York springs forward 2026-03-08 and falls back 2026-11-01;
		// opening hours stay on the wall clock. 2026-03-09 09:00 EDT is 13:00
		// UTC; the week before, 09:00 EST was 14:00 UTC.
		{"support", time.Date(2026, 3, 9, 13, 0, 0, 0, time.UTC), true},
		{"support", time.Date(2026, 3, 2, 13, 0, 0, 0, time.UTC), false},
		{"support", time.Date(2026, 11, 2, 14, 0, 0, 0, time.UTC), true},
		// London falls back 2026-10-25 at 02:00 BST: 01:30 happens twice,
		// both are open; 02:30 GMT is closed.
		{"london", time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC), true},
		{"london", time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC), true},
		{"london", at(ldn, "2026-10-25 02:30"), false},
	} {
		sc, _ := set.Get(tc.schedule)
		if got := sc.IsOpen(tc.t); got != tc.want {
			t.Errorf("%s at %s: open=%v, want %v", tc.schedule, tc.t.In(sc.Location()).Format("Mon 2006-01-02 15:04 MST"), got, tc.want)
		}
	}
	if got := strings.Join(set.Names(), ","); got != "london,support" {
		t.Errorf("names: %s", got)
	}
}

func TestParseErrorsNameScheduleAndField(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{`[]`, "JSON object"},
		{`{"a b": {"time_zone": "UTC"}}`, `schedule "a b"`},
		{`{"s": {"time_zone": "Local"}}`, `schedule "s": time_zone`},
		{`{"s": {}}`, `schedule "s": time_zone`},
		{`{"s": {"time_zone": "Mars/Olympus"}}`, `schedule "s": time_zone: "Mars/Olympus"`},
		{`{"s": {"time_zone": "UTC", "colour": "red"}}`, `unknown field "colour"`},
		{`{"s": {"time_zone": "UTC", "weekly": {"monday": ["09:00-17:00"]}}}`, `weekly.monday: unknown day`},
		{`{"s": {"time_zone": "UTC", "weekly": {"tue": ["09:00-12:30", "13:30-1700"]}}}`, `weekly.tue: [1] "13:30-1700": want HH:MM-HH:MM`},
		{`{"s": {"time_zone": "UTC", "weekly": {"tue": ["09:00-09:00"]}}}`, `weekly.tue: [0] "09:00-09:00": an empty range`},
		{`{"s": {"time_zone": "UTC", "weekly": {"tue": ["09:00-12:00", "11:00-13:00"]}}}`, `weekly.tue: ranges overlap`},
		{`{"s": {"time_zone": "UTC", "weekly": {"tue": ["25:00-26:00"]}}}`, `weekly.tue: [0]`},
		{`{"s": {"time_zone": "UTC", "weekly": {"tue": ["24:00-02:00"]}}}`, `weekly.tue: [0]`},
		{`{"s": {"time_zone": "UTC", "holidays": [{"date": "2026-02-30"}]}}`, `holidays[0].date: "2026-02-30"`},
		{`{"s": {"time_zone": "UTC", "holidays": [{"date": "*-13-01"}]}}`, `holidays[0].date`},
		{`{"s": {"time_zone": "UTC", "holidays": [{"date": "2026-12-25"}, {"date": "2026-12-25"}]}}`, `holidays[1].date: "2026-12-25" appears twice`},
		{`{"s": {"time_zone": "UTC", "holidays": [{"date": "2026-12-24", "hours": ["x"]}]}}`, `holidays[0].hours`},
	} {
		_, err := ParseSet([]byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.doc, err, tc.want)
		}
	}
	big := `{"s": {"time_zone": "UTC", "weekly": {"mon": [` + strings.Repeat(`"00:00-00:01",`, 20) + `"01:00-02:00"]}}}`
	if _, err := ParseSet([]byte(big)); err == nil || !strings.Contains(err.Error(), "at most 16") {
		t.Errorf("too many ranges: %v", err)
	}
}

// The shipped example file parses.
func TestShippedSchedulesParse(t *testing.T) {
	set, err := LoadFile("../../../../lua/schedules.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := set.Get("frontdesk"); !ok {
		t.Fatal("no frontdesk schedule")
	}
}

func FuzzParseSet(f *testing.F) {
	f.Add([]byte(doc))
	f.Add([]byte(`{"s": {"time_zone": "UTC", "weekly": {"mon": ["23:59-00:01"]}, "holidays": [{"date": "*-02-29"}]}}`))
	f.Add([]byte(`{"s": {"time_zone": "Asia/Kolkata", "weekly": {"sun": ["00:00-24:00"]}}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := ParseSet(data)
		if err != nil {
			return
		}
		for _, name := range set.Names() {
			sc, _ := set.Get(name)
			for _, at := range []time.Time{time.Unix(0, 0), time.Date(2026, 3, 8, 7, 30, 0, 0, time.UTC), time.Date(2028, 2, 29, 23, 59, 0, 0, time.UTC)} {
				sc.IsOpen(at)
			}
		}
	})
}

func BenchmarkIsOpen(b *testing.B) {
	set, _ := ParseSet([]byte(doc))
	sc, _ := set.Get("support")
	t := time.Date(2026, 11, 23, 15, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		sc.IsOpen(t)
	}
}
