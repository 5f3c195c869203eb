package e2e

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

// browser is a cookie-keeping HTTP client that does not follow redirects,
// so tests see each answer of the portal.
type browser struct {
	t    *testing.T
	d    *apptest.Daemon
	c    *http.Client
	csrf string
}

func newBrowser(t *testing.T, d *apptest.Daemon) *browser {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, d: d, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// do sends a request and returns status, Location and body; it remembers
// the last CSRF token a page carried.
func (b *browser) do(method, path string, form url.Values) (int, string, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.d.URL+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }() // read to its end below
	raw, _ := io.ReadAll(resp.Body)
	if m := csrfField.FindSubmatch(raw); m != nil {
		b.csrf = string(m[1])
	}
	return resp.StatusCode, resp.Header.Get("Location"), string(raw)
}

func (b *browser) get(path string) (int, string) {
	b.t.Helper()
	st, _, body := b.do("GET", path, nil)
	return st, body
}

// post sends a form with the current CSRF token.
func (b *browser) post(path string, form url.Values) (int, string, string) {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if form.Get("csrf") == "" {
		form.Set("csrf", b.csrf)
	}
	return b.do("POST", path, form)
}

// login signs in and fails the test unless it succeeds.
func (b *browser) login(email, password string) {
	b.t.Helper()
	b.get("/portal/login")
	st, loc, body := b.post("/portal/login", url.Values{"email": {email}, "password": {password}})
	if st != http.StatusSeeOther || loc != "/portal/" {
		b.t.Fatalf("login %s: %d %q %s", email, st, loc, body)
	}
	b.get("/portal/")
}

// addUser creates an account user as the operator.
func addUser(t *testing.T, d *apptest.Daemon, acct, email, role string, extra ...map[string]any) string {
	t.Helper()
	body := map[string]any{"email": email, "name": "Test " + role, "role": role, "password": "correct horse battery"}
	for _, e := range extra {
		for k, v := range e {
			body[k] = v
		}
	}
	var u struct{ ID string }
	d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/users", body).JSON(t, &u)
	return u.ID
}

