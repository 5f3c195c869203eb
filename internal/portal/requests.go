package portal

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/provisioning"
)

// requestService is what the portal uses of the service requests and
// scheduled changes: the same methods the JSON API calls.
type requestService interface {
	CreateRequest(ctx context.Context, actor, accountID, kind string, details json.RawMessage) (provisioning.ServiceRequest, error)
	Request(ctx context.Context, id, accountScope string) (provisioning.ServiceRequest, error)
	Requests(ctx context.Context, accountID, state string) ([]provisioning.ServiceRequest, error)
	CommentRequest(ctx context.Context, actor, id, accountScope, text string) (provisioning.ServiceRequest, error)
	ApproveRequest(ctx context.Context, actor, id, comment, effective string) (provisioning.ServiceRequest, error)
	RejectRequest(ctx context.Context, actor, id, comment string) (provisioning.ServiceRequest, error)
	PendingScheduled(ctx context.Context, accountID string) ([]provisioning.ScheduledChange, error)
	CancelScheduled(ctx context.Context, actor, accountID, id string) (provisioning.ScheduledChange, error)
}

func (p *Portal) requestRoutes() {
	p.route("GET", "/contact", false, p.contactForm)
	p.route("POST", "/contact", false, p.contact)
	p.route("POST", "/requests/{req}/comment", false, p.commentRequest)
	p.route("POST", "/scheduled/{sc}/cancel", true, p.cancelScheduled)
	p.mux.Handle("GET /portal/operator/requests", p.operatorOnly(p.openRequests))
	p.mux.Handle("POST /portal/operator/requests/{req}/{decision}", p.operatorOnly(p.decideRequest))
}

// memberKinds are the requests a member may file: members neither buy nor
// cancel, so only a free-text request.
var memberKinds = []string{"other"}

// requestView is a request as the pages show it.
type requestView struct {
	provisioning.ServiceRequest
	Summary     string // the details in words
	AccountName string // on the operator's list
}

type contactPage struct {
	Kinds    []string
	Kind     string
	Details  string
	Packages []provisioning.PackageView
	Form     url.Values
	Sent     bool
	Error    string
	Requests []requestView
}

func (p *Portal) kindsFor(q *rq) []string {
	if q.canManage() {
		return provisioning.RequestKinds
	}
	return memberKinds
}

// contactData fills the Get in touch page: the form and the account's
// requests (a member sees the ones they filed).
func (p *Portal) contactData(q *rq, f url.Values) (contactPage, error) {
	cp := contactPage{Kinds: p.kindsFor(q), Kind: f.Get("kind"), Details: f.Get("details"), Form: f}
	pkgs, err := p.o.Provisioning.MyPackages(q.ctx(), q.acct.ID)
	if err != nil {
		return cp, err
	}
	for _, v := range pkgs {
		if v.Quantity > 0 {
			cp.Packages = append(cp.Packages, v)
		}
	}
	list, err := p.o.Provisioning.Requests(q.ctx(), q.acct.ID, "")
	if err != nil {
		return cp, err
	}
	for _, r := range list {
		if q.canManage() || r.CreatedBy == q.actor() {
			cp.Requests = append(cp.Requests, requestView{ServiceRequest: r, Summary: detailsSummary(r.Details)})
		}
	}
	return cp, nil
}

func (p *Portal) contactForm(q *rq) error {
	cp, err := p.contactData(q, q.r.URL.Query())
	if err != nil {
		return err
	}
	cp.Sent = q.r.URL.Query().Get("sent") != ""
	return p.render(q, "contact", cp)
}

// contact files a "Get in touch" request through the provisioning service,
// as POST /v1/accounts/{id}/requests does. The service checks the details
// per kind; a refusal shows the form again with its message (422).
func (p *Portal) contact(q *rq) error {
	f := q.r.PostForm
	kind := f.Get("kind")
	details, problem := detailsFromForm(kind, f)
	if problem == nil && !slices.Contains(p.kindsFor(q), kind) {
		problem = fault.New(fault.Invalid, "kind", "kind must be one of %s", strings.Join(p.kindsFor(q), ", "))
	}
	if problem == nil {
		_, problem = p.o.Provisioning.CreateRequest(q.ctx(), q.actor(), q.acct.ID, kind, details)
	}
	if fe, ok := fault.As(problem); ok && fe.Kind == fault.Invalid {
		cp, err := p.contactData(q, f)
		if err != nil {
			return err
		}
		cp.Error = fe.Error()
		p.renderStatus(q.w, q.r, q, http.StatusUnprocessableEntity, "contact", cp)
		return nil
	}
	if problem != nil {
		return problem
	}
	http.Redirect(q.w, q.r, q.base+"/contact?sent=1", http.StatusSeeOther)
	return nil
}

