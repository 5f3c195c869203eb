package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pbxd/pbxd/internal/app/apptest"
)

func fetchConfig(t *testing.T, d *apptest.Daemon, file, user, pass string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", d.URL+"/provision/"+file, nil)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }() // read to its end below
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A phone registered by MAC fetches a config carrying its lines'
// credentials; unbinding a line or removing the phone takes effect at once.
func TestPhoneProvisioningEndToEnd(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	acct := d.CreateAccount(t, map[string]any{"sip_domain": "phones.voip.example.net"})
	d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 2})
	ls := lines(t, d, apptest.OperatorToken, acct)
	var pw struct{ Password string }
	d.Op(t, 200, "GET", "/v1/accounts/"+acct+"/lines/"+ls[0].ID+"/password", nil).JSON(t, &pw)

	var created struct {
		Device struct {
			ID  string
			MAC string
		}
		ProvisioningSecret string `json:"provisioning_secret"`
	}
	d.Op(t, 201, "POST", "/v1/accounts/"+acct+"/devices", map[string]any{
		"mac": "80-5E-C0-AA-BB-CC", "vendor": "yealink", "model": "T54W",
		"lines": []map[string]any{{"line": ls[0].ID, "key": 1}, {"line": ls[1].ID, "key": 2}},
	}).JSON(t, &created)
	if created.Device.MAC != "805ec0aabbcc" || created.ProvisioningSecret == "" {
		t.Fatalf("device = %+v", created)
	}
	status, body := fetchConfig(t, d, "805ec0aabbcc.cfg", "805ec0aabbcc", created.ProvisioningSecret)
	if status != 200 {
		t.Fatalf("fetch: %d %s", status, body)
	}
	// No time zone of its own: the account's (Europe/Paris), DST rule included.
	for _, want := range []string{"phones.voip.example.net", pw.Password, "account.1.user_name = " + ls[0].SIPUsername,
		"local_time.time_zone = +1\n", "local_time.start_time = 3/5/7/2\n", "local_time.end_time = 10/5/7/3\n"} {
		if !strings.Contains(body, want) {
			t.Fatalf("config lacks %q:\n%s", want, body)
		}
	}
	if status, _ := fetchConfig(t, d, "805ec0aabbcc.cfg", "805ec0aabbcc", "wrong"); status != 401 {
		t.Fatalf("wrong secret: %d", status)
	}
	// A second line on the same account may not sit on two phones.
	r := d.Call(t, apptest.OperatorToken, "POST", "/v1/accounts/"+acct+"/devices", map[string]any{
		"mac": "80:5e:c0:00:00:01", "vendor": "snom", "lines": []map[string]any{{"line": ls[0].ID}},
	})
	if r.Status != 409 {
		t.Fatalf("a line on two phones: %d %s", r.Status, r.Body)
	}
	// Unbind line 1: its password is no longer served.
	d.Op(t, 200, "PATCH", "/v1/accounts/"+acct+"/devices/"+created.Device.ID, map[string]any{"lines": []map[string]any{{"line": ls[1].ID, "key": 1}}})
	_, body = fetchConfig(t, d, "805ec0aabbcc.cfg", "805ec0aabbcc", created.ProvisioningSecret)
	if strings.Contains(body, pw.Password) {
		t.Fatal("an unbound line's password is still served")
	}
	d.Op(t, 204, "DELETE", "/v1/accounts/"+acct+"/devices/"+created.Device.ID, nil)
	// A removed device is an unknown MAC: the same 401 as a wrong secret.
	if status, _ := fetchConfig(t, d, "805ec0aabbcc.cfg", "805ec0aabbcc", created.ProvisioningSecret); status != 401 {
		t.Fatalf("removed device: %d", status)
	}
}