func TestAccountUsersAPI(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	acct := d.CreateAccount(t, nil)
	owner := addUser(t, d, acct, "owner@example.com", "owner")

	// The password is never stored in clear nor given back.
	r := d.Op(t, http.StatusOK, "GET", "/v1/accounts/"+acct+"/users", nil)
	if strings.Contains(string(r.Body), "correct horse") || strings.Contains(string(r.Body), "argon2") {
		t.Fatalf("user list leaks the password: %s", r.Body)
	}
	var hash string
	if err := d.App.Pool().QueryRow(t.Context(), `SELECT password_hash FROM account_users WHERE id = $1`, owner).Scan(&hash); err != nil || !strings.HasPrefix(hash, "$argon2id$") {
		t.Fatalf("stored hash %q (%v)", hash, err)
	}
	// Bad input names the field and changes nothing.
	for field, body := range map[string]map[string]any{
		"email":    {"email": "not an email", "role": "member", "password": "correct horse battery"},
		"role":     {"email": "x@example.com", "role": "king", "password": "correct horse battery"},
		"password": {"email": "x@example.com", "role": "member", "password": "short"},
	} {
		r := d.Call(t, apptest.OperatorToken, "POST", "/v1/accounts/"+acct+"/users", body)
		if r.Status != http.StatusUnprocessableEntity || r.Map(t)["field"] != field {
			t.Errorf("%s: %d %s", field, r.Status, r.Body)
		}
	}
	if r := d.Call(t, apptest.OperatorToken, "POST", "/v1/accounts/"+acct+"/users", map[string]any{"email": "OWNER@example.com", "role": "member", "password": "correct horse battery"}); r.Status != http.StatusConflict {
		t.Errorf("duplicate email: %d %s", r.Status, r.Body)
	}
	// The last owner can be neither demoted nor removed.
	if r := d.Call(t, apptest.OperatorToken, "PATCH", "/v1/accounts/"+acct+"/users/"+owner, map[string]any{"role": "member"}); r.Status != http.StatusConflict {
		t.Errorf("demote last owner: %d %s", r.Status, r.Body)
	}
	if r := d.Call(t, apptest.OperatorToken, "DELETE", "/v1/accounts/"+acct+"/users/"+owner, nil); r.Status != http.StatusConflict {
		t.Errorf("delete last owner: %d %s", r.Status, r.Body)
	}
	// An account token acts as an admin: it manages members, not owners.
	var tok struct{ Token string }
	d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/tokens", nil).JSON(t, &tok)
	if r := d.Call(t, tok.Token, "POST", "/v1/accounts/"+acct+"/users", map[string]any{"email": "o2@example.com", "role": "owner", "password": "correct horse battery"}); r.Status != http.StatusUnprocessableEntity {
		t.Errorf("account token adds an owner: %d %s", r.Status, r.Body)
	}
	r = d.Call(t, tok.Token, "POST", "/v1/accounts/"+acct+"/users", map[string]any{"email": "m@example.com", "role": "member", "password": "correct horse battery"})
	if r.Status != http.StatusCreated {
		t.Fatalf("account token adds a member: %d %s", r.Status, r.Body)
	}
	member := r.Map(t)["id"].(string)
	d.Op(t, http.StatusOK, "PATCH", "/v1/accounts/"+acct+"/users/"+member, map[string]any{"role": "admin", "locale": "fr"})
	// Another account's users are not found.
	other := d.CreateAccount(t, nil)
	if r := d.Call(t, tok.Token, "GET", "/v1/accounts/"+other+"/users", nil); r.Status != http.StatusNotFound {
		t.Errorf("other account's users: %d", r.Status)
	}
	if r := d.Call(t, apptest.OperatorToken, "GET", "/v1/accounts/"+other+"/users/"+member, nil); r.Status != http.StatusNotFound {
		t.Errorf("a user through another account: %d", r.Status)
	}
	d.Op(t, http.StatusNoContent, "DELETE", "/v1/accounts/"+acct+"/users/"+member, nil)
	var actions []string
	rows, err := d.App.Pool().Query(t.Context(), `SELECT action || ' by ' || actor FROM audit_log WHERE account_id = $1 AND action LIKE 'user.%' ORDER BY id`, acct)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		actions = append(actions, s)
	}
	want := []string{"user.created by operator", "user.created by account:" + acct, "user.updated by operator", "user.deleted by operator"}
	if strings.Join(actions, ",") != strings.Join(want, ",") {
		t.Errorf("audit = %v, want %v", actions, want)
	}
}

