package asterisk

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxd/pbxd/pbx"
	"github.com/pbxd/pbxd/sip/sipptest"
)

// exitStatus is a finished command's exit status (-1 if it did not exit).
func exitStatus(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err == nil {
		return 0
	}
	return -1
}

// TestInboundNumberRealAsterisk makes a real call from a trunk to a number
// routed to a line, through an Asterisk set up from configs/asterisk with
// an inbound trunk endpoint (context from-trunk) identified by the address
// PBXD_TEST_TRUNK_IP (e.g. 127.0.0.2, see pjsip.conf's [trunk-in]):
//
//	PBXD_TEST_ARI_URL=http://127.0.0.1:8088/ari PBXD_TEST_ARI_USERNAME=pbxd \
//	PBXD_TEST_ARI_PASSWORD=... PBXD_TEST_SIP_ADDR=127.0.0.1:5060 \
//	PBXD_TEST_TRUNK_IP=127.0.0.2 go test ./pbx/asterisk -run TestInboundNumberRealAsterisk -v
//
// A sipp phone registers as the line and answers; the trunk's call to the
// number is answered by it, and once the route is removed the same call
// gets 404. The object prefix is "pbxd-", the one the shipped dial plan
// reads (PBXD_DID_): use a test Asterisk. Skipped without these variables.
func TestInboundNumberRealAsterisk(t *testing.T) {
	url, sipAddr, trunkIP := os.Getenv("PBXD_TEST_ARI_URL"), os.Getenv("PBXD_TEST_SIP_ADDR"), os.Getenv("PBXD_TEST_TRUNK_IP")
	if url == "" || sipAddr == "" || trunkIP == "" {
		t.Skip("PBXD_TEST_ARI_URL, PBXD_TEST_SIP_ADDR and PBXD_TEST_TRUNK_IP not all set: no real Asterisk and trunk to call through")
	}
	var r [4]byte
	_, _ = rand.Read(r[:])
	tag := hex.EncodeToString(r[:])
	b, err := New(Config{
		Nodes: []NodeConfig{{Name: "real", URL: url, Username: os.Getenv("PBXD_TEST_ARI_USERNAME"),
			Password: os.Getenv("PBXD_TEST_ARI_PASSWORD"), App: "pbxd-inbound-" + tag}},
		Transport: os.Getenv("PBXD_TEST_ARI_TRANSPORT"),
	}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() { cancel(); t.Logf("backend stopped: %v", <-done) }()
	for deadline := time.Now().Add(20 * time.Second); !b.Connected(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("not connected to Asterisk")
		}
	}
	line := pbx.LineConfig{ID: fmt.Sprintf("00000000-0000-4000-8000-0000%s", tag), Domain: "t" + tag + ".example.net", Username: "100",
		Extension: "100", Context: "pkg-world", CallerID: "Inbound test", Password: "pw-" + tag + "-long-enough", MaxContacts: 1}
	if err := b.Apply(ctx, line); err != nil {
		t.Fatal(err)
	}
	number := "+331" + fmt.Sprint(40000000 + int(r[0])<<16 | int(r[1])<<8 | int(r[2]))[:8]
	defer func() {
		cctx := context.Background()
		_ = b.SetRoute(cctx, "", number, "")
		_ = b.Remove(cctx, line.ID)
	}()

	phonePort := sipptest.FreePort(t)
	sipptest.Run(t, sipAddr, "u1", sipptest.Scenario("register-contact.xml"), line.Domain, line.Username, line.Password, 0,
		"-key", "contact", fmt.Sprintf("sip:100@127.0.0.1:%d", phonePort), "-key", "expires", "120").MustPass(t, "the line registers")
	if err := b.SetRoute(ctx, "", number, b.RouteTarget(line)); err != nil {
		t.Fatal(err)
	}
	if held, err := b.HeldRoute(ctx, "", number); err != nil || held != line.Username+"@"+line.Domain {
		t.Fatalf("route read back: %q, %v", held, err)
	}
	answered := make(chan sipptest.Result, 1)
	go func() {
		// answer.xml stops sipp (exit status 97) once its call is over, so
		// the qualify OPTIONS it answers meanwhile do not count against -m.
		answered <- sipptest.Run(t, sipAddr, "u1", sipptest.Scenario("answer.xml"), line.Domain, "", "", phonePort, "-m", "100")
	}()
	time.Sleep(300 * time.Millisecond) // the phone listens
	sipptest.Run(t, sipAddr, "u1", sipptest.Scenario("inbound-call.xml"), line.Domain, "", "", 0,
		"-s", number, "-i", trunkIP).MustPass(t, "the trunk's call to "+number+" is answered")
	if r := <-answered; exitStatus(r.Err) != 97 {
		t.Fatalf("the line's phone did not answer the call: %v\n%s\n%s", r.Err, sipptest.Tail(r.Out, 2000), sipptest.Tail(r.Messages, 3000))
	}

	if err := b.SetRoute(ctx, "", number, ""); err != nil {
		t.Fatal(err)
	}
	if held, err := b.HeldRoute(ctx, "", number); err != nil || held != "" {
		t.Fatalf("route after removal: %q, %v", held, err)
	}
	sipptest.Run(t, sipAddr, "u1", sipptest.Scenario("inbound-refused.xml"), line.Domain, "", "", 0,
		"-s", number, "-i", trunkIP).MustPass(t, "the call to the unrouted "+number+" is refused with 404")
}