// detailsFromForm turns the Get in touch form into a request's details:
// "details" is the text of an "other" request and the reason of the rest;
// the other fields are read only for the kinds that take them.
func detailsFromForm(kind string, f url.Values) (json.RawMessage, error) {
	if err := checkFormUTF8(f); err != nil {
		return nil, err
	}
	text := strings.TrimSpace(f.Get("details"))
	if len(text) > 4000 {
		return nil, fault.New(fault.Invalid, "details", "details are at most 4000 characters")
	}
	d := map[string]any{}
	if kind == "other" {
		d["text"] = text
	} else if text != "" {
		d["reason"] = text
	}
	if err := addSubject(d, kind, f); err != nil {
		return nil, err
	}
	addKindFields(d, kind, f)
	return json.Marshal(d)
}

// checkFormUTF8 refuses a form with a value that is not valid UTF-8.
func checkFormUTF8(f url.Values) error {
	for k, vs := range f {
		for _, v := range vs {
			if !utf8.ValidString(v) {
				return fault.New(fault.Invalid, k, "%s is not valid UTF-8 text", k)
			}
		}
	}
	return nil
}

// addSubject adds to d what a request of kind is about: the package and
// quantity of a downgrade or add-on removal, the numbers of a number
// removal or port.
func addSubject(d map[string]any, kind string, f url.Values) error {
	switch kind {
	case "downgrade", "remove_addon":
		if pkg := f.Get("package"); pkg != "" {
			n, err := strconv.Atoi(strings.TrimSpace(f.Get("quantity")))
			if err != nil || n < 0 || n > provisioning.MaxQuantity {
				return fault.New(fault.Invalid, "quantity", "quantity must be a number from 0 to %d", provisioning.MaxQuantity)
			}
			d["items"] = []map[string]any{{"package": pkg, "quantity": n}}
		}
	case "remove_number", "port_in", "port_out":
		if nums := strings.FieldsFunc(f.Get("numbers"), func(r rune) bool { return r == ',' || r == '\n' || r == ';' || r == '\r' }); len(nums) > 0 {
			for i := range nums {
				nums[i] = strings.TrimSpace(nums[i])
			}
			d["numbers"] = nums
		}
	}
	return nil
}

// addKindFields adds to d the fields only a request of kind has: the
// carriers of a port, the new owner of an ownership change.
func addKindFields(d map[string]any, kind string, f url.Values) {
	switch kind {
	case "port_in":
		for _, k := range []string{"country", "losing_carrier", "carrier_account"} {
			if v := strings.TrimSpace(f.Get(k)); v != "" {
				d[k] = v
			}
		}
	case "port_out":
		if v := strings.TrimSpace(f.Get("gaining_carrier")); v != "" {
			d["gaining_carrier"] = v
		}
	case "change_owner":
		owner := map[string]string{}
		for _, k := range []string{"name", "email"} {
			if v := strings.TrimSpace(f.Get("new_owner_" + k)); v != "" {
				owner[k] = v
			}
		}
		if len(owner) > 0 {
			d["new_owner"] = owner
		}
	}
}

// detailsSummary renders a request's details as one line of text.
func detailsSummary(raw json.RawMessage) string {
	var d struct {
		Reason string `json:"reason"`
		Text   string `json:"text"`
		Items  []struct {
			Package  string
			Quantity int
		} `json:"items"`
		Numbers  []string          `json:"numbers"`
		NewOwner map[string]string `json:"new_owner"`
	}
	_ = json.Unmarshal(raw, &d)
	var parts []string
	for _, it := range d.Items {
		parts = append(parts, it.Package+" → "+strconv.Itoa(it.Quantity))
	}
	if len(d.Numbers) > 0 {
		parts = append(parts, strings.Join(d.Numbers, ", "))
	}
	for _, k := range []string{"name", "email"} {
		if v := d.NewOwner[k]; v != "" {
			parts = append(parts, v)
		}
	}
	for _, s := range []string{d.Text, d.Reason} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, " · ")
}