// Sign-in answers the same 401 whether the email exists or not, throttles
// per email (existing or not) and per source, and sessions end on sign-out
// and on expiry.
func TestPortalLoginSessionsAndThrottle(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	acct := d.CreateAccount(t, nil)
	addUser(t, d, acct, "owner@example.com", "owner")

	b := newBrowser(t, d)
	if st, loc, _ := b.do("GET", "/portal/", nil); st != http.StatusSeeOther || !strings.HasPrefix(loc, "/portal/login") {
		t.Fatalf("signed out /portal/: %d %q", st, loc)
	}
	b.get("/portal/login")
	_, _, wrong := b.post("/portal/login", url.Values{"email": {"owner@example.com"}, "password": {"wrong password!"}})
	st1, _, _ := b.post("/portal/login", url.Values{"email": {"owner@example.com"}, "password": {"wrong password!"}})
	st2, _, unknown := b.post("/portal/login", url.Values{"email": {"nobody@example.com"}, "password": {"wrong password!"}})
	if st1 != http.StatusUnauthorized || st2 != http.StatusUnauthorized {
		t.Fatalf("wrong password %d, unknown email %d; want 401 both", st1, st2)
	}
	norm := func(s string) string {
		return csrfField.ReplaceAllString(strings.ReplaceAll(s, "nobody@example.com", "owner@example.com"), "")
	}
	if norm(wrong) != norm(unknown) {
		t.Errorf("the 401 pages differ between a wrong password and an unknown email")
	}
	// A login form without its CSRF token is refused.
	if st, _, _ := b.do("POST", "/portal/login", url.Values{"email": {"owner@example.com"}, "password": {"correct horse battery"}}); st != http.StatusForbidden {
		t.Errorf("login without CSRF: %d", st)
	}
	// Five failures for one email block it, known or not, with one answer.
	for range 4 {
		b.post("/portal/login", url.Values{"email": {"owner@example.com"}, "password": {"wrong password!"}})
		b.post("/portal/login", url.Values{"email": {"nobody@example.com"}, "password": {"wrong password!"}})
	}
	stKnown, _, _ := b.post("/portal/login", url.Values{"email": {"owner@example.com"}, "password": {"correct horse battery"}})
	stUnknown, _, _ := b.post("/portal/login", url.Values{"email": {"nobody@example.com"}, "password": {"whatever it is"}})
	if stKnown != http.StatusTooManyRequests || stUnknown != http.StatusTooManyRequests {
		t.Fatalf("after 5 failures: known %d, unknown %d; want 429 both", stKnown, stUnknown)
	}
	// The block lifts when the failures leave the 15-minute window.
	d.SetClock(t, "2026-11-16T10:16:00+01:00")
	b.login("owner@example.com", "correct horse battery")
	if st, body := b.get("/portal/"); st != http.StatusOK || !strings.Contains(body, "My packages") {
		t.Fatalf("signed in: %d", st)
	}
	var signIns int
	_ = d.App.Pool().QueryRow(t.Context(), `SELECT count(*) FROM audit_log WHERE action = 'portal.signed_in' AND actor LIKE 'user:%'`).Scan(&signIns)
	if signIns != 1 {
		t.Errorf("%d sign-ins audited, want 1", signIns)
	}
	// The cookie's attributes.
	b2 := newBrowser(t, d)
	b2.get("/portal/login")
	req, _ := http.NewRequest("POST", d.URL+"/portal/login", strings.NewReader(url.Values{"email": {"owner@example.com"}, "password": {"correct horse battery"}, "csrf": {b2.csrf}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b2.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close() // unread: only the status matters
	var cookie string
	for _, c := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, "pbxd_portal=") {
			cookie = c
		}
	}
	if !strings.Contains(cookie, "HttpOnly") || !strings.Contains(cookie, "SameSite=Lax") || strings.Contains(cookie, "Secure") {
		t.Errorf("session cookie over plain HTTP = %q", cookie)
	}

	// Sign-out without the CSRF token is refused; with it, the session ends.
	if st, _, _ := b.do("POST", "/portal/logout", url.Values{}); st != http.StatusForbidden {
		t.Errorf("logout without CSRF: %d", st)
	}
	b.post("/portal/logout", nil)
	if st, _, _ := b.do("GET", "/portal/", nil); st != http.StatusSeeOther {
		t.Errorf("after sign-out: %d", st)
	}
	// Sessions expire after 8 hours.
	if st, _ := b2.get("/portal/"); st != http.StatusOK {
		t.Fatalf("second session: %d", st)
	}
	d.SetClock(t, "2026-11-16T18:17:00+01:00")
	if st, loc, _ := b2.do("GET", "/portal/", nil); st != http.StatusSeeOther || !strings.Contains(loc, "expired") {
		t.Errorf("expired session: %d %q", st, loc)
	}
}

// Members see their own lines only and cannot reach billing; every form
// needs the session's CSRF token; another account's objects are not found.
func TestPortalRolesCSRFAndIsolation(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	acct := d.CreateAccount(t, nil)
	d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 2})
	ls := lines(t, d, apptest.OperatorToken, acct)
	addUser(t, d, acct, "owner@example.com", "owner")
	addUser(t, d, acct, "member@example.com", "member", map[string]any{"lines": []string{ls[0].ID}})

	m := newBrowser(t, d)
	m.login("member@example.com", "correct horse battery")
	_, body := m.get("/portal/")
	if !strings.Contains(body, ls[0].ID) || strings.Contains(body, ls[1].ID) {
		t.Errorf("member's My packages shows other lines or not theirs")
	}
	for _, p := range []string{"/portal/invoices", "/portal/account", "/portal/cards", "/portal/modify", "/portal/plans", "/portal/billing"} {
		if st, _ := m.get(p); st != http.StatusForbidden {
			t.Errorf("member GET %s: %d, want 403", p, st)
		}
	}
	if st, _, _ := m.post("/portal/cards", url.Values{"token": {"sandbox_approve"}}); st != http.StatusForbidden {
		t.Errorf("member adds a card: %d", st)
	}
	// The member's reveal works for their line only (and needs the header).
	if st, _ := m.get("/portal/lines/" + ls[0].ID + "/password"); st != http.StatusNotFound {
		t.Errorf("reveal without CSRF header: %d", st)
	}

	// A member may ask for something: a service request (the API's) with
	// the member as its author.
	m.get("/portal/contact")
	if st, loc, _ := m.post("/portal/contact", url.Values{"kind": {"other"}, "details": {"+33 1 23 45 67 89"}}); st != http.StatusSeeOther || loc != "/portal/contact?sent=1" {
		t.Errorf("contact: %d %q", st, loc)
	}
	if st, _, _ := m.post("/portal/contact", url.Values{"kind": {"bribe"}}); st != http.StatusUnprocessableEntity {
		t.Errorf("contact with an unknown kind: %d", st)
	}
	var details string
	_ = d.App.Pool().QueryRow(t.Context(), `SELECT details->>'text' FROM service_requests WHERE kind = 'other' AND account_id = $1 AND created_by LIKE 'user:%'`, acct).Scan(&details)
	if details != "+33 1 23 45 67 89" {
		t.Errorf("stored request details = %q", details)
	}

	o := newBrowser(t, d)
	o.login("owner@example.com", "correct horse battery")
	// CSRF: a form without the token, or with another session's, is refused
	// and changes nothing.
	for _, tok := range []string{"", m.csrf} {
		st, _, _ := o.do("POST", "/portal/cards", url.Values{"token": {"sandbox_approve"}, "csrf": {tok}})
		if st != http.StatusForbidden {
			t.Errorf("add card with csrf %q: %d", tok, st)
		}
	}
	var cards int
	_ = d.App.Pool().QueryRow(t.Context(), `SELECT count(*) FROM payment_methods WHERE account_id = $1`, acct).Scan(&cards)
	if cards != 0 {
		t.Fatalf("%d cards added without a valid CSRF token", cards)
	}

	// Another account's objects through this session's URLs: 404.
	other := d.CreateAccount(t, nil)
	d.Change(t, other, map[string]any{"package": "world", "quantity": 1})
	ol := lines(t, d, apptest.OperatorToken, other)
	invs := invoiceList(t, d, other)
	pv := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+other+"/changes", map[string]any{"items": []map[string]any{{"package": "world", "quantity": 2}}}).Map(t)
	var pm struct{ ID string }
	d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+other+"/payment-methods", map[string]any{"gateway": "sandbox", "token": "sandbox_approve"}).JSON(t, &pm)
	for _, p := range []string{
		"/portal/accounts/" + other + "/", "/portal/accounts/" + acct + "/",
		"/portal/changes/" + pv["id"].(string),
	} {
		if st, _ := o.get(p); st != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, st)
		}
	}
	req, _ := http.NewRequest("GET", d.URL+"/portal/lines/"+ol[0].ID+"/password", nil)
	req.Header.Set("X-CSRF-Token", o.csrf)
	if resp, err := o.c.Do(req); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("other account's line password: %v %v", resp.StatusCode, err)
	}
	for _, inv := range invs {
		if st, _ := o.get("/portal/invoices/" + inv.ID); st != http.StatusNotFound {
			t.Errorf("other account's invoice: %d", st)
		}
		if st, _ := o.get("/portal/invoices/" + inv.ID + "/pdf"); st != http.StatusNotFound {
			t.Errorf("other account's invoice PDF: %d", st)
		}
	}
	o.get("/portal/cards")
	if st, _, _ := o.post("/portal/changes/"+pv["id"].(string)+"/confirm", nil); st != http.StatusNotFound {
		t.Errorf("confirm another account's order: %d", st)
	}
	if st, _, _ := o.post("/portal/cards/"+pm.ID+"/delete", nil); st != http.StatusNotFound {
		t.Errorf("remove another account's card: %d", st)
	}
	var status string
	_ = d.App.Pool().QueryRow(t.Context(), `SELECT status FROM change_orders WHERE id = $1`, pv["id"]).Scan(&status)
	if status != "previewed" {
		t.Errorf("other account's order is %s", status)
	}
}

