package asterisk_test

import (
	"fmt"
	"log/slog"
	"net"
	"testing"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/pbxd/pbxd/sip/sipptest"
)

// asteriskLikeRegistrar answers REGISTER as Asterisk 22 does with
// configs/asterisk: a 401 MD5 challenge, then a 200 listing the binding
// with the expiry given (Asterisk grants 3599 for a requested 3600). It
// checks no credentials: it stands for Asterisk's answers, not its logic.
func asteriskLikeRegistrar(t *testing.T, expires int) string {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	ua, err := sipgo.NewUA(sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(quiet)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(quiet)))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	srv.OnRegister(func(req *sip.Request, tx sip.ServerTransaction) {
		if req.GetHeader("Authorization") == nil {
			res := sip.NewResponseFromRequest(req, 401, "Unauthorized", nil)
			res.AppendHeader(sip.NewHeader("WWW-Authenticate",
				`Digest realm="acme.voip.example.net",nonce="1795975664/19930a6f13850e7f3adfa927c5e77ce3",opaque="65cf8b1c266678e5",algorithm=MD5,qop="auth"`))
			_ = tx.Respond(res)
			return
		}
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		res.AppendHeader(sip.NewHeader("Contact", fmt.Sprintf("<%s>;expires=%d", req.Contact().Address.String(), expires)))
		_ = tx.Respond(res)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.ServeTCP(l) }()
	t.Cleanup(func() { _ = l.Close(); _ = ua.Close() })
	return l.Addr().String()
}

// The README's sipp registration example (sip/testdata/sipp/register.xml)
// passes against Asterisk's answer (expires=3599) as against the built-in
// registrar's (3600), and still checks the expiry.
func TestReadmeRegisterScenarioAgainstAsterisk(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		expires int
		pass    bool
	}{{3599, true}, {3600, true}, {60, false}} {
		addr := asteriskLikeRegistrar(t, c.expires)
		r := sipptest.Run(t, addr, "t1", sipptest.Scenario("register.xml"), "acme.voip.example.net", "100", "secret", 0)
		if pass := r.Err == nil; pass != c.pass {
			t.Errorf("expires=%d: scenario passed %v, want %v\n%s\n%s", c.expires, pass, c.pass, r.Out, r.Messages)
		}
	}
}