// commentRequest adds the customer's (or the operator's) message to one of
// the account's requests.
func (p *Portal) commentRequest(q *rq) error {
	id := q.r.PathValue("req")
	r, err := p.o.Provisioning.Request(q.ctx(), id, q.acct.ID)
	if err != nil {
		return err
	}
	if !q.canManage() && r.CreatedBy != q.actor() {
		return fault.New(fault.NotFound, "", "request not found")
	}
	if _, err := p.o.Provisioning.CommentRequest(q.ctx(), q.actor(), id, q.acct.ID, q.r.PostFormValue("text")); err != nil {
		return err
	}
	http.Redirect(q.w, q.r, q.base+"/contact#request-"+id, http.StatusSeeOther)
	return nil
}

// cancelScheduled cancels a change waiting for the period end.
func (p *Portal) cancelScheduled(q *rq) error {
	if _, err := p.o.Provisioning.CancelScheduled(q.ctx(), q.actor(), q.acct.ID, q.r.PathValue("sc")); err != nil {
		return err
	}
	back := q.base + "/"
	if q.r.PostFormValue("back") == "account" {
		back = q.base + "/account"
	}
	http.Redirect(q.w, q.r, back+"?cancelled=1", http.StatusSeeOther)
	return nil
}

type requestsPage struct {
	State    string
	Requests []requestView
	Error    string
}

// openRequests is the operator's queue: open requests of every account,
// each with approve and reject forms.
func (p *Portal) openRequests(w http.ResponseWriter, r *http.Request, q *rq) error {
	return p.renderRequests(w, r, q, http.StatusOK, "")
}

func (p *Portal) renderRequests(w http.ResponseWriter, r *http.Request, q *rq, status int, problem string) error {
	state := r.URL.Query().Get("state")
	if state == "" {
		state = "open"
	}
	list, err := p.o.Provisioning.Requests(r.Context(), "", state)
	if err != nil {
		return err
	}
	accts, err := p.o.Provisioning.Accounts(r.Context())
	if err != nil {
		return err
	}
	names := map[string]string{}
	for _, a := range accts {
		names[a.ID] = a.Name
	}
	pg := requestsPage{State: state, Error: problem}
	for _, sr := range list {
		pg.Requests = append(pg.Requests, requestView{ServiceRequest: sr, Summary: detailsSummary(sr.Details), AccountName: names[sr.AccountID]})
	}
	p.renderStatus(w, r, q, status, "requests", pg)
	return nil
}

// decideRequest approves or rejects a request (with the operator's comment)
// through the service: an approval confirms the change order it implies.
func (p *Portal) decideRequest(w http.ResponseWriter, r *http.Request, q *rq) error {
	if !p.csrfOK(r, q.s) {
		p.renderStatus(w, r, q, http.StatusForbidden, "error", errorPage{Message: "csrf"})
		return nil
	}
	id, comment := r.PathValue("req"), strings.TrimSpace(r.PostFormValue("comment"))
	var err error
	switch r.PathValue("decision") {
	case "approve":
		_, err = p.o.Provisioning.ApproveRequest(r.Context(), q.actor(), id, comment, r.PostFormValue("effective"))
	case "reject":
		_, err = p.o.Provisioning.RejectRequest(r.Context(), q.actor(), id, comment)
	default:
		return fault.New(fault.NotFound, "", "no such decision")
	}
	if fe, ok := fault.As(err); ok && (fe.Kind == fault.Invalid || fe.Kind == fault.Conflict) {
		status := http.StatusUnprocessableEntity
		if fe.Kind == fault.Conflict {
			status = http.StatusConflict
		}
		return p.renderRequests(w, r, q, status, fe.Error())
	}
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/portal/operator/requests", http.StatusSeeOther)
	return nil
}

func init() {
	// args passes several values to a template: {{template "x" (args $ .ID)}}.
	funcs["args"] = func(v ...any) []any { return v }
}