// Confirming a summary the account has outgrown answers 409 with an
// explanation and a fresh summary of the same order, which confirms.
func TestPortalConfirmConflictRepreviews(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	acct := d.CreateAccount(t, nil)
	d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 1})
	addUser(t, d, acct, "owner@example.com", "owner")
	b := newBrowser(t, d)
	b.login("owner@example.com", "correct horse battery")
	b.get("/portal/modify")
	st, loc, body := b.post("/portal/modify", url.Values{"add.fr-fixed-mobile": {"2"}})
	if st != http.StatusSeeOther || !strings.HasPrefix(loc, "/portal/changes/") {
		t.Fatalf("modify: %d %q %s", st, loc, body)
	}
	st, summary := b.get(loc)
	if st != http.StatusOK || !strings.Contains(summary, "from 1 to 3") {
		t.Fatalf("summary: %d", st)
	}
	// Meanwhile the operator adds a line: the summary no longer holds.
	d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 2})
	st, _, body = b.post(loc+"/confirm", nil)
	if st != http.StatusConflict || !strings.Contains(body, `id="conflict"`) || !strings.Contains(body, "from 2 to 3") {
		t.Fatalf("stale confirm: %d\n%s", st, body)
	}
	if n := len(lines(t, d, apptest.OperatorToken, acct)); n != 2 {
		t.Fatalf("the stale order changed lines: %d", n)
	}
	fresh := regexp.MustCompile(`action="(/portal/changes/[^"]+/confirm)"`).FindStringSubmatch(body)
	if fresh == nil || strings.HasPrefix(fresh[1], loc) {
		t.Fatalf("no fresh order to confirm in the 409 page")
	}
	if st, loc, _ := b.post(fresh[1], nil); st != http.StatusSeeOther || !strings.HasPrefix(loc, "/portal/?confirmed=") {
		t.Fatalf("confirm the fresh summary: %d %q", st, loc)
	}
	if n := len(lines(t, d, apptest.OperatorToken, acct)); n != 3 {
		t.Fatalf("%d lines after the fresh confirm, want 3", n)
	}
	var actor string
	_ = d.App.Pool().QueryRow(t.Context(), `SELECT actor FROM audit_log WHERE account_id = $1 AND action LIKE 'change%' ORDER BY id DESC LIMIT 1`, acct).Scan(&actor)
	if !strings.HasPrefix(actor, "user:") {
		t.Errorf("the change is audited as %q, want the user", actor)
	}
}

