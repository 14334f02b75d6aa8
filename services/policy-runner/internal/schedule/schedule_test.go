package schedule

import (
	"testing"
	"time"
)

// testDoc is shared by the behaviour tests. Dates used below (2026): Feb 2 is
// a Monday; Feb 14/15 and 21/22 are Sat/Sun; Dec 24 is a Thursday; Dec 25 and
// Jan 1 2027 are Fridays; Jul 4 is a Saturday in 2026, a Sunday in 2027 and a
// Tuesday in 2028. DST 2026: New York Mar 8 (02:00→03:00) and Nov 1
// (02:00→01:00); London Mar 29 (01:00→02:00) and Oct 25 (02:00→01:00).
const testDoc = `{
  "support": {
    "time_zone": "America/New_York",
    "weekly": {"mon": ["09:00-17:00"], "tue": ["09:00-12:30", "13:30-17:00"], "wed": ["09:00-17:00"],
               "thu": ["09:00-17:00"], "fri": ["09:00-17:00"], "sat": ["22:00-02:00"], "sun": ["20:00-01:00"]},
    "holidays": [
      {"date": "2026-12-25", "name": "Christmas"},
      {"date": "*-01-01", "name": "New Year"},
      {"date": "2026-12-24", "name": "Christmas Eve", "hours": ["09:00-12:00"]},
      {"date": "*-12-31", "name": "New Year's Eve", "hours": ["20:00-02:00"]},
      {"date": "2026-02-15", "name": "Sunday closure"},
      {"date": "2026-02-21", "name": "Saturday closure"},
      {"date": "*-07-04", "name": "Independence Day"},
      {"date": "2027-07-04", "name": "Picnic", "hours": ["10:00-14:00"]}
    ]
  },
  "london": {"time_zone": "Europe/London",
             "weekly": {"mon": ["09:00-17:00"], "sun": ["00:30-01:30", "09:00-17:00"]}},
  "ny_a": {"time_zone": "America/New_York", "weekly": {"sun": ["00:00-01:30", "02:30-04:00", "09:00-17:00"]}},
  "ny_b": {"time_zone": "America/New_York", "weekly": {"sun": ["01:30-03:00"]}},
  "ny_c": {"time_zone": "America/New_York", "weekly": {"sun": ["02:10-02:50"]}},
  "late": {"time_zone": "UTC", "weekly": {"fri": ["09:00-24:00"], "sat": ["00:00-10:00"]}},
  "always": {"time_zone": "UTC",
             "weekly": {"mon": ["00:00-24:00"], "tue": ["00:00-24:00"], "wed": ["00:00-24:00"], "thu": ["00:00-24:00"],
                        "fri": ["00:00-24:00"], "sat": ["00:00-24:00"], "sun": ["00:00-24:00"]},
             "holidays": [{"date": "2026-06-20", "name": "Inventory"}]},
  "never": {"time_zone": "UTC"}
}`

var (
	newYork = mustLoad("America/New_York")
	london  = mustLoad("Europe/London")
)

func mustLoad(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

func ny(y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, newYork)
}
func utc(y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, time.UTC)
}

