package schedule

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// doc wraps one schedule body in a document under the name "s".
func doc(body string) string { return `{"s": ` + body + `}` }

func weeklyDoc(days string) string { return doc(`{"time_zone": "UTC", "weekly": {` + days + `}}`) }

func holidayDoc(entries string) string {
	return doc(`{"time_zone": "UTC", "holidays": [` + entries + `]}`)
}

// hourRanges returns n non-overlapping ranges, one per hour from midnight.
func hourRanges(n int) string {
	var parts []string
	for i := 0; i < n; i++ {
		parts = append(parts, fmt.Sprintf(`"%02d:00-%02d:30"`, i, i))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func manyHolidays(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		d := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i)
		fmt.Fprintf(&b, `{"date": %q, "name": "h"}`, d.Format("2006-01-02"))
	}
	return holidayDoc(b.String())
}

func manySchedules(n int) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"s%d": {"time_zone": "UTC"}`, i)
	}
	b.WriteByte('}')
	return b.String()
}

var rejected = []struct {
	name string
	doc  string
	want string // substring of the error; names the schedule and field where there is one
}{
	{"bad range", weeklyDoc(`"tue": ["09:00-12:30", "13:30-1700"]`), `schedule "s": weekly.tue[1] "13:30-1700": want HH:MM-HH:MM`},
	{"hour 25", weeklyDoc(`"mon": ["25:00-26:00"]`), `schedule "s": weekly.mon[0] "25:00-26:00": want HH:MM-HH:MM`},
	{"minute 60", weeklyDoc(`"mon": ["09:60-10:00"]`), `schedule "s": weekly.mon[0] "09:60-10:00": want HH:MM-HH:MM`},
	{"past 24:00", weeklyDoc(`"mon": ["09:00-24:30"]`), `schedule "s": weekly.mon[0] "09:00-24:30": want HH:MM-HH:MM`},
	{"24:00 start", weeklyDoc(`"mon": ["24:00-01:00"]`), `schedule "s": weekly.mon[0] "24:00-01:00": 24:00 can only end`},
	{"single digits", weeklyDoc(`"mon": ["9:00-17:00"]`), `schedule "s": weekly.mon[0] "9:00-17:00": want HH:MM-HH:MM`},
	{"empty range", weeklyDoc(`"mon": ["09:00-09:00"]`), `schedule "s": weekly.mon[0] "09:00-09:00": empty range`},
	{"empty midnight range", weeklyDoc(`"mon": ["00:00-00:00"]`), `schedule "s": weekly.mon[0] "00:00-00:00": empty range`},
	{"overlap", weeklyDoc(`"mon": ["09:00-12:00", "11:00-13:00"]`), `schedule "s": weekly.mon[1] "11:00-13:00" overlaps weekly.mon[0] "09:00-12:00"`},
	{"overlap unsorted", weeklyDoc(`"wed": ["13:00-14:00", "09:00-13:30"]`), `schedule "s": weekly.wed[0] "13:00-14:00" overlaps weekly.wed[1] "09:00-13:30"`},
	{"overlap past midnight", weeklyDoc(`"sat": ["22:00-02:00", "23:00-23:30"]`), `schedule "s": weekly.sat[1] "23:00-23:30" overlaps weekly.sat[0] "22:00-02:00"`},
	{"unknown day", weeklyDoc(`"monday": ["09:00-17:00"]`), `schedule "s": weekly: unknown day "monday"`},
	{"day name case", weeklyDoc(`"Mon": ["09:00-17:00"]`), `schedule "s": weekly: unknown day "Mon"`},
	{"duplicate day", weeklyDoc(`"mon": ["09:00-10:00"], "mon": ["11:00-12:00"]`), `schedule "s": weekly: duplicate day "mon"`},
	{"day not a list", weeklyDoc(`"mon": "09:00-17:00"`), `schedule "s": weekly.mon: want a JSON array, got a string`},
	{"day null", weeklyDoc(`"mon": null`), `schedule "s": weekly.mon: want a JSON array, got null`},
	{"range not a string", weeklyDoc(`"mon": [900]`), `schedule "s": weekly.mon[0]: want a JSON string`},
	{"too many ranges", weeklyDoc(`"mon": ` + hourRanges(MaxRangesPerDay+1)), `schedule "s": weekly.mon: more than 16 entries`},
	{"weekly not an object", doc(`{"time_zone": "UTC", "weekly": []}`), `schedule "s": weekly: want a JSON object, got an array`},

	{"unknown field", doc(`{"timezone": "UTC"}`), `schedule "s": unknown field "timezone"`},
	{"duplicate field", doc(`{"time_zone": "UTC", "time_zone": "Europe/London"}`), `schedule "s": duplicate field "time_zone"`},
	{"no time zone", doc(`{"weekly": {}}`), `schedule "s": time_zone: required`},
	{"empty time zone", doc(`{"time_zone": ""}`), `schedule "s": time_zone: required`},
	{"time zone not a string", doc(`{"time_zone": 5}`), `schedule "s": time_zone: want a JSON string`},
	{"unknown time zone", doc(`{"time_zone": "Mars/Olympus"}`), `schedule "s": time_zone "Mars/Olympus": `},
	{"Local", doc(`{"time_zone": "Local"}`), `schedule "s": time_zone "Local": refused`},
	{"schedule not an object", doc(`5`), `schedule "s": want a JSON object, got a number`},
	{"truncated", `{"s": {"time_zone": "UTC"`, `schedule "s": unexpected EOF`},

	{"impossible date", holidayDoc(`{"date": "2026-02-30", "name": "x"}`), `schedule "s": holidays[0].date "2026-02-30": no such date`},
	{"month 13", holidayDoc(`{"date": "2026-13-01", "name": "x"}`), `schedule "s": holidays[0].date "2026-13-01": no such date`},
	{"yearly impossible date", holidayDoc(`{"date": "*-02-30", "name": "x"}`), `schedule "s": holidays[0].date "*-02-30": no such date`},
	{"year zero", holidayDoc(`{"date": "0000-01-01", "name": "x"}`), `schedule "s": holidays[0].date "0000-01-01": want YYYY-MM-DD`},
	{"no year", holidayDoc(`{"date": "12-25", "name": "x"}`), `schedule "s": holidays[0].date "12-25": want YYYY-MM-DD or *-MM-DD`},
	{"slashes", holidayDoc(`{"date": "2026/12/25", "name": "x"}`), `schedule "s": holidays[0].date "2026/12/25": want YYYY-MM-DD`},
	{"no date", holidayDoc(`{"name": "x"}`), `schedule "s": holidays[0].date: required`},
	{"duplicate date", holidayDoc(`{"date": "2026-12-25", "name": "a"}, {"date": "2026-12-25", "name": "b"}`), `schedule "s": holidays[1].date "2026-12-25": duplicate of holidays[0]`},
	{"duplicate yearly date", holidayDoc(`{"date": "*-01-01", "name": "a"}, {"date": "2026-01-02", "name": "b"}, {"date": "*-01-01", "name": "c"}`), `schedule "s": holidays[2].date "*-01-01": duplicate of holidays[0]`},
	{"no name", holidayDoc(`{"date": "2026-12-25"}`), `schedule "s": holidays[0].name: required`},
	{"long name", holidayDoc(`{"date": "2026-12-25", "name": "` + strings.Repeat("x", 129) + `"}`), `schedule "s": holidays[0].name: longer than 128 bytes`},
	{"control in name", holidayDoc(`{"date": "2026-12-25", "name": "a\nb"}`), `schedule "s": holidays[0].name: "a\nb": control characters`},
	{"unknown holiday field", holidayDoc(`{"date": "2026-12-25", "name": "x", "observed": "2026-12-24"}`), `schedule "s": holidays[0]: unknown field "observed"`},
	{"bad special hours", holidayDoc(`{"date": "2026-12-24", "name": "x", "hours": ["9-12"]}`), `schedule "s": holidays[0].hours[0] "9-12": want HH:MM-HH:MM`},
	{"overlapping special hours", holidayDoc(`{"date": "2026-12-24", "name": "x", "hours": ["09:00-12:00", "10:00-11:00"]}`), `schedule "s": holidays[0].hours[1] "10:00-11:00" overlaps holidays[0].hours[0]`},
	{"empty special hours", holidayDoc(`{"date": "2026-12-24", "name": "x", "hours": []}`), `schedule "s": holidays[0].hours: empty`},
	{"holiday not an object", holidayDoc(`"2026-12-25"`), `schedule "s": holidays[0]: want a JSON object, got a string`},
	{"too many holidays", manyHolidays(MaxHolidays + 1), `schedule "s": holidays: more than 1000 entries`},

	{"name with space", `{"bad name": {"time_zone": "UTC"}}`, `schedule "bad name": name must match`},
	{"empty name", `{"": {"time_zone": "UTC"}}`, `schedule "": name must match`},
	{"long name", `{"` + strings.Repeat("a", 65) + `": {"time_zone": "UTC"}}`, `name must match`},
	{"non-ASCII name", `{"café": {"time_zone": "UTC"}}`, `schedule "café": name must match`},
	{"duplicate schedule", `{"s": {"time_zone": "UTC"}, "s": {"time_zone": "UTC"}}`, `duplicate schedule "s"`},
	{"too many schedules", manySchedules(MaxSchedules + 1), `more than 1000 schedules`},
	{"too large", `{"s": {"time_zone": "UTC"}}` + strings.Repeat(" ", MaxDocumentBytes), `larger than 1048576 bytes`},
	{"trailing data", `{} {}`, `unexpected data after the schedules object`},
	{"array document", `[]`, `want a JSON object, got an array`},
	{"null document", `null`, `want a JSON object, got null`},
	{"empty document", ``, `unexpected EOF`},
	{"syntax error", `{"s": {"time_zone": "UTC",}}`, `schedule "s": invalid character`},
}

func TestParseSetRejects(t *testing.T) {
	for _, tc := range rejected {
		t.Run(tc.name, func(t *testing.T) {
			set, err := ParseSet([]byte(tc.doc))
			if err == nil {
				t.Fatalf("accepted, want error containing %q", tc.want)
			}
			if set != nil {
				t.Errorf("returned a Set with the error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// The spec gives this message verbatim; operators may grep for it.
func TestParseSetErrorFormat(t *testing.T) {
	_, err := ParseSet([]byte(`{"support": {"time_zone": "America/New_York", "weekly": {"tue": ["09:00-12:30", "13:30-1700"]}}}`))
	want := `schedule "support": weekly.tue[1] "13:30-1700": want HH:MM-HH:MM`
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %s", err, want)
	}
}

// Hostile text must not be echoed back at full length.
func TestParseSetErrorIsShort(t *testing.T) {
	long := strings.Repeat("x", 100_000)
	for _, d := range []string{
		doc(`{"` + long + `": 1}`),
		doc(`{"time_zone": "` + long + `"}`),
		weeklyDoc(`"mon": ["` + long + `"]`),
		weeklyDoc(`"` + long + `": []`),
	} {
		_, err := ParseSet([]byte(d))
		if err == nil || len(err.Error()) > 300 {
			t.Errorf("error of %d bytes: %.200v", len(fmt.Sprint(err)), err)
		}
	}
}

func TestParseSetAccepts(t *testing.T) {
	set, err := ParseSet([]byte(`{
	  "b": {"time_zone": "UTC", "weekly": {"mon": ["09:00-12:00", "12:00-17:00"], "tue": [], "fri": ["22:00-00:00"]},
	        "holidays": [{"date": "*-02-29", "name": "Leap day"}, {"date": "2026-02-28", "name": "Fixed"},
	                     {"date": "*-02-28", "name": "Yearly"}]},
	  "a-1_Z": {"time_zone": "Asia/Kolkata"},
	  "c": {"time_zone": "Europe/London", "weekly": {"sun": ["00:00-24:00"]}}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := set.Names(), []string{"a-1_Z", "b", "c"}; !slices.Equal(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
	set.Names()[0] = "mutated"
	if set.Names()[0] != "a-1_Z" {
		t.Errorf("Names() shares its slice with the Set")
	}
	if _, ok := set.Get("missing"); ok {
		t.Errorf("Get(missing) found something")
	}
	b, _ := set.Get("b")
	if b.Name() != "b" || b.Location().String() != "UTC" {
		t.Errorf("b: name %q zone %v", b.Name(), b.Location())
	}
	for _, tc := range []struct {
		at     time.Time
		open   bool
		reason string
	}{
		{utc(2026, 2, 2, 12, 0), true, "weekly hours"}, // touching ranges
		{utc(2026, 2, 6, 23, 59), true, "weekly hours"},
		{utc(2026, 2, 7, 0, 0), false, "closed"}, // 22:00-00:00 ends at midnight
		{utc(2028, 2, 29, 12, 0), false, "holiday: Leap day"},
		{utc(2026, 2, 28, 12, 0), false, "holiday: Fixed"}, // fixed beats yearly
		{utc(2027, 2, 28, 12, 0), false, "holiday: Yearly"},
	} {
		st := b.State(tc.at)
		if st.Open != tc.open || st.Reason != tc.reason {
			t.Errorf("State(%v) = %v %q, want %v %q", tc.at, st.Open, st.Reason, tc.open, tc.reason)
		}
	}
	if kol, _ := set.Get("a-1_Z"); kol.Location().String() != "Asia/Kolkata" {
		t.Errorf("zone %v", kol.Location())
	}

	empty, err := ParseSet([]byte(" {} \n"))
	if err != nil || len(empty.Names()) != 0 {
		t.Errorf("empty document: %v, %v", empty, err)
	}
}

func TestLimitsAreInclusive(t *testing.T) {
	for name, d := range map[string]string{
		"ranges":    weeklyDoc(`"mon": ` + hourRanges(MaxRangesPerDay)),
		"holidays":  manyHolidays(MaxHolidays),
		"schedules": manySchedules(MaxSchedules),
	} {
		if _, err := ParseSet([]byte(d)); err != nil {
			t.Errorf("%s at the limit: %v", name, err)
		}
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	bad := filepath.Join(dir, "bad.json")
	big := filepath.Join(dir, "big.json")
	os.WriteFile(good, []byte(testDoc), 0o600)
	os.WriteFile(bad, []byte(doc(`{"time_zone": "Local"}`)), 0o600)
	os.WriteFile(big, []byte(strings.Repeat(" ", MaxDocumentBytes+10)), 0o600)

	set, err := LoadFile(good)
	if err != nil || len(set.Names()) == 0 {
		t.Fatalf("LoadFile(good) = %v, %v", set, err)
	}
	for _, path := range []string{bad, big, filepath.Join(dir, "missing.json")} {
		if _, err := LoadFile(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("LoadFile(%s) error %v, want one naming the path", path, err)
		}
	}
}

func FuzzParseSet(f *testing.F) {
	f.Add([]byte(testDoc))
	f.Add([]byte(`{}`))
	for _, tc := range rejected {
		if len(tc.doc) < 4096 {
			f.Add([]byte(tc.doc))
		}
	}
	instants := []time.Time{
		utc(2026, 3, 8, 7, 0), utc(2026, 11, 1, 6, 30), utc(2026, 12, 25, 5, 0),
		time.Time{}, time.Unix(1<<40, 0), time.Unix(-1<<40, 0),
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := ParseSet(data)
		if err != nil {
			if set != nil {
				t.Fatal("Set returned with an error")
			}
			return
		}
		for _, name := range set.Names() {
			sc, ok := set.Get(name)
			if !ok {
				t.Fatalf("Names lists %q but Get misses it", name)
			}
			for _, at := range instants {
				open := sc.IsOpen(at)
				st := sc.State(at)
				if st.Open != open {
					t.Fatalf("%s at %v: State.Open %v, IsOpen %v", name, at, st.Open, open)
				}
				if !st.Until.IsZero() && (!st.Until.After(at) || sc.IsOpen(st.Until) == open) {
					t.Fatalf("%s at %v: Until %v is not a change", name, at, st.Until)
				}
			}
		}
	})
}