// The operator signs in with the operator token, searches accounts and
// opens one: the same screens, read-write.
func TestPortalOperator(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	acme := d.CreateAccount(t, map[string]any{"name": "Acme"})
	d.CreateAccount(t, map[string]any{"name": "Zeta"})
	d.Change(t, acme, map[string]any{"package": "world", "quantity": 1})
	b := newBrowser(t, d)
	b.get("/portal/operator")
	if st, _, _ := b.post("/portal/operator", url.Values{"token": {"wrong"}}); st != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", st)
	}
	if st, loc, _ := b.post("/portal/operator", url.Values{"token": {apptest.OperatorToken}}); st != http.StatusSeeOther || loc != "/portal/operator/accounts" {
		t.Fatalf("operator sign-in: %d %q", st, loc)
	}
	var opSignIns int
	_ = d.App.Pool().QueryRow(t.Context(), `SELECT count(*) FROM audit_log WHERE action = 'portal.operator_signed_in' AND actor = 'operator'`).Scan(&opSignIns)
	if opSignIns != 1 {
		t.Errorf("%d operator sign-ins audited, want 1", opSignIns)
	}
	_, body := b.get("/portal/operator/accounts")
	if !strings.Contains(body, "/portal/accounts/"+acme+"/") || !strings.Contains(body, ">Zeta<") {
		t.Fatalf("accounts list lacks an account")
	}
	_, body = b.get("/portal/operator/accounts?q=ZET")
	if strings.Contains(body, "/portal/accounts/"+acme+"/") || !strings.Contains(body, ">Zeta<") {
		t.Fatalf("search zet: %s", body)
	}
	st, body := b.get("/portal/accounts/" + acme + "/")
	if st != http.StatusOK || !strings.Contains(body, "World fixed &amp; mobile") {
		t.Fatalf("account view: %d", st)
	}
	b.get("/portal/accounts/" + acme + "/billing")
	st, loc, _ := b.post("/portal/accounts/"+acme+"/billing", url.Values{"seats.world": {"2"}})
	if st != http.StatusSeeOther || !strings.HasPrefix(loc, "/portal/accounts/"+acme+"/changes/") {
		t.Fatalf("operator seats: %d %q", st, loc)
	}
	b.get(loc)
	if st, _, _ := b.post(loc+"/confirm", nil); st != http.StatusSeeOther {
		t.Fatalf("operator confirm: %d", st)
	}
	if n := len(lines(t, d, apptest.OperatorToken, acme)); n != 2 {
		t.Errorf("%d lines, want 2", n)
	}
	// Suspend: lines leave the PBX, changes are refused; resume brings them back.
	b.get("/portal/accounts/" + acme + "/")
	if st, _, _ := b.post("/portal/accounts/"+acme+"/status", url.Values{"status": {"suspended"}}); st != http.StatusSeeOther {
		t.Fatalf("suspend: %d", st)
	}
	if _, body := b.get("/portal/accounts/" + acme + "/"); !strings.Contains(body, `id="account-status"`) || !strings.Contains(body, `id="resume"`) {
		t.Errorf("suspended account view lacks the banner or the resume button")
	}
	for _, l := range lines(t, d, apptest.OperatorToken, acme) {
		if l.State != "suspended" {
			t.Errorf("line %d is %s after suspension", l.Extension, l.State)
		}
	}
	if r := d.Call(t, apptest.OperatorToken, "POST", "/v1/accounts/"+acme+"/changes", map[string]any{"items": []map[string]any{{"package": "world", "quantity": 3}}}); r.Status != http.StatusConflict {
		t.Errorf("change on a suspended account: %d", r.Status)
	}
	if st, _, _ := b.post("/portal/accounts/"+acme+"/status", url.Values{"status": {"active"}}); st != http.StatusSeeOther {
		t.Fatalf("resume: %d", st)
	}
	for _, l := range lines(t, d, apptest.OperatorToken, acme) {
		if l.State != "active" {
			t.Errorf("line %d is %s after resumption", l.Extension, l.State)
		}
	}
	var audited int
	_ = d.App.Pool().QueryRow(t.Context(), `SELECT count(*) FROM audit_log WHERE account_id = $1 AND action IN ('account.suspended', 'account.active') AND actor = 'operator'`, acme).Scan(&audited)
	if audited != 2 {
		t.Errorf("%d status changes audited, want 2", audited)
	}
	// A customer page without an account sends the operator to the list.
	if st, loc, _ := b.do("GET", "/portal/", nil); st != http.StatusSeeOther || loc != "/portal/operator/accounts" {
		t.Errorf("operator at /portal/: %d %q", st, loc)
	}
	if st, _ := b.get("/portal/accounts/00000000-0000-0000-0000-000000000000/"); st != http.StatusNotFound {
		t.Errorf("unknown account: %d", st)
	}
}

