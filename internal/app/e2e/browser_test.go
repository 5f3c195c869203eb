package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/pbxd/pbxd/internal/app/apptest"
)

// chromiumPath finds Debian's chromium (scripts/deps installs it for
// scripts/test); PBXD_CHROMIUM overrides. Like a missing sipp, a missing
// browser fails the test rather than skipping it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PBXD_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not installed: run scripts/deps test (or set PBXD_CHROMIUM)")
	return ""
}

// chrome starts a headless Chromium with a fresh profile, stopped when the
// test ends, and returns a tab's context.
func chrome(t *testing.T) context.Context {
	t.Helper()
	// Not t.TempDir: Chromium's helper processes may still write to the
	// profile for a moment after the browser exits, which fails the
	// testing package's cleanup. Removed after the browser, retried.
	profile, err := os.MkdirTemp("", "pbxd-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 20 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("chromium profile %s left behind", profile)
	})
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true), chromedp.Flag("no-sandbox", true), chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true), chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(profile), chromedp.WindowSize(1100, 800),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTime(); cancelTab(); cancelAlloc() })
	if err := chromedp.Run(ctx, chromedp.EmulateViewport(1100, 800)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// run runs browser actions and fails the test with what was being done.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action) {
	t.Helper()
	if err := chromedp.Run(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// screenshot saves the page as name.png in PBXD_PORTAL_SCREENSHOTS (the
// README's docs/portal/ when regenerating them) or the test's temp dir,
// after checking every control on it has an accessible name.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("PBXD_PORTAL_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if bad := unlabelled(t, ctx); len(bad) > 0 {
		t.Errorf("%s: controls without an accessible name: %v", name, bad)
	}
	var png []byte
	run(t, ctx, "screenshot "+name, chromedp.FullScreenshot(&png, 100))
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	by := chromedp.ByQuery
	if strings.HasPrefix(sel, "//") {
		by = chromedp.BySearch // XPath
	}
	var s string
	run(t, ctx, "read "+sel, chromedp.Text(sel, &s, by))
	return strings.Join(strings.Fields(s), " ")
}

// hover moves the mouse onto the element's centre (or away when sel is "").
func hover(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	var pt []float64
	if sel == "" {
		pt = []float64{1, 1}
	} else {
		run(t, ctx, "locate "+sel, chromedp.ScrollIntoView(sel, chromedp.ByQuery),
			chromedp.Evaluate(fmt.Sprintf(`(() => { const r = document.querySelector(%q).getBoundingClientRect(); return [r.x + r.width/2, r.y + r.height/2]; })()`, sel), &pt))
	}
	run(t, ctx, "hover "+sel, chromedp.MouseEvent(input.MouseMoved, pt[0], pt[1]))
}

func signIn(t *testing.T, ctx context.Context, d *apptest.Daemon, email string) {
	t.Helper()
	run(t, ctx, "sign in",
		chromedp.Navigate(d.URL+"/portal/login"),
		chromedp.SendKeys("#email", email, chromedp.ByQuery),
		chromedp.SendKeys("#password", "correct horse battery", chromedp.ByQuery),
	)
	click(t, ctx, "main button[type=submit]")
}