func testSet(t testing.TB) *Set {
	t.Helper()
	set, err := ParseSet([]byte(testDoc))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func TestIsOpen(t *testing.T) {
	set := testSet(t)
	const weekly, closed = "weekly hours", "closed"
	for _, tc := range []struct {
		sched  string
		at     time.Time
		open   bool
		reason string
	}{
		// Each weekday of an ordinary week, and the half-open boundaries.
		{"support", ny(2026, 2, 2, 8, 59), false, closed},
		{"support", ny(2026, 2, 2, 9, 0), true, weekly},
		{"support", time.Date(2026, 2, 2, 16, 59, 59, 999, newYork), true, weekly},
		{"support", ny(2026, 2, 2, 17, 0), false, closed},
		{"support", ny(2026, 2, 3, 12, 29), true, weekly}, // Tuesday split shift
		{"support", ny(2026, 2, 3, 12, 30), false, closed},
		{"support", ny(2026, 2, 3, 13, 29), false, closed},
		{"support", ny(2026, 2, 3, 13, 30), true, weekly},
		{"support", ny(2026, 2, 4, 10, 0), true, weekly},
		{"support", ny(2026, 2, 5, 10, 0), true, weekly},
		{"support", ny(2026, 2, 6, 10, 0), true, weekly},
		{"support", ny(2026, 2, 7, 10, 0), false, closed}, // Saturday daytime
		{"support", ny(2026, 2, 7, 21, 59), false, closed},
		{"support", ny(2026, 2, 7, 22, 0), true, weekly},
		{"support", ny(2026, 2, 8, 1, 59), true, weekly}, // Saturday's range, on Sunday
		{"support", ny(2026, 2, 8, 2, 0), false, closed},
		{"support", ny(2026, 2, 8, 20, 0), true, weekly},
		{"support", ny(2026, 2, 9, 0, 30), true, weekly}, // Sunday's range wraps into Monday
		{"support", ny(2026, 2, 9, 1, 0), false, closed},

		// Holidays. A closed holiday replaces its own day's hours but not the
		// previous day's tail.
		{"support", ny(2026, 12, 25, 10, 0), false, "holiday: Christmas"},
		{"support", ny(2026, 1, 1, 10, 0), false, "holiday: New Year"}, // yearly
		{"support", ny(2027, 1, 1, 10, 0), false, "holiday: New Year"},
		{"support", ny(2026, 12, 24, 9, 0), true, "special hours: Christmas Eve"},
		{"support", ny(2026, 12, 24, 12, 0), false, "special hours: Christmas Eve"},
		{"support", ny(2026, 12, 24, 16, 0), false, "special hours: Christmas Eve"}, // weekly would be open
		{"support", ny(2026, 12, 31, 10, 0), false, "special hours: New Year's Eve"},
		{"support", ny(2026, 12, 31, 20, 0), true, "special hours: New Year's Eve"},
		{"support", ny(2027, 1, 1, 1, 59), true, "special hours: New Year's Eve"}, // tail into a closed holiday
		{"support", ny(2027, 1, 1, 2, 0), false, "holiday: New Year"},
		{"support", ny(2026, 2, 15, 1, 0), true, weekly}, // Saturday's tail into a Sunday holiday
		{"support", ny(2026, 2, 15, 21, 0), false, "holiday: Sunday closure"},
		{"support", ny(2026, 2, 16, 0, 30), false, closed}, // the holiday had no range to wrap
		{"support", ny(2026, 2, 21, 23, 0), false, "holiday: Saturday closure"},
		{"support", ny(2026, 2, 22, 1, 0), false, closed},
		{"support", ny(2026, 7, 4, 23, 0), false, "holiday: Independence Day"},
		{"support", ny(2027, 7, 4, 11, 0), true, "special hours: Picnic"}, // fixed date beats yearly
		{"support", ny(2028, 7, 4, 10, 0), false, "holiday: Independence Day"},

		// The same instants in two zones.
		{"support", utc(2026, 2, 2, 18, 0), true, weekly}, // 13:00 in New York
		{"london", utc(2026, 2, 2, 18, 0), false, closed},
		{"support", utc(2026, 2, 2, 13, 0), false, closed}, // 08:00 in New York
		{"london", utc(2026, 2, 2, 13, 0), true, weekly},

		// New York spring forward, Mar 8: 02:00 EST becomes 03:00 EDT at 07:00Z.
		{"ny_a", utc(2026, 3, 8, 6, 29), true, weekly}, // 01:29 EST
		{"ny_a", utc(2026, 3, 8, 6, 30), false, closed},
		{"ny_a", utc(2026, 3, 8, 6, 59), false, closed},
		{"ny_a", utc(2026, 3, 8, 7, 0), true, weekly}, // 02:30 never happens: open at the jump
		{"ny_a", utc(2026, 3, 8, 7, 59), true, weekly},
		{"ny_a", utc(2026, 3, 8, 8, 0), false, closed}, // 04:00 EDT
		{"ny_a", utc(2026, 3, 8, 12, 59), false, closed},
		{"ny_a", utc(2026, 3, 8, 13, 0), true, weekly},  // 09:00 EDT
		{"ny_a", utc(2026, 3, 8, 21, 0), false, closed}, // 17:00 EDT
		{"ny_c", utc(2026, 3, 8, 6, 59), false, closed}, // wholly skipped range
		{"ny_c", utc(2026, 3, 8, 7, 0), false, closed},
		{"ny_c", utc(2026, 3, 15, 6, 10), true, weekly}, // and normal a week later

		// New York fall back, Nov 1: 02:00 EDT becomes 01:00 EST at 06:00Z;
		// 01:00-02:00 happens twice.
		{"ny_a", utc(2026, 11, 1, 5, 29), true, weekly}, // 01:29 EDT
		{"ny_a", utc(2026, 11, 1, 5, 30), false, closed},
		{"ny_a", utc(2026, 11, 1, 6, 15), false, closed}, // 01:15 EST: a boundary is crossed once
		{"ny_a", utc(2026, 11, 1, 7, 29), false, closed},
		{"ny_a", utc(2026, 11, 1, 7, 30), true, weekly}, // 02:30 EST
		{"ny_a", utc(2026, 11, 1, 13, 59), false, closed},
		{"ny_a", utc(2026, 11, 1, 14, 0), true, weekly}, // 09:00 EST
		{"ny_a", utc(2026, 11, 1, 22, 0), false, closed},
		{"ny_b", utc(2026, 11, 1, 5, 29), false, closed},
		{"ny_b", utc(2026, 11, 1, 5, 30), true, weekly}, // 01:30 EDT
		{"ny_b", utc(2026, 11, 1, 6, 0), true, weekly},  // 01:00 EST, repeated hour stays open
		{"ny_b", utc(2026, 11, 1, 7, 59), true, weekly},
		{"ny_b", utc(2026, 11, 1, 8, 0), false, closed}, // 03:00 EST

		// London spring forward, Mar 29: 01:00 GMT becomes 02:00 BST at 01:00Z.
		{"london", utc(2026, 3, 29, 0, 30), true, weekly},
		{"london", utc(2026, 3, 29, 0, 59), true, weekly},
		{"london", utc(2026, 3, 29, 1, 0), false, closed}, // 01:30 never happens: closed at the jump
		{"london", utc(2026, 3, 29, 7, 59), false, closed},
		{"london", utc(2026, 3, 29, 8, 0), true, weekly}, // 09:00 BST
		{"london", utc(2026, 3, 29, 16, 0), false, closed},

		// London fall back, Oct 25: 02:00 BST becomes 01:00 GMT at 01:00Z.
		{"london", utc(2026, 10, 24, 23, 30), true, weekly}, // 00:30 BST
		{"london", utc(2026, 10, 25, 0, 29), true, weekly},
		{"london", utc(2026, 10, 25, 0, 30), false, closed}, // 01:30 BST
		{"london", utc(2026, 10, 25, 1, 15), false, closed}, // 01:15 GMT, repeated
		{"london", utc(2026, 10, 25, 8, 59), false, closed},
		{"london", utc(2026, 10, 25, 9, 0), true, weekly}, // 09:00 GMT

		{"always", utc(2026, 6, 19, 23, 59), true, weekly},
		{"always", utc(2026, 6, 20, 0, 0), false, "holiday: Inventory"},
		{"never", utc(2026, 6, 20, 12, 0), false, closed},
	} {
		sc, ok := set.Get(tc.sched)
		if !ok {
			t.Fatalf("no schedule %q", tc.sched)
		}
		if got := sc.IsOpen(tc.at); got != tc.open {
			t.Errorf("%s.IsOpen(%v) = %v, want %v", tc.sched, tc.at.In(sc.Location()), got, tc.open)
		}
		st := sc.State(tc.at)
		if st.Open != tc.open || st.Reason != tc.reason {
			t.Errorf("%s.State(%v) = %v %q, want %v %q", tc.sched, tc.at.In(sc.Location()), st.Open, st.Reason, tc.open, tc.reason)
		}
	}
}

func TestUntil(t *testing.T) {
	set := testSet(t)
	for _, tc := range []struct {
		sched     string
		at, until time.Time
	}{
		{"support", ny(2026, 2, 2, 10, 0), ny(2026, 2, 2, 17, 0)},
		{"support", ny(2026, 2, 2, 8, 0), ny(2026, 2, 2, 9, 0)},
		{"support", ny(2026, 2, 3, 12, 30), ny(2026, 2, 3, 13, 30)},
		{"support", ny(2026, 2, 6, 17, 0), ny(2026, 2, 7, 22, 0)},
		{"support", ny(2026, 2, 7, 23, 0), ny(2026, 2, 8, 2, 0)},
		{"support", ny(2026, 2, 8, 20, 0), ny(2026, 2, 9, 1, 0)},
		{"support", ny(2026, 2, 9, 1, 0), ny(2026, 2, 9, 9, 0)},
		{"support", ny(2026, 12, 24, 11, 0), ny(2026, 12, 24, 12, 0)},
		{"support", ny(2026, 12, 24, 13, 0), ny(2026, 12, 26, 22, 0)}, // skips Christmas
		{"support", ny(2026, 12, 31, 10, 0), ny(2026, 12, 31, 20, 0)},
		{"support", ny(2027, 1, 1, 1, 0), ny(2027, 1, 1, 2, 0)},
		{"support", ny(2027, 1, 1, 3, 0), ny(2027, 1, 2, 22, 0)},
		{"late", utc(2026, 2, 6, 10, 0), utc(2026, 2, 7, 10, 0)}, // midnight is not a change
		{"ny_a", utc(2026, 3, 8, 6, 30), utc(2026, 3, 8, 7, 0)},  // opens at the jump
		{"ny_c", utc(2026, 3, 8, 6, 0), utc(2026, 3, 15, 6, 10)}, // skipped range never opens
		{"ny_a", utc(2026, 11, 1, 5, 0), utc(2026, 11, 1, 5, 30)},
		{"ny_a", utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 7, 30)}, // no reopening in the repeated hour
		{"ny_b", utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 8, 0)},
		{"ny_b", utc(2026, 11, 1, 6, 30), utc(2026, 11, 1, 8, 0)}, // from inside the repeated hour
		{"london", utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 0)},
		{"london", utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 9, 0)},
		{"always", utc(2026, 6, 1, 0, 0), time.Time{}},            // change is 19 days away
		{"always", utc(2026, 6, 6, 0, 0), utc(2026, 6, 20, 0, 0)}, // exactly the horizon
		{"always", utc(2026, 6, 10, 0, 0), utc(2026, 6, 20, 0, 0)},
		{"always", utc(2026, 6, 20, 5, 0), utc(2026, 6, 21, 0, 0)},
		{"never", utc(2026, 6, 1, 0, 0), time.Time{}},
	} {
		sc, _ := set.Get(tc.sched)
		got := sc.State(tc.at).Until
		if !got.Equal(tc.until) {
			t.Errorf("%s.State(%v).Until = %v, want %v", tc.sched, tc.at.In(sc.Location()), got, tc.until.In(sc.Location()))
		}
		if !got.IsZero() && got.Location() != sc.Location() {
			t.Errorf("%s: Until in %v, want the schedule's zone", tc.sched, got.Location())
		}
	}
}

