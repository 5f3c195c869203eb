package sip

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pbxd/pbxd/pbx"
)

// TestBaresipRegisters registers Debian's baresip (libre 1.1.0, which fails
// on any SHA-256 challenge) against the registrar over UDP and TCP with the
// default digest algorithms. Like sipp, baresip is required: scripts/test
// installs it (baresip-core).
func TestBaresipRegisters(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("baresip")
	if err != nil {
		t.Fatal("baresip not installed (apt-get install baresip-core): the softphone interop test needs it")
	}
	for _, tr := range []string{"udp", "tcp"} {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			r := start(t, nil, nil, false)
			_ = r.Apply(context.Background(), lineCfg("L1", "100", dom, "secret-pw"))
			var seen []pbx.Contact // every contact registered, in order
			done := make(chan struct{})
			go func() {
				defer close(done)
				for ev := range r.Events() {
					seen = append(seen, ev.Contacts...)
					if len(ev.Contacts) == 0 && len(seen) > 0 {
						return // registered, then unregistered at exit
					}
				}
			}()
			target := r.Addrs().UDP
			if tr == "tcp" {
				target = r.Addrs().TCP
			}
			out := runBaresip(t, bin, dom, "100", "secret-pw", target, tr)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("no register/unregister events (contacts seen %+v):\n%s", seen, out)
			}
			if len(seen) == 0 || !strings.Contains(seen[0].UserAgent, "baresip") || !strings.HasPrefix(seen[0].Source, tr+":") {
				t.Fatalf("contacts %+v after baresip:\n%s", seen, out)
			}
			if !strings.Contains(out, "200 OK (pbxd) [1 binding]") || len(r.Contacts("L1")) != 0 {
				t.Fatalf("baresip did not register and unregister:\n%s", out)
			}
			t.Logf("baresip over %s:\n%s", tr, lastLines(out, 12))
		})
	}
}

// runBaresip runs baresip for a few seconds with one account registering
// through target and returns its output (with the SIP trace).
func runBaresip(t *testing.T, bin, domain, user, pw, target, transport string) string {
	t.Helper()
	dir := t.TempDir()
	config := strings.Join([]string{
		"poll_method epoll",
		"sip_listen 127.0.0.1:0",
		"module_path /usr/lib/baresip/modules",
		"module g711.so",
		"module_app account.so",
		"audio_player nil",
		"audio_source nil",
		"audio_alert nil",
		"net_interface 127.0.0.1",
		"",
	}, "\n")
	account := "<sip:" + user + "@" + domain + ";transport=" + transport + ">;auth_pass=" + pw +
		";outbound=\"sip:" + target + ";transport=" + transport + "\";regint=600\n"
	for name, body := range map[string]string{"config": config, "accounts": account} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-f", dir, "-s", "-t", "4")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("baresip: %v\n%s", err, out.String())
	}
	return out.String()
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(ls[max(0, len(ls)-n):], "\n")
}