// Billing & upgrade's plan level change moves every line of a package up
// to a dearer one, keeping numbers; moving down is refused (a request).
func TestPortalPlanLevelUpgrade(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	acct := d.CreateAccount(t, nil)
	d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 2})
	before := lines(t, d, apptest.OperatorToken, acct)
	addUser(t, d, acct, "owner@example.com", "owner")
	b := newBrowser(t, d)
	b.login("owner@example.com", "correct horse battery")
	_, page := b.get("/portal/billing")
	if !strings.Contains(page, `name="from" value="fr-fixed-mobile"`) || !strings.Contains(page, `<option value="world">`) {
		t.Fatalf("billing page lacks the plan level form")
	}
	if st, _, _ := b.post("/portal/billing/level", url.Values{"from": {"world"}, "to": {"fr-fixed-mobile"}}); st != http.StatusUnprocessableEntity {
		t.Errorf("move down: %d, want 422", st)
	}
	st, loc, _ := b.post("/portal/billing/level", url.Values{"from": {"fr-fixed-mobile"}, "to": {"world"}})
	if st != http.StatusSeeOther {
		t.Fatalf("plan level: %d", st)
	}
	_, summary := b.get(loc)
	// 16 November: 2 × 69.90 × 15/30 = 69.90 today, then 139.80 a month.
	for _, want := range []string{"from 0 to 2 World fixed &amp; mobile", "from 2 to 0 France fixed &amp; mobile", "€69.90", "€139.80"} {
		if !strings.Contains(summary, want) {
			t.Errorf("summary lacks %q", want)
		}
	}
	if st, _, _ := b.post(loc+"/confirm", nil); st != http.StatusSeeOther {
		t.Fatalf("confirm: %d", st)
	}
	// The seat preference, from the account summary: block refuses a swap
	// that would need a new seat.
	b.get("/portal/account")
	if st, _, _ := b.post("/portal/account/seat-preference", url.Values{"seat_preference": {"never"}}); st != http.StatusUnprocessableEntity {
		t.Errorf("bad seat preference: %d", st)
	}
	if st, _, _ := b.post("/portal/account/seat-preference", url.Values{"seat_preference": {"block"}}); st != http.StatusSeeOther {
		t.Fatalf("seat preference: %d", st)
	}
	if _, page := b.get("/portal/account"); !strings.Contains(page, `value="block" checked`) {
		t.Errorf("account summary does not show block chosen")
	}
	after := lines(t, d, apptest.OperatorToken, acct)
	r := d.Call(t, apptest.OperatorToken, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"swaps": []map[string]any{{"line": after[0].ID, "package": "fr-fixed-mobile"}}})
	if r.Status != http.StatusConflict {
		t.Errorf("swap without a free seat under block: %d %s", r.Status, r.Body)
	}
	if len(after) != 2 || after[0].Package != "world" || after[1].Package != "world" || after[0].Extension != before[0].Extension || after[1].Extension != before[1].Extension {
		t.Errorf("lines after the move: %+v", after)
	}
}