// The seed story, clicked through as the account's owner: 3 France + 1
// World lines on 1 November; on 16 November, Add/Modify to 4 + 0; the
// summary shows 24.95 + 4.99 VAT = 29.94 due and a 34.95 credit; confirm;
// the lines table changes; the invoice page and its PDF.
func TestPortalSeedStoryInChromium(t *testing.T) {
	t.Parallel()
	ctx := chrome(t)
	d := startAt(t, "2026-11-01T10:00:00+01:00")
	acct := d.CreateAccount(t, map[string]any{"payment_mode": "card", "name": "Acme SARL", "sip_domain": "acme.voip.example.net"})
	addMethod(t, d, acct, "sandbox_approve")
	d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 3}, map[string]any{"package": "world", "quantity": 1})
	addUser(t, d, acct, "owner@acme.example", "owner")
	d.SetClock(t, "2026-11-16T10:00:00+01:00")

	signIn(t, ctx, d, "owner@acme.example")
	if got := text(t, ctx, "main h1"); got != "My packages" {
		t.Fatalf("after sign-in: %q", got)
	}
	if got := text(t, ctx, "#total-lines"); got != "4" {
		t.Errorf("total lines = %q", got)
	}
	// The accessibility check itself notices an unlabelled control.
	run(t, ctx, "inject", chromedp.Evaluate(`document.body.append(Object.assign(document.createElement("input"), {id: "probe"}))`, nil))
	if bad := unlabelled(t, ctx); len(bad) != 1 || !strings.Contains(bad[0], "probe") {
		t.Errorf("unlabelled() = %v, want the probe only", bad)
	}
	run(t, ctx, "remove", chromedp.Evaluate(`document.getElementById("probe").remove()`, nil))
	ls := lines(t, d, apptest.OperatorToken, acct)
	var world lineView
	for _, l := range ls {
		if l.Package == "world" {
			world = l
		}
	}
	var pw struct{ Password string }
	d.Op(t, http.StatusOK, "GET", "/v1/accounts/"+acct+"/lines/"+ls[0].ID+"/password", nil).JSON(t, &pw)

	// Hovering a password reveals it (fetched and audited), leaving hides it.
	cell := fmt.Sprintf(`tr[data-line=%q] .pw`, ls[0].ID)
	before := reveals(t, d, acct)
	hover(t, ctx, cell)
	var shown string
	run(t, ctx, "wait for the password", chromedp.Poll(fmt.Sprintf(`(() => { const s = document.querySelector(%q).textContent; return s === "••••••••" ? null : s; })()`, cell), &shown,
		chromedp.WithPollingTimeout(10*time.Second)))
	if shown != pw.Password {
		t.Fatalf("revealed %q, want the line's password", shown)
	}
	screenshot(t, ctx, "my-packages")
	hover(t, ctx, "")
	if got := text(t, ctx, cell); got != "••••••••" {
		t.Errorf("password still shown after leaving: %q", got)
	}
	// Keyboard: focusing the cell reveals too, leaving it hides.
	cell2 := fmt.Sprintf(`tr[data-line=%q] .pw`, ls[1].ID)
	run(t, ctx, "focus a password", chromedp.Focus(cell2, chromedp.ByQuery))
	run(t, ctx, "wait for the focused password", chromedp.Poll(fmt.Sprintf(`(() => { const s = document.querySelector(%q).textContent; return s === "••••••••" ? null : s; })()`, cell2), &shown,
		chromedp.WithPollingTimeout(10*time.Second)))
	run(t, ctx, "blur", chromedp.Blur(cell2, chromedp.ByQuery))
	if got := text(t, ctx, cell2); got != "••••••••" || len(shown) < 16 {
		t.Errorf("focused password %q, after blur %q", shown, got)
	}
	if n := reveals(t, d, acct); n != before+2 {
		t.Errorf("reveals audited: %d → %d, want 2 more", before, n)
	}

	// Add/Modify: one more France line, the World line deleted.
	click(t, ctx, `a.button[href$="/modify"]`)
	run(t, ctx, "add a France line",
		chromedp.SetValue(`input[name="add.fr-fixed-mobile"]`, "1", chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector('input[name="add.fr-fixed-mobile"]').dispatchEvent(new Event("input", {bubbles: true}))`, nil),
		chromedp.Click(fmt.Sprintf(`input[name="del.%s"]`, world.ID), chromedp.ByQuery))
	if fr, w := text(t, ctx, "#new-fr-fixed-mobile"), text(t, ctx, "#new-world"); fr != "4" || w != "0" {
		t.Errorf("new configuration column: France %s, World %s; want 4 and 0", fr, w)
	}
	screenshot(t, ctx, "add-modify")
	click(t, ctx, `form.modify button[type=submit]`)

	// The summary before confirmation.
	fr := text(t, ctx, `#changes tr[data-package="fr-fixed-mobile"]`)
	wd := text(t, ctx, `#changes tr[data-package="world"]`)
	if !strings.Contains(fr, "▲ from 3 to 4 France fixed & mobile €24.95") {
		t.Errorf("France row = %q", fr)
	}
	if !strings.Contains(wd, "▼ from 1 to 0 World fixed & mobile −€34.95") {
		t.Errorf("World row = %q", wd)
	}
	var upClass, downClass string
	run(t, ctx, "arrows",
		chromedp.AttributeValue(`#changes tr[data-package="fr-fixed-mobile"] td:first-child span`, "class", &upClass, nil, chromedp.ByQuery),
		chromedp.AttributeValue(`#changes tr[data-package="world"] td:first-child span`, "class", &downClass, nil, chromedp.ByQuery))
	var upColor, downColor string
	run(t, ctx, "arrow colours",
		chromedp.Evaluate(`getComputedStyle(document.querySelector("#changes span.up")).color`, &upColor),
		chromedp.Evaluate(`getComputedStyle(document.querySelector("#changes span.down")).color`, &downColor))
	if upClass != "up" || downClass != "down" || upColor != "rgb(20, 108, 46)" || downColor != "rgb(179, 38, 30)" {
		t.Errorf("arrows: %q %s, %q %s; want a green up and a red down", upClass, upColor, downClass, downColor)
	}
	body := text(t, ctx, "main")
	for _, want := range []string{
		"prorated from the order day to the end of the month: €24.95 instead of €49.90",
		"Amount before tax €24.95", "Tax €4.99", "Amount after tax €29.94", "Credit for the next bill €34.95",
		"Payment method Sandbox card (approve)",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("summary lacks %q:\n%s", want, body)
		}
	}
	screenshot(t, ctx, "summary")

	// Confirm: the lines table changes (4 France lines, no World one).
	click(t, ctx, "#confirm")
	var rows []string
	run(t, ctx, "read lines", chromedp.Evaluate(`[...document.querySelectorAll("#lines tbody tr")].map(r => r.children[1].textContent)`, &rows))
	if strings.Join(rows, ",") != "France fixed & mobile,France fixed & mobile,France fixed & mobile,France fixed & mobile" {
		t.Errorf("lines after confirm: %v", rows)
	}
	if got := text(t, ctx, "#total-lines"); got != "4" {
		t.Errorf("total lines after confirm = %q", got)
	}
	screenshot(t, ctx, "after-confirm")

	// The invoice page, then its PDF.
	click(t, ctx, ".flash a")
	inv := text(t, ctx, "main")
	for _, want := range []string{"Invoice 2026-000002", "Billing address Acme SARL", "16 November 2026 → 30 November 2026 (15 of 30 days)",
		"€49.90", "VAT 20 % €4.99", "Amount after tax €29.94", "Transaction: sbx_"} {
		if !strings.Contains(inv, want) {
			t.Errorf("invoice page lacks %q:\n%s", want, inv)
		}
	}
	var parties string
	run(t, ctx, "the invoice's layout", chromedp.Evaluate(`getComputedStyle(document.querySelector(".parties")).display`, &parties))
	if parties != "flex" {
		t.Errorf("issuer and customer side by side: display %q (inline styles are blocked by the CSP)", parties)
	}
	screenshot(t, ctx, "invoice")
	var pdf string
	run(t, ctx, "download the PDF", chromedp.Evaluate(`fetch(document.querySelector("#pdf").href).then(r => r.arrayBuffer()).then(b => btoa(String.fromCharCode(...new Uint8Array(b).slice(0, 5))))`, &pdf,
		func(p *cdpruntime.EvaluateParams) *cdpruntime.EvaluateParams { return p.WithAwaitPromise(true) }))
	if head, _ := base64.StdEncoding.DecodeString(pdf); string(head) != "%PDF-" {
		t.Errorf("PDF starts with %q", head)
	}
	click(t, ctx, `nav a[href$="/invoices"]`)
	if got := text(t, ctx, "#invoices tbody tr:first-child"); !strings.Contains(got, "2026-000002") || !strings.Contains(got, "€29.94") {
		t.Errorf("newest invoice row = %q", got)
	}
	screenshot(t, ctx, "invoices")

	// Get in touch files a service request, listed with its state; the
	// operator's answer appears beside it.
	click(t, ctx, `nav a[href$="/contact"]`)
	run(t, ctx, "fill the request", chromedp.SetValue("#kind", "other", chromedp.ByQuery),
		chromedp.SendKeys("#details", "Please call me about a fax line.", chromedp.ByQuery))
	click(t, ctx, "#send-request")
	if got := text(t, ctx, ".flash"); !strings.HasPrefix(got, "Thank you: your request is filed.") {
		t.Errorf("after sending: %q", got)
	}
	if got := text(t, ctx, "#request-list tbody tr:first-child"); !strings.Contains(got, "Something else Please call me about a fax line. Open") {
		t.Errorf("request row = %q", got)
	}
	reqs := accountRequests(t, d, acct)
	if len(reqs) != 1 || reqs[0].Kind != "other" || reqs[0].State != "open" {
		t.Fatalf("requests after Get in touch: %+v", reqs)
	}
	decideRequest(t, d, reqs[0].ID, "reject", map[string]any{"comment": "We do not sell fax lines."})
	run(t, ctx, "reload", chromedp.Reload())
	if got := text(t, ctx, "#request-list tbody tr:first-child"); !strings.Contains(got, "Rejected") || !strings.Contains(got, "Our team · Rejected: We do not sell fax lines.") {
		t.Errorf("rejected request row = %q", got)
	}
	// My packages' button asks for the cancellation of everything.
	click(t, ctx, `nav a[href="/portal/"]`)
	click(t, ctx, "#cancel-all button")
	// Both requests were filed at the same test-clock instant: find the row
	// by its kind rather than its place.
	if got := text(t, ctx, `//*[@id="request-list"]//tbody/tr[contains(., "Cancel all telephone packages")]`); !strings.Contains(got, "Open") {
		t.Errorf("cancellation request row = %q", got)
	}
	screenshot(t, ctx, "requests")
	click(t, ctx, `nav a[href="/portal/"]`)
	if got := text(t, ctx, "#cancel-all-requested"); !strings.HasPrefix(got, "You asked to cancel all telephone packages on 16 November 2026") {
		t.Errorf("My packages after the cancellation request: %q", got)
	}
}

