package sip

import (
	"testing"

	"github.com/pbxd/pbxd/pbx"
	"github.com/pbxd/pbxd/pbx/pbxtest"
	"github.com/pbxd/pbxd/sip/sipptest"
)

// TestConformance runs the pbx.Backend conformance suite against the
// built-in registrar, registering phones with real REGISTERs sent by sipp.
// The suite names the contact address, so the scenario takes it from
// -key contact rather than from sipp's own port.
func TestConformance(t *testing.T) {
	t.Parallel()
	scenario := sipptest.Scenario("register-contact.xml")
	pbxtest.Exercise(t, func(t *testing.T) pbxtest.Harness {
		r := start(t, nil, nil, false) // the suite reads the events
		send := func(t *testing.T, line pbx.LineConfig, contact, expires string) {
			t.Helper()
			sipptest.Run(t, r.Addrs().UDP, "u1", scenario, line.Domain, line.Username, line.Password, 0,
				"-key", "contact", contact, "-key", "expires", expires).MustPass(t, "REGISTER "+contact+" expires "+expires)
		}
		return pbxtest.Harness{
			Backend:    r,
			Register:   func(t *testing.T, line pbx.LineConfig, contact string) { send(t, line, contact, "3600") },
			Unregister: func(t *testing.T, line pbx.LineConfig, contact string) { send(t, line, contact, "0") },
		}
	})
}