// Owners and admins manage the account's users from the portal; an admin
// cannot touch owners; members cannot reach the page.
func TestPortalUsersScreen(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	acct := d.CreateAccount(t, nil)
	d.Change(t, acct, map[string]any{"package": "world", "quantity": 2})
	ls := lines(t, d, apptest.OperatorToken, acct)
	owner := addUser(t, d, acct, "owner@example.com", "owner")
	addUser(t, d, acct, "admin@example.com", "admin")
	a := newBrowser(t, d)
	a.login("admin@example.com", "correct horse battery")
	a.get("/portal/users")
	if st, _, body := a.post("/portal/users", url.Values{"email": {"boss@example.com"}, "role": {"owner"}, "password": {"correct horse battery"}}); st != http.StatusUnprocessableEntity || !strings.Contains(body, "only an owner") {
		t.Errorf("admin adds an owner: %d", st)
	}
	if st, _, _ := a.post("/portal/users/"+owner+"/role", url.Values{"role": {"member"}}); st != http.StatusUnprocessableEntity {
		t.Errorf("admin demotes the owner: %d", st)
	}
	st, _, _ := a.post("/portal/users", url.Values{"email": {"m@example.com"}, "name": {"Mo"}, "role": {"member"}, "password": {"correct horse battery"}, "lines": {ls[1].ID}, "locale": {"fr"}})
	if st != http.StatusSeeOther {
		t.Fatalf("admin adds a member: %d", st)
	}
	m := newBrowser(t, d)
	m.login("m@example.com", "correct horse battery")
	_, page := m.get("/portal/")
	if !strings.Contains(page, "Mes forfaits") || !strings.Contains(page, ls[1].ID) || strings.Contains(page, ls[0].ID) {
		t.Errorf("the new member's French page with one line is wrong")
	}
	if st, _ := m.get("/portal/users"); st != http.StatusForbidden {
		t.Errorf("member on users: %d", st)
	}
	// A removed user's session is void at once (never mistaken for the
	// operator's, which has no user).
	var memberID string
	_ = d.App.Pool().QueryRow(t.Context(), `SELECT id FROM account_users WHERE email = 'm@example.com'`).Scan(&memberID)
	if _, err := d.App.Pool().Exec(t.Context(), `UPDATE account_users SET deleted_at = now() WHERE id = $1`, memberID); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := m.do("GET", "/portal/", nil); st != http.StatusSeeOther {
		t.Errorf("removed user's session: %d", st)
	}
	if st, _, _ := m.do("GET", "/portal/operator/accounts", nil); st != http.StatusSeeOther {
		t.Errorf("removed user's session reaches the operator's accounts: %d", st)
	}
	var actor string
	_ = d.App.Pool().QueryRow(t.Context(), `SELECT actor FROM audit_log WHERE action = 'user.created' AND details->>'email' = 'm@example.com'`).Scan(&actor)
	if !strings.HasPrefix(actor, "user:") {
		t.Errorf("user.created by %q, want the admin", actor)
	}
}
