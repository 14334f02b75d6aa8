package soql

import (
	"errors"
	"slices"
	"testing"
)

func testStore() *Store {
	s := NewStore()
	s.Put("Account", Record{"Id": "001A", "Name": "Acme", "Phone": "+441234", "Tier__c": "VIP", "Employees": 50.0})
	s.Put("Account", Record{"Id": "001B", "Name": "Bolt's", "Phone": "+449999", "Tier__c": "Gold", "Employees": 5.0})
	s.Put("Account", Record{"Id": "001C", "Name": "100% Co_op", "Phone": nil, "Tier__c": "Standard", "Employees": 500.0})
	return s
}

func ids(rows []Record) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r["Id"].(string))
	}
	return out
}

func TestQuery(t *testing.T) {
	s := testStore()
	for _, tc := range []struct {
		q    string
		want []string
		code string
	}{
		{q: "SELECT Id FROM Account", want: []string{"001A", "001B", "001C"}},
		{q: "select id from account where phone = '+441234'", want: []string{"001A"}},
		{q: "SELECT Id FROM Account WHERE Name = 'ACME'", want: []string{"001A"}},
		{q: `SELECT Id FROM Account WHERE Name = 'Bolt\'s'`, want: []string{"001B"}},
		{q: `SELECT Id FROM Account WHERE Phone = '\' OR Name LIKE \'%'`, want: nil},
		{q: `SELECT Id FROM Account WHERE Phone = '' OR Name LIKE '%'`, want: []string{"001A", "001B", "001C"}},
		{q: "SELECT Id FROM Account WHERE Name LIKE 'a%'", want: []string{"001A"}},
		{q: "SELECT Id FROM Account WHERE Name LIKE '_olt%'", want: []string{"001B"}},
		{q: `SELECT Id FROM Account WHERE Name LIKE '100\% Co\_op'`, want: []string{"001C"}},
		{q: `SELECT Id FROM Account WHERE Name LIKE '100\% Co\_o'`, want: nil},
		{q: "SELECT Id FROM Account WHERE Name NOT LIKE 'a%'", want: []string{"001B", "001C"}},
		{q: "SELECT Id FROM Account WHERE Tier__c IN ('VIP', 'Gold')", want: []string{"001A", "001B"}},
		{q: "SELECT Id FROM Account WHERE Tier__c NOT IN ('VIP')", want: []string{"001B", "001C"}},
		{q: "SELECT Id FROM Account WHERE Phone = null", want: []string{"001C"}},
		{q: "SELECT Id FROM Account WHERE Phone != null AND Employees > 10", want: []string{"001A"}},
		{q: "SELECT Id FROM Account WHERE NOT (Tier__c = 'VIP' OR Tier__c = 'Gold')", want: []string{"001C"}},
		{q: "SELECT Id FROM Account ORDER BY Employees DESC LIMIT 2", want: []string{"001C", "001A"}},
		{q: "SELECT Id FROM Account LIMIT 0", want: nil},
		{q: "SELECT Id FROM Account WHERE Phone = :phone", code: "MALFORMED_QUERY"},
		{q: "SELECT Id FROM Account WHERE Name = 'x' OR", code: "MALFORMED_QUERY"},
		{q: `SELECT Id FROM Account WHERE Name = 'a\qb'`, code: "MALFORMED_QUERY"},
		{q: "SELECT Id FROM Account WHERE Name = 'open", code: "MALFORMED_QUERY"},
		{q: "DELETE FROM Account", code: "MALFORMED_QUERY"},
		{q: "SELECT Id FROM Account; SELECT Id FROM Contact", code: "MALFORMED_QUERY"},
		{q: "SELECT Nope FROM Account", code: "INVALID_FIELD"},
		{q: "SELECT Id FROM Account WHERE Nope = 1", code: "INVALID_FIELD"},
		{q: "SELECT Id FROM Contact", code: "INVALID_TYPE"},
	} {
		_, rows, err := s.Query(tc.q)
		if tc.code != "" {
			var e *Error
			if !errors.As(err, &e) || e.Code != tc.code {
				t.Errorf("%s: err %v, want %s", tc.q, err, tc.code)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.q, err)
			continue
		}
		if got := ids(rows); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.q, got, tc.want)
		}
	}
}

func TestGetAndUpdate(t *testing.T) {
	s := testStore()
	if err := s.Update("account", "001A", map[string]any{"tier__c": "Gold"}); err != nil {
		t.Fatal(err)
	}
	typ, r, err := s.Get("ACCOUNT", "001A", []string{"TIER__C", "Name"})
	if err != nil || typ != "Account" || r["Tier__c"] != "Gold" || r["Name"] != "Acme" || len(r) != 2 {
		t.Fatalf("%s %v %v", typ, r, err)
	}
	for _, tc := range []struct {
		err  error
		code string
	}{
		{s.Update("Account", "001Z", map[string]any{"Name": "x"}), "NOT_FOUND"},
		{s.Update("Account", "001A", map[string]any{"Nope": "x"}), "INVALID_FIELD"},
		{s.Update("Account", "001A", map[string]any{"Id": "x"}), "INVALID_FIELD"},
		{func() error { _, _, err := s.Get("Account", "001A", []string{"Nope"}); return err }(), "INVALID_FIELD"},
		{func() error { _, _, err := s.Get("Lead", "001A", nil); return err }(), "NOT_FOUND"},
	} {
		var e *Error
		if !errors.As(tc.err, &e) || e.Code != tc.code {
			t.Errorf("err %v, want %s", tc.err, tc.code)
		}
	}
}
