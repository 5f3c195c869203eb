package pbx

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestContactJSON(t *testing.T) {
	b, err := json.Marshal([]Contact{{URI: "sip:a@x"}, {URI: "sip:b@x", Expires: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Status: ContactReachable}})
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	if strings.Contains(got, "0001-01-01") || strings.Count(got, `"expires"`) != 1 || !strings.Contains(got, `"expires":"2026-01-02T03:04:05Z"`) ||
		!strings.Contains(got, `"status":"reachable"`) {
		t.Errorf("JSON = %s", got)
	}
	var back []Contact
	if err := json.Unmarshal(b, &back); err != nil || !back[0].Expires.IsZero() || back[1].Expires.Year() != 2026 {
		t.Errorf("round trip = %+v, %v", back, err)
	}
}

func TestRegistered(t *testing.T) {
	for _, c := range []struct {
		statuses []string
		want     bool
	}{
		{nil, false},
		{[]string{""}, true},
		{[]string{ContactReachable}, true},
		{[]string{ContactNonQualified}, true},
		{[]string{ContactUnreachable}, false},
		{[]string{ContactUnknown}, false},
		{[]string{ContactUnreachable, ContactReachable}, true},
	} {
		var cs []Contact
		for _, s := range c.statuses {
			cs = append(cs, Contact{URI: "sip:x@y", Status: s})
		}
		if got := (RegistrationEvent{Contacts: cs}).Registered(); got != c.want {
			t.Errorf("Registered(%v) = %v, want %v", c.statuses, got, c.want)
		}
	}
}
