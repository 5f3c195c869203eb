package sip_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxd/pbxd/pbx"
	"github.com/pbxd/pbxd/pbx/pbxtest"
	"github.com/pbxd/pbxd/sip"
	"github.com/pbxd/pbxd/sip/sipptest"
)

// The conformance suite's phones register from the contact URIs it
// chooses (sip:100@192.0.2.10:5062;transport=udp...), not from sipp's own
// address: these scenarios are register.xml and unregister.xml with the
// Contact taken from -key contact.
const (
	registerScenario = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="register-contact">
  <send retrans="500">
    <![CDATA[

      REGISTER sip:[sipdomain] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      Max-Forwards: 70
      From: <sip:[field0]@[sipdomain]>;tag=[pid]-[call_number]
      To: <sip:[field0]@[sipdomain]>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <[contact]>
      Expires: [expires]
      User-Agent: pbxd-conformance
      Content-Length: 0

    ]]>
  </send>
  <recv response="401" auth="true"/>
  <send retrans="500">
    <![CDATA[

      REGISTER sip:[sipdomain] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      Max-Forwards: 70
      From: <sip:[field0]@[sipdomain]>;tag=[pid]-[call_number]
      To: <sip:[field0]@[sipdomain]>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      Contact: <[contact]>
      [authentication username="[field0]" password="[field1]"]
      Expires: [expires]
      User-Agent: pbxd-conformance
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
`
)

// TestConformance runs the pbx.Backend conformance suite against the
// built-in registrar, registering phones with real REGISTERs sent by sipp.
func TestConformance(t *testing.T) {
	t.Parallel()
	scenario := filepath.Join(t.TempDir(), "register-contact.xml")
	if err := os.WriteFile(scenario, []byte(registerScenario), 0o600); err != nil {
		t.Fatal(err)
	}
	pbxtest.Exercise(t, func(t *testing.T) pbxtest.Harness {
		r := startRegistrar(t)
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

// startRegistrar runs a registrar on loopback ephemeral ports with an
// in-memory binding store until the test ends. Its events are left to the
// suite.
func startRegistrar(t *testing.T) *sip.Registrar {
	t.Helper()
	cfg := sip.DefaultConfig()
	cfg.UDPListen, cfg.TCPListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Secret = []byte("conformance-nonce-secret-0123456")
	r, err := sip.New(cfg, &sip.MemoryStore{}, sip.SystemClock{}, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for !r.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("registrar not running")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return r
}
