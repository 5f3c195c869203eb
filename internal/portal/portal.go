// Package portal is the customer portal pbxd serves under /portal/: account
// users sign in and see their packages and lines, change plans, read
// invoices, manage cards; the operator signs in with the operator token and
// sees every account. Pages are server-rendered html/template with a little
// vanilla JavaScript (password reveal on hover, live prices), all embedded in
// the binary: nothing to build, and every page works without JavaScript.
//
// The portal holds no business rules: every read and action goes through the
// same provisioning and billing services as the JSON API.
package portal

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/pbxd/pbxd/billing"
	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/userdb"
	"github.com/pbxd/pbxd/internal/users"
	"github.com/pbxd/pbxd/provisioning"
)

// Provisioning is what the portal uses of the provisioning service.
type Provisioning interface {
	Account(ctx context.Context, id string) (provisioning.Account, error)
	Accounts(ctx context.Context) ([]provisioning.Account, error)
	Packages(ctx context.Context, withRetired bool) ([]provisioning.Package, error)
	MyPackages(ctx context.Context, accountID string) ([]provisioning.PackageView, error)
	RevealPassword(ctx context.Context, actor, accountID, lineID string) (string, error)
	PreviewChange(ctx context.Context, accountID string, req provisioning.ChangeRequest) (provisioning.Preview, error)
	ChangeOrder(ctx context.Context, id string) (provisioning.Preview, string, error)
	ConfirmChange(ctx context.Context, actor, changeID, accountScope string) (provisioning.ConfirmResult, error)
	SetAccountStatus(ctx context.Context, actor, accountID string, suspend bool) (provisioning.Account, error)
	SetSeatPreference(ctx context.Context, actor, accountID, pref string) (provisioning.Account, error)
	requestService
	numberService
}

// Billing is what the portal uses of the billing service.
type Billing interface {
	Summary(ctx context.Context, accountID string) (billing.Summary, error)
	Invoices(ctx context.Context, accountID string) ([]billing.InvoiceSummary, error)
	Invoice(ctx context.Context, id, accountScope string) (billing.StoredInvoice, error)
	PaymentMethods(ctx context.Context, accountID string) ([]billing.PaymentMethod, error)
	AddPaymentMethod(ctx context.Context, actor, accountID string, n billing.NewPaymentMethod) (billing.PaymentMethod, error)
	DeletePaymentMethod(ctx context.Context, actor, accountID, id string) error
	SetDefaultPaymentMethod(ctx context.Context, actor, accountID, id string) error
}

// Options wires the portal.
type Options struct {
	DB           *store.DB
	Users        *users.Service
	Provisioning Provisioning
	Billing      Billing
	// PeriodPrice is the discounted unit price per period (the biller's).
	PeriodPrice func(pkg provisioning.Package, cycle string) int64
	Clock       interface{ Now() time.Time }
	// OperatorToken returns the operator token in force (it reloads).
	OperatorToken func() string
	Logger        *slog.Logger
	// SessionTTL bounds a session's life (default 8 hours).
	SessionTTL time.Duration
}

// Portal is the /portal/ handler.
type Portal struct {
	o        Options
	log      *slog.Logger
	mux      *http.ServeMux
	sessions *sessions
	bySource *throttle
	byEmail  *throttle
	pages    map[string]*template.Template
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

const cookieName = "pbxd_portal"

// New builds the portal.
func New(o Options) (*Portal, error) {
	if o.SessionTTL == 0 {
		o.SessionTTL = 8 * time.Hour
	}
	p := &Portal{o: o, log: o.Logger, mux: http.NewServeMux(),
		sessions: &sessions{q: userdb.New(o.DB), ttl: o.SessionTTL},
		// 20 failures per source or 5 per email in 15 minutes block further
		// attempts until the oldest failure leaves the window.
		bySource: newThrottle(20, 15*time.Minute),
		byEmail:  newThrottle(5, 15*time.Minute),
		pages:    map[string]*template.Template{},
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" || strings.HasPrefix(base, "_") {
			continue // the layout and partials (_*.html) go with every page
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/_*.html", n)
		if err != nil {
			return nil, fmt.Errorf("portal template %s: %w", n, err)
		}
		p.pages[base] = t
	}
	static, _ := fs.Sub(staticFS, "static")
	p.mux.Handle("GET /portal/static/", http.StripPrefix("/portal/static/", staticHeaders(http.FileServerFS(static))))
	p.mux.HandleFunc("GET /portal/login", p.loginForm)
	p.mux.HandleFunc("POST /portal/login", p.login)
	p.mux.HandleFunc("POST /portal/logout", p.logout)
	p.mux.HandleFunc("GET /portal/operator", p.operatorForm)
	p.mux.HandleFunc("POST /portal/operator", p.operatorLogin)
	p.mux.Handle("GET /portal/operator/accounts", p.operatorOnly(p.accountsList))
	p.routes()
	p.mux.HandleFunc("/portal/", func(w http.ResponseWriter, r *http.Request) {
		p.renderStatus(w, r, nil, http.StatusNotFound, "error", errorPage{Message: "notfound"})
	})
	return p, nil
}

func staticHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	})
}