// TestUntilMatchesBruteForce checks Until against a minute-by-minute walk.
// Every zone in the test document changes offset on whole minutes, so
// IsOpen can only change on a whole UTC minute and the walk is exact.
func TestUntilMatchesBruteForce(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	set := testSet(t)
	starts := []time.Time{
		utc(2026, 2, 1, 0, 0), utc(2026, 3, 1, 3, 7), utc(2026, 3, 7, 22, 0), utc(2026, 3, 28, 23, 45),
		utc(2026, 10, 20, 5, 0), utc(2026, 10, 31, 12, 0), utc(2026, 11, 1, 6, 10), utc(2026, 12, 23, 0, 0),
		utc(2026, 12, 30, 17, 0), utc(2026, 6, 10, 0, 0),
	}
	for _, name := range set.Names() {
		sc, _ := set.Get(name)
		for _, start := range starts {
			st := sc.State(start)
			want := time.Time{}
			for m := start.Truncate(time.Minute).Add(time.Minute); !m.After(start.Add(Horizon)); m = m.Add(time.Minute) {
				if sc.IsOpen(m) != st.Open {
					want = m
					break
				}
			}
			if !st.Until.Equal(want) {
				t.Errorf("%s from %v: Until = %v, walk says %v", name, start, st.Until, want)
			}
		}
	}
}

