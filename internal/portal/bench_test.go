package portal_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/pbxd/pbxd/internal/app/apptest"
)

// BenchmarkPages serves the portal's pages for an account with 1,000 lines
// (a whole daemon on a real PostgreSQL; the time is the request's round
// trip over loopback, so an upper bound of the server time). The goal is
// under 100 ms a page:
//
//	go test ./internal/portal -run '^$' -bench Pages -benchtime 50x
func BenchmarkPages(b *testing.B) {
	d := apptest.Start(b)
	acct := d.CreateAccount(b, map[string]any{"payment_mode": "card", "extension_range": map[string]int{"first": 1000, "last": 2999}})
	d.Op(b, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/payment-methods", map[string]any{"gateway": "sandbox", "token": "sandbox_approve"})
	d.Change(b, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 700}, map[string]any{"package": "world", "quantity": 300})
	d.Op(b, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/users", map[string]any{"email": "owner@bench.example", "role": "owner", "password": "correct horse battery"})

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	get := func(path string) string {
		resp, err := c.Get(d.URL + path)
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }() // read to its end below
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		return string(body)
	}
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(get("/portal/login"))
	resp, err := c.PostForm(d.URL+"/portal/login", url.Values{"email": {"owner@bench.example"}, "password": {"correct horse battery"}, "csrf": {m[1]}})
	if err != nil {
		b.Fatal(err)
	}
	_ = resp.Body.Close() // read to its end above
	if n := strings.Count(get("/portal/"), `class="pw"`); n != 1000 {
		b.Fatalf("My packages shows %d lines, want 1000", n)
	}
	var invoice string
	if m := regexp.MustCompile(`href="/portal/invoices/([0-9a-f-]{36})"`).FindStringSubmatch(get("/portal/invoices")); m != nil {
		invoice = m[1]
	}
	for _, page := range []string{"/portal/", "/portal/modify", "/portal/account", "/portal/plans", "/portal/billing", "/portal/invoices", "/portal/invoices/" + invoice} {
		name := strings.TrimPrefix(page, "/portal/")
		if name == "" {
			name = "packages"
		}
		if strings.HasPrefix(name, "invoices/") {
			name = "invoice"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				get(page)
			}
		})
	}
}