// ServeHTTP serves /portal/ with security headers on every answer.
func (p *Portal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	p.mux.ServeHTTP(w, r)
}

// rq is one signed-in request.
type rq struct {
	w    http.ResponseWriter
	r    *http.Request
	s    *session
	acct provisioning.Account
	base string // "/portal" or "/portal/accounts/{id}" for the operator
	lang string
	loc  *time.Location
}

func (q *rq) ctx() context.Context { return q.r.Context() }

// actor names the signed-in person in the audit log.
func (q *rq) actor() string {
	if q.s.Operator {
		return "operator"
	}
	return "user:" + q.s.User.ID
}

// canManage: owners, admins and the operator buy and change.
func (q *rq) canManage() bool { return q.s.Operator || q.s.User.CanManage() }

type handler func(q *rq) error

// errForbidden is answered 403 with an explanation.
var errForbidden = errors.New("forbidden")

// route registers h for the signed-in customer ("/portal/...") and for the
// operator viewing one account ("/portal/accounts/{acct}/...").
func (p *Portal) route(method, path string, manage bool, h handler) {
	for _, prefix := range []string{"/portal", "/portal/accounts/{acct}"} {
		pat := prefix + path
		if path == "/" {
			pat = prefix + "/{$}"
		}
		p.mux.Handle(method+" "+pat, p.wrap(manage, h))
	}
}

func (p *Portal) currentSession(r *http.Request) (*session, error) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return nil, nil
	}
	s, ok, err := p.sessions.lookup(r.Context(), c.Value, p.o.Clock.Now())
	if err != nil || !ok {
		return nil, err
	}
	return s, nil
}

func (p *Portal) wrap(manage bool, h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := p.currentSession(r)
		if err != nil {
			p.fail(w, r, nil, err)
			return
		}
		if s == nil {
			if _, had := r.Cookie(cookieName); had == nil {
				http.Redirect(w, r, "/portal/login?expired=1", http.StatusSeeOther)
				return
			}
			http.Redirect(w, r, "/portal/login", http.StatusSeeOther)
			return
		}
		q := &rq{w: w, r: r, s: s, lang: "en", base: "/portal"}
		if !s.Operator {
			q.lang = s.User.Locale
		}
		acctID := r.PathValue("acct")
		switch {
		case acctID != "" && !s.Operator:
			// Another account's URL (or this account's operator URL) is not
			// found for a customer: existence must not leak.
			p.renderStatus(w, r, q, http.StatusNotFound, "error", errorPage{Message: "notfound"})
			return
		case acctID == "" && s.Operator:
			http.Redirect(w, r, "/portal/operator/accounts", http.StatusSeeOther)
			return
		case acctID == "":
			acctID = s.User.AccountID
		default:
			q.base = "/portal/accounts/" + acctID
		}
		q.acct, err = p.o.Provisioning.Account(r.Context(), acctID)
		if err != nil {
			p.fail(w, r, q, err)
			return
		}
		q.loc = q.acct.Location()
		if r.Method == http.MethodPost && !p.csrfOK(r, s) {
			p.renderStatus(w, r, q, http.StatusForbidden, "error", errorPage{Message: "csrf"})
			return
		}
		if manage && !q.canManage() {
			p.renderStatus(w, r, q, http.StatusForbidden, "error", errorPage{Message: "forbidden"})
			return
		}
		if err := h(q); err != nil {
			p.fail(w, r, q, err)
		}
	})
}

// csrfOK checks the form's (or, for fetch, the header's) token against the
// session's, in constant time.
func (p *Portal) csrfOK(r *http.Request, s *session) bool {
	tok := r.Header.Get("X-CSRF-Token")
	if tok == "" {
		tok = r.PostFormValue("csrf")
	}
	return tok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.CSRF)) == 1
}

