package asterisk

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxd/pbxd/pbx"
	"github.com/pbxd/pbxd/pbx/pbxtest"
	"github.com/pbxd/pbxd/sip/sipptest"
)

// TestConformanceRealAsterisk runs the conformance suite against the
// Asterisk whose ARI is given in the environment (configured from
// configs/asterisk; see its README):
//
//	PBXD_TEST_ARI_URL=http://127.0.0.1:8088/ari PBXD_TEST_ARI_USERNAME=pbxd \
//	PBXD_TEST_ARI_PASSWORD=... PBXD_TEST_SIP_ADDR=127.0.0.1:5060 \
//	  go test ./pbx/asterisk -run TestConformanceRealAsterisk -v
//
// With PBXD_TEST_SIP_ADDR (Asterisk's UDP transport) phones register with
// real REGISTERs sent by sipp; without it the registration checks are
// skipped. Each subtest gets its own object prefix and Stasis application,
// so it sees only its own lines, and removes them when it ends. Without
// PBXD_TEST_ARI_URL the test is skipped: CI runs the suite on aritest.
// The Resyncer check restarts Asterisk with the shell command given in
// PBXD_TEST_ASTERISK_RESTART (e.g. "asterisk -rx 'core restart now'");
// without it that check is skipped.
func TestConformanceRealAsterisk(t *testing.T) {
	url := os.Getenv("PBXD_TEST_ARI_URL")
	if url == "" {
		t.Skip("PBXD_TEST_ARI_URL not set: no real Asterisk to test")
	}
	sipAddr := os.Getenv("PBXD_TEST_SIP_ADDR")
	restart := os.Getenv("PBXD_TEST_ASTERISK_RESTART")
	scenario := sipptest.Scenario("register-contact.xml")
	pbxtest.Exercise(t, func(t *testing.T) pbxtest.Harness {
		var r [4]byte
		_, _ = rand.Read(r[:])
		tag := hex.EncodeToString(r[:])
		cfg := Config{
			Nodes: []NodeConfig{{Name: "real", URL: url, Username: os.Getenv("PBXD_TEST_ARI_USERNAME"),
				Password: os.Getenv("PBXD_TEST_ARI_PASSWORD"), App: "pbxtest-" + tag}},
			ObjectPrefix: "pt" + tag + "-",
			Transport:    os.Getenv("PBXD_TEST_ARI_TRANSPORT"), // default: Asterisk picks
		}
		b, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- b.Run(ctx) }()
		t.Cleanup(func() {
			cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer ccancel()
			if lines, err := b.List(cctx); err == nil {
				for _, l := range lines {
					if err := b.Remove(cctx, l.ID); err != nil {
						t.Errorf("cleanup: %v", err)
					}
				}
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("backend stopped with %v", err)
			}
		})
		h := pbxtest.Harness{Backend: b, Timeout: time.Minute} // generous: a real Asterisk on a loaded machine, restarts included
		if restart != "" {
			h.Restart = func(t *testing.T) {
				t.Helper()
				if out, err := exec.Command("sh", "-c", restart).CombinedOutput(); err != nil {
					t.Fatalf("restart Asterisk with %q: %v\n%s", restart, err, out)
				}
			}
		}
		if sipAddr != "" {
			send := func(t *testing.T, line pbx.LineConfig, contact, expires string) {
				t.Helper()
				sipptest.Run(t, sipAddr, "u1", scenario, line.Domain, line.Username, line.Password, 0,
					"-key", "contact", contact, "-key", "expires", expires).MustPass(t, "REGISTER "+contact+" expires "+expires)
			}
			h.Register = func(t *testing.T, line pbx.LineConfig, contact string) { send(t, line, contact, "3600") }
			h.Unregister = func(t *testing.T, line pbx.LineConfig, contact string) { send(t, line, contact, "0") }
		}
		return h
	})
}