func TestIsOpenDoesNotAllocate(t *testing.T) {
	sc, _ := testSet(t).Get("support")
	for _, at := range []time.Time{ny(2026, 2, 3, 13, 0), ny(2027, 1, 1, 1, 0), utc(2026, 11, 1, 6, 30)} {
		if n := testing.AllocsPerRun(100, func() { sc.IsOpen(at) }); n != 0 {
			t.Errorf("IsOpen(%v) allocates %v times", at, n)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	sc, _ := testSet(t).Get("support")
	done := make(chan bool)
	for g := 0; g < 8; g++ {
		go func() {
			at := ny(2026, 12, 20, 0, 0)
			for i := 0; i < 2000; i++ {
				sc.IsOpen(at.Add(time.Duration(i) * 7 * time.Minute))
			}
			done <- sc.State(at).Open
		}()
	}
	for g := 0; g < 8; g++ {
		<-done
	}
}

func BenchmarkIsOpen(b *testing.B) {
	sc, _ := testSet(b).Get("support")
	// A spread of instants across a week, a holiday and a tail, so the
	// benchmark does not measure one lucky branch.
	var ats [64]time.Time
	for i := range ats {
		ats[i] = ny(2026, 12, 22, 0, 0).Add(time.Duration(i) * 163 * time.Minute)
	}
	b.ReportAllocs()
	open := 0
	for i := 0; b.Loop(); i++ {
		if sc.IsOpen(ats[i%len(ats)]) {
			open++
		}
	}
	_ = open
}