// fail answers an error as a page: domain faults with their message, the
// rest as a logged 500.
func (p *Portal) fail(w http.ResponseWriter, r *http.Request, q *rq, err error) {
	if errors.Is(err, errForbidden) {
		p.renderStatus(w, r, q, http.StatusForbidden, "error", errorPage{Message: "forbidden"})
		return
	}
	if fe, ok := fault.As(err); ok {
		switch fe.Kind {
		case fault.NotFound:
			p.renderStatus(w, r, q, http.StatusNotFound, "error", errorPage{Message: "notfound"})
		case fault.Conflict:
			p.renderStatus(w, r, q, http.StatusConflict, "error", errorPage{Detail: fe.Error()})
		case fault.PaymentRequired:
			p.renderStatus(w, r, q, http.StatusPaymentRequired, "error", errorPage{Detail: fe.Error()})
		default:
			p.renderStatus(w, r, q, http.StatusUnprocessableEntity, "error", errorPage{Detail: fe.Error()})
		}
		return
	}
	p.log.Error("portal", "method", r.Method, "path", r.URL.Path, "err", err)
	p.renderStatus(w, r, q, http.StatusInternalServerError, "error", errorPage{Message: "error"})
}

type errorPage struct {
	Message string // a translation key
	Detail  string // a domain error's own message (English)
}

// view is what every template gets.
type view struct {
	Q       *rq
	Lang    string
	Base    string
	CSRF    string
	Title   string
	Signed  bool
	Manage  bool
	Op      bool
	Account provisioning.Account
	User    users.User
	Path    string
	Data    any
}

// T translates key.
func (v view) T(key string) string { return tr(v.Lang, key) }

// Tf translates a format key and fills it.
func (v view) Tf(key string, args ...any) string { return fmt.Sprintf(tr(v.Lang, key), args...) }

// Money formats minor units per locale.
func (v view) Money(minor int64, currency string) string { return money(v.Lang, minor, currency) }

// Date formats a time as a day in the account's zone.
func (v view) Date(t time.Time) string {
	loc := time.UTC
	if v.Q != nil && v.Q.loc != nil {
		loc = v.Q.loc
	}
	return date(v.Lang, t, loc)
}

// LastDay formats the inclusive last day of a [start, end) period.
func (v view) LastDay(end billing.Date) string { return billingDate(v.Lang, end.AddDays(-1)) }

// Day formats a billing date.
func (v view) Day(d billing.Date) string { return billingDate(v.Lang, d) }

var funcs = template.FuncMap{
	"mul":  func(a int64, b int) int64 { return a * int64(b) },
	"list": func(s ...string) []string { return s },
}

func (p *Portal) render(q *rq, page string, data any) error {
	p.renderStatus(q.w, q.r, q, http.StatusOK, page, data)
	return nil
}