// click clicks sel and waits until the page it leads to has loaded: the old
// document carries a marker the new one lacks.
func click(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	by := chromedp.ByQuery
	if strings.HasPrefix(sel, "//") {
		by = chromedp.BySearch // XPath
	}
	run(t, ctx, "click "+sel, chromedp.Evaluate(`window.pbxdOld = true`, nil), chromedp.Click(sel, by))
	deadline := time.Now().Add(15 * time.Second)
	for {
		var loaded bool
		err := chromedp.Run(ctx, chromedp.Evaluate(`window.pbxdOld === undefined && document.readyState === "complete"`, &loaded))
		if err == nil && loaded {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("click %s: no new page loaded (%v)", sel, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// unlabelled lists the page's form controls a screen reader could not name
// (no label, aria-label or text), and images without alt text.
func unlabelled(t *testing.T, ctx context.Context) []string {
	t.Helper()
	var bad []string
	run(t, ctx, "accessibility", chromedp.Evaluate(`[...document.querySelectorAll("input:not([type=hidden]), select, textarea, button, img, [role=button], [role=img]")]
		.filter(e => !(e.labels && e.labels.length) && !e.getAttribute("aria-label") && !e.getAttribute("alt") && !e.textContent.trim())
		.map(e => e.outerHTML.slice(0, 80))`, &bad))
	return bad
}

func reveals(t *testing.T, d *apptest.Daemon, acct string) int {
	t.Helper()
	var n int
	if err := d.App.Pool().QueryRow(t.Context(), `SELECT count(*) FROM audit_log WHERE action = 'line.password.reveal' AND account_id = $1 AND actor LIKE 'user:%'`, acct).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The plans page upgrade (cycle choice, Total = Price × Quantity, live),
// seats +/− with live prices, adding a card and making it the default, the
// French locale, and a member who cannot reach billing.
func TestPortalPlansSeatsCardsInChromium(t *testing.T) {
	t.Parallel()
	ctx := chrome(t)
	d := startAt(t, "2026-11-16T10:00:00+01:00")
	acct := d.CreateAccount(t, map[string]any{"payment_mode": "card", "name": "Beta SAS"})
	addMethod(t, d, acct, "sandbox_approve")
	var second struct{ ID string }
	d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/payment-methods", map[string]any{"gateway": "sandbox", "token": "sandbox_approve", "label": "Sandbox card (approve) #2"}).JSON(t, &second)
	d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 2})
	addUser(t, d, acct, "owner@beta.example", "owner")
	ls := lines(t, d, apptest.OperatorToken, acct)
	addUser(t, d, acct, "member@beta.example", "member", map[string]any{"lines": []string{ls[0].ID}})

	signIn(t, ctx, d, "owner@beta.example")
	click(t, ctx, `nav a[href$="/plans"]`)
	if got := text(t, ctx, `#plans tr[data-package="fr-fixed-mobile"]`); !strings.Contains(got, "France fixed & mobile 2 €49.90 monthly Active") {
		t.Errorf("France on the plans page = %q", got)
	}
	screenshot(t, ctx, "plans")
	// World, annual (15 % off): 12 × 69.90 × 0.85 = 712.98 per account.
	click(t, ctx, `#plans tr[data-package="world"] a.button`)
	run(t, ctx, "annual × 2", chromedp.Click("#cycle-annual", chromedp.ByQuery), chromedp.SetValue("#quantity", "2", chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector("#quantity").dispatchEvent(new Event("input", {bubbles: true}))`, nil))
	if got := text(t, ctx, `label[for="cycle-annual"]`); !strings.Contains(got, "€712.98") || !strings.Contains(got, "15 % off") {
		t.Errorf("annual offer = %q", got)
	}
	if got := text(t, ctx, "#unit"); got != "€712.98" {
		t.Errorf("price per account = %q, want €712.98", got)
	}
	if got := text(t, ctx, "#total"); got != "€1,425.96" {
		t.Errorf("live total = %q, want €1,425.96 (712.98 × 2)", got)
	}
	screenshot(t, ctx, "upgrade")
	click(t, ctx, `#upgrade button[type=submit]`)
	if got := text(t, ctx, `#changes tr[data-package="world"]`); !strings.Contains(got, "from 0 to 2 World fixed & mobile") {
		t.Errorf("upgrade summary = %q", got)
	}
	// Check and choose the payment method, then pay.
	run(t, ctx, "choose the second card", chromedp.SetValue("#pm", second.ID, chromedp.ByQuery))
	click(t, ctx, "#pay-with button")
	if got := text(t, ctx, "#payment"); !strings.HasPrefix(got, "Sandbox card (approve) #2") {
		t.Errorf("payment method after choosing = %q", got)
	}
	click(t, ctx, "#confirm")
	if s := subscriptionsOf(t, d, acct)["world"]; s.Quantity != 2 || s.Cycle != "annual" {
		t.Errorf("World after the upgrade = %+v", s)
	}

	// Seats: + once, the live price follows, then review and confirm.
	click(t, ctx, `nav a[href$="/billing"]`)
	run(t, ctx, "one seat more", chromedp.Click(`button[data-step="1"][data-target="seats-fr-fixed-mobile"]`, chromedp.ByQuery))
	var seats string
	run(t, ctx, "seats", chromedp.Value("#seats-fr-fixed-mobile", &seats, chromedp.ByQuery))
	if got := text(t, ctx, `output[data-total-for="seats-fr-fixed-mobile"]`); seats != "3" || got != "€149.70" {
		t.Errorf("after +: %s seats, live price %q; want 3 and €149.70", seats, got)
	}
	run(t, ctx, "minus then plus", chromedp.Click(`button[data-step="-1"][data-target="seats-fr-fixed-mobile"]`, chromedp.ByQuery))
	if got := text(t, ctx, `output[data-total-for="seats-fr-fixed-mobile"]`); got != "€99.80" {
		t.Errorf("after −: live price %q, want €99.80", got)
	}
	run(t, ctx, "plus", chromedp.Click(`button[data-step="1"][data-target="seats-fr-fixed-mobile"]`, chromedp.ByQuery))
	screenshot(t, ctx, "billing-upgrade")
	click(t, ctx, `#seats button[type=submit]`)
	if got := text(t, ctx, `#changes tr[data-package="fr-fixed-mobile"]`); !strings.Contains(got, "from 2 to 3") || !strings.Contains(got, "€24.95") {
		t.Errorf("seat summary = %q", got)
	}
	click(t, ctx, "#confirm")
	if n := len(lines(t, d, apptest.OperatorToken, acct)); n != 5 {
		t.Errorf("%d lines after +1 seat, want 5", n)
	}

	// Cards: add one, make it the default.
	click(t, ctx, `nav a[href$="/cards"]`)
	run(t, ctx, "card label", chromedp.SendKeys("#label", "Visa •••• 4242, 12/2028", chromedp.ByQuery))
	click(t, ctx, `#add-card button[type=submit]`)
	click(t, ctx, `//tr[contains(., "4242")]//button[contains(@class, "make-default")]`)
	if got := text(t, ctx, "#cards tr:first-child"); !strings.Contains(got, "Visa •••• 4242, 12/2028 Used for recurring billing") {
		t.Errorf("default card row = %q", got)
	}
	screenshot(t, ctx, "cards")
	click(t, ctx, `nav a[href$="/account"]`)
	if got := text(t, ctx, "#default-card"); got != "Visa •••• 4242, 12/2028" {
		t.Errorf("account summary's card = %q", got)
	}
	if got := text(t, ctx, `section[data-package="fr-fixed-mobile"] .plan-sentence`); got != "You are on the France fixed & mobile plan for €49.90 per line per month, billed monthly. You are paying a total of €149.70 per month for 3 lines." {
		t.Errorf("plan sentence = %q", got)
	}
	screenshot(t, ctx, "account-summary")

	// French: words, amounts and dates follow the user's locale.
	run(t, ctx, "français", chromedp.SetValue("#lang", "fr", chromedp.ByQuery))
	click(t, ctx, `header form button[type=submit]`)
	if got := text(t, ctx, `section[data-package="world"] .plan-sentence`); !strings.Contains(got, "Vous avez l’offre World fixed & mobile à 59,42 € par ligne et par mois, facturée annuellement.") {
		t.Errorf("French plan sentence = %q", got)
	}
	screenshot(t, ctx, "account-summary-fr")

	// A member sees their line only and cannot reach billing.
	click(t, ctx, `form[action="/portal/logout"] button`)
	signIn(t, ctx, d, "member@beta.example")
	var navLinks []string
	run(t, ctx, "member nav", chromedp.Evaluate(`[...document.querySelectorAll("nav a")].map(a => a.textContent)`, &navLinks))
	if strings.Join(navLinks, ",") != "My packages,Get in touch" {
		t.Errorf("member nav = %v", navLinks)
	}
	var rowCount int
	run(t, ctx, "member lines", chromedp.Evaluate(`document.querySelectorAll("#lines tbody tr").length`, &rowCount))
	if rowCount != 1 {
		t.Errorf("member sees %d lines, want 1", rowCount)
	}
	run(t, ctx, "member billing", chromedp.Navigate(d.URL+"/portal/billing"), chromedp.WaitVisible(".error", chromedp.ByQuery))
	if got := text(t, ctx, ".error"); got != "Only the account's owner or an administrator can do this." {
		t.Errorf("member on billing: %q", got)
	}
	screenshot(t, ctx, "member-forbidden")
}