func (p *Portal) renderStatus(w http.ResponseWriter, r *http.Request, q *rq, status int, page string, data any) {
	v := view{Lang: "en", Base: "/portal", Data: data, Title: page, Path: r.URL.Path}
	if q == nil {
		if s, _ := p.currentSession(r); s != nil {
			q = &rq{w: w, r: r, s: s, lang: "en", base: "/portal"}
			if !s.Operator {
				q.lang = s.User.Locale
			}
		}
	}
	if q != nil {
		v.Q, v.Lang, v.Base, v.CSRF, v.Signed, v.Manage, v.Op = q, q.lang, q.base, q.s.CSRF, true, q.canManage(), q.s.Operator
		v.Account, v.User = q.acct, q.s.User
	} else if l := r.URL.Query().Get("lang"); l == "fr" {
		v.Lang = "fr"
	}
	t, ok := p.pages[page]
	if !ok {
		http.Error(w, "no page "+page, http.StatusInternalServerError)
		return
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", v); err != nil {
		p.log.Error("portal render", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// sourceOf is the client address used for throttling.
func sourceOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (p *Portal) setCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: value, Path: "/portal/", MaxAge: maxAge,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
}

// Login CSRF: before a session exists the form carries a token that must
// equal a cookie set with the form (double submit), so another site cannot
// sign a browser in to an account of its choosing.
const loginCSRFCookie = "pbxd_login_csrf"

type loginPage struct {
	Email     string
	Error     string
	LoginCSRF string
	Action    string
}

func (p *Portal) loginCSRF(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(loginCSRFCookie); err == nil && len(c.Value) >= 32 {
		return c.Value
	}
	tok := randomToken()
	http.SetCookie(w, &http.Cookie{Name: loginCSRFCookie, Value: tok, Path: "/portal/", HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	return tok
}

func loginCSRFOK(r *http.Request) bool {
	c, err := r.Cookie(loginCSRFCookie)
	f := r.PostFormValue("csrf")
	return err == nil && f != "" && subtle.ConstantTimeCompare([]byte(c.Value), []byte(f)) == 1
}

func (p *Portal) loginForm(w http.ResponseWriter, r *http.Request) {
	lp := loginPage{LoginCSRF: p.loginCSRF(w, r), Action: "/portal/login"}
	if r.URL.Query().Get("expired") != "" {
		lp.Error = "login.expired"
	}
	p.renderStatus(w, r, nil, http.StatusOK, "login", lp)
}

// login signs a user in. A wrong password and an unknown email get the same
// 401 page after the same amount of work.
func (p *Portal) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	email := strings.ToLower(strings.TrimSpace(r.PostFormValue("email")))
	lp := loginPage{Email: email, LoginCSRF: p.loginCSRF(w, r), Action: "/portal/login"}
	if !loginCSRFOK(r) {
		lp.Error = "csrf"
		p.renderStatus(w, r, nil, http.StatusForbidden, "login", lp)
		return
	}
	now, src, key := p.o.Clock.Now(), "src:"+sourceOf(r), "email:"+email
	if p.bySource.blocked(src, now) || p.byEmail.blocked(key, now) {
		lp.Error = "login.throttled"
		w.Header().Set("Retry-After", "900")
		p.renderStatus(w, r, nil, http.StatusTooManyRequests, "login", lp)
		return
	}
	u, ok, err := p.o.Users.Authenticate(r.Context(), email, r.PostFormValue("password"))
	if err != nil {
		p.fail(w, r, nil, err)
		return
	}
	if !ok {
		p.bySource.fail(src, now)
		p.byEmail.fail(key, now)
		p.log.Info("portal sign-in failed", "source", sourceOf(r))
		lp.Error = "login.failed"
		p.renderStatus(w, r, nil, http.StatusUnauthorized, "login", lp)
		return
	}
	p.byEmail.reset(key)
	tok, err := p.sessions.create(r.Context(), u.ID, now)
	if err != nil {
		p.fail(w, r, nil, err)
		return
	}
	p.audit(r.Context(), "user:"+u.ID, u.AccountID, "portal.signed_in", u.ID, map[string]any{"source": sourceOf(r)})
	p.setCookie(w, r, tok, int(p.o.SessionTTL.Seconds()))
	http.Redirect(w, r, "/portal/", http.StatusSeeOther)
}

func (p *Portal) logout(w http.ResponseWriter, r *http.Request) {
	s, err := p.currentSession(r)
	if err == nil && s != nil {
		if !p.csrfOK(r, s) {
			p.renderStatus(w, r, nil, http.StatusForbidden, "error", errorPage{Message: "csrf"})
			return
		}
		_ = p.sessions.end(r.Context(), s)
	}
	p.setCookie(w, r, "", -1)
	http.Redirect(w, r, "/portal/login", http.StatusSeeOther)
}

func (p *Portal) operatorForm(w http.ResponseWriter, r *http.Request) {
	p.renderStatus(w, r, nil, http.StatusOK, "operator", loginPage{LoginCSRF: p.loginCSRF(w, r), Action: "/portal/operator"})
}

func (p *Portal) operatorLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	lp := loginPage{LoginCSRF: p.loginCSRF(w, r), Action: "/portal/operator"}
	if !loginCSRFOK(r) {
		lp.Error = "csrf"
		p.renderStatus(w, r, nil, http.StatusForbidden, "operator", lp)
		return
	}
	now, src := p.o.Clock.Now(), "src:"+sourceOf(r)
	if p.bySource.blocked(src, now) || p.byEmail.blocked("operator", now) {
		lp.Error = "login.throttled"
		p.renderStatus(w, r, nil, http.StatusTooManyRequests, "operator", lp)
		return
	}
	a, b := sha256.Sum256([]byte(r.PostFormValue("token"))), sha256.Sum256([]byte(p.o.OperatorToken()))
	if p.o.OperatorToken() == "" || subtle.ConstantTimeCompare(a[:], b[:]) != 1 {
		p.bySource.fail(src, now)
		p.byEmail.fail("operator", now)
		lp.Error = "login.failed"
		p.renderStatus(w, r, nil, http.StatusUnauthorized, "operator", lp)
		return
	}
	tok, err := p.sessions.create(r.Context(), "", now)
	if err != nil {
		p.fail(w, r, nil, err)
		return
	}
	p.audit(r.Context(), "operator", "", "portal.operator_signed_in", "", map[string]any{"source": sourceOf(r)})
	p.setCookie(w, r, tok, int(p.o.SessionTTL.Seconds()))
	http.Redirect(w, r, "/portal/operator/accounts", http.StatusSeeOther)
}

func (p *Portal) operatorOnly(h func(w http.ResponseWriter, r *http.Request, q *rq) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := p.currentSession(r)
		if err != nil {
			p.fail(w, r, nil, err)
			return
		}
		if s == nil || !s.Operator {
			http.Redirect(w, r, "/portal/operator", http.StatusSeeOther)
			return
		}
		q := &rq{w: w, r: r, s: s, lang: "en", base: "/portal", loc: time.UTC}
		if err := h(w, r, q); err != nil {
			p.fail(w, r, q, err)
		}
	})
}
