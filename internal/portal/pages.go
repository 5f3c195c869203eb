package portal

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/pbxd/pbxd/billing"
	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/users"
	"github.com/pbxd/pbxd/provisioning"
)

func (p *Portal) routes() {
	p.route("GET", "/", false, p.myPackages)
	p.route("GET", "/lines/{line}/password", false, p.revealPassword)
	p.route("GET", "/modify", true, p.modifyForm)
	p.route("POST", "/modify", true, p.modify)
	p.route("GET", "/changes/{change}", true, p.summary)
	p.route("POST", "/changes/{change}/confirm", true, p.confirm)
	p.route("POST", "/changes/{change}/payment-method", true, p.choosePaymentMethod)
	p.route("GET", "/invoices", true, p.invoices)
	p.route("GET", "/invoices/{invoice}", true, p.invoice)
	p.route("GET", "/invoices/{invoice}/pdf", true, p.invoicePDF)
	p.route("GET", "/account", true, p.accountSummary)
	p.route("POST", "/account/seat-preference", true, p.seatPreference)
	p.route("GET", "/cards", true, p.cards)
	p.route("POST", "/cards", true, p.addCard)
	p.route("POST", "/cards/{pm}/default", true, p.defaultCard)
	p.route("POST", "/cards/{pm}/delete", true, p.deleteCard)
	p.route("GET", "/plans", true, p.plans)
	p.route("GET", "/plans/{pkg}/upgrade", true, p.upgradeForm)
	p.route("POST", "/plans/{pkg}/upgrade", true, p.upgrade)
	p.route("GET", "/billing", true, p.billingPage)
	p.route("POST", "/billing", true, p.seats)
	p.route("POST", "/billing/level", true, p.planLevel)
	p.route("POST", "/locale", false, p.setLocale)
	p.route("GET", "/users", true, p.usersPage)
	p.route("POST", "/users", true, p.addUser)
	p.route("POST", "/users/{user}/role", true, p.setUserRole)
	p.route("POST", "/users/{user}/delete", true, p.deleteUser)
	p.mux.Handle("POST /portal/accounts/{acct}/status", p.wrap(true, p.accountStatus))
	p.requestRoutes()
	p.numberRoutes()
}

// accountStatus suspends or resumes the account (operator only).
func (p *Portal) accountStatus(q *rq) error {
	if !q.s.Operator {
		return errForbidden
	}
	if _, err := p.o.Provisioning.SetAccountStatus(q.ctx(), q.actor(), q.acct.ID, q.r.PostFormValue("status") == "suspended"); err != nil {
		return err
	}
	http.Redirect(q.w, q.r, q.base+"/", http.StatusSeeOther)
	return nil
}

// audit records a portal-only action (a sign-in) in the
// audit log; service actions audit themselves.
func (p *Portal) audit(ctx context.Context, actor, accountID, action, object string, details map[string]any) {
	err := p.o.DB.InTx(ctx, func(tx *store.Tx) error {
		return store.Audit(ctx, tx, p.o.Clock.Now(), actor, accountID, action, object, details)
	})
	if err != nil {
		p.log.Error("portal audit", "action", action, "err", err)
	}
}

// ownLines filters what a member may see: the lines assigned to them.
func (p *Portal) ownLines(q *rq, lines []provisioning.Line) ([]provisioning.Line, error) {
	if q.canManage() {
		return lines, nil
	}
	mine, err := p.o.Users.LinesOf(q.ctx(), q.s.User.ID)
	if err != nil {
		return nil, err
	}
	out := []provisioning.Line{}
	for _, l := range lines {
		if slices.Contains(mine, l.ID) {
			out = append(out, l)
		}
	}
	return out, nil
}

type packagesPage struct {
	Packages   []provisioning.PackageView
	Lines      []provisioning.Line
	Names      map[string]string
	TotalLines int
	Confirmed  bool
	InvoiceID  string
	Pending    pending
}

func (p *Portal) myPackages(q *rq) error {
	pkgs, err := p.o.Provisioning.MyPackages(q.ctx(), q.acct.ID)
	if err != nil {
		return err
	}
	pg := packagesPage{Names: map[string]string{}, Confirmed: q.r.URL.Query().Get("confirmed") != "", InvoiceID: q.r.URL.Query().Get("invoice")}
	var all []provisioning.Line
	for _, v := range pkgs {
		pg.Names[v.Package] = v.Name
		all = append(all, v.Lines...)
	}
	slices.SortFunc(all, func(a, b provisioning.Line) int { return a.Extension - b.Extension })
	if pg.Lines, err = p.ownLines(q, all); err != nil {
		return err
	}
	if q.canManage() {
		pg.Packages = pkgs
		pg.TotalLines = len(all)
		if pg.Pending, err = p.pending(q); err != nil {
			return err
		}
	} else {
		pg.TotalLines = len(pg.Lines)
	}
	return p.render(q, "packages", pg)
}

// revealPassword answers a line's password as JSON for the hover reveal;
// the service audits it. The CSRF header keeps other sites from making a
// browser reveal (and audit) passwords.
func (p *Portal) revealPassword(q *rq) error {
	if !p.csrfOK(q.r, q.s) {
		return fault.New(fault.NotFound, "", "line not found")
	}
	id := q.r.PathValue("line")
	if !q.canManage() {
		mine, err := p.o.Users.LinesOf(q.ctx(), q.s.User.ID)
		if err != nil {
			return err
		}
		if !slices.Contains(mine, id) {
			return fault.New(fault.NotFound, "", "line not found")
		}
	}
	pw, err := p.o.Provisioning.RevealPassword(q.ctx(), q.actor(), q.acct.ID, id)
	if err != nil {
		return err
	}
	q.w.Header().Set("Content-Type", "application/json")
	q.w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(q.w).Encode(map[string]string{"password": pw})
}

type modifyRow struct {
	Package  provisioning.Package
	Current  int
	Used     int
	Cycle    string
	UnitPer  int64
	Existing bool
}

type modifyPage struct {
	Rows    []modifyRow
	Lines   []provisioning.Line
	Catalog []provisioning.Package
	Names   map[string]string
	Error   string
}

func (p *Portal) modifyData(q *rq) (modifyPage, map[string]provisioning.PackageView, error) {
	mine, err := p.o.Provisioning.MyPackages(q.ctx(), q.acct.ID)
	if err != nil {
		return modifyPage{}, nil, err
	}
	cat, err := p.o.Provisioning.Packages(q.ctx(), false)
	if err != nil {
		return modifyPage{}, nil, err
	}
	byCode := map[string]provisioning.PackageView{}
	pg := modifyPage{Names: map[string]string{}}
	for _, v := range mine {
		byCode[v.Package] = v
		pg.Lines = append(pg.Lines, v.Lines...)
	}
	slices.SortFunc(pg.Lines, func(a, b provisioning.Line) int { return a.Extension - b.Extension })
	for _, c := range cat {
		if c.Currency != q.acct.Currency || c.Kind == "hardware" {
			continue // phones are bought, not subscribed
		}
		pg.Names[c.Code] = c.Name
		pg.Catalog = append(pg.Catalog, c)
		v, ok := byCode[c.Code]
		row := modifyRow{Package: c, Cycle: "monthly", Existing: ok && v.Quantity > 0}
		if ok {
			row.Current, row.Used, row.Cycle = v.Quantity, v.Used, v.Cycle
		}
		row.UnitPer = c.PriceMinor
		pg.Rows = append(pg.Rows, row)
	}
	return pg, byCode, nil
}

func (p *Portal) modifyForm(q *rq) error {
	pg, _, err := p.modifyData(q)
	if err != nil {
		return err
	}
	return p.render(q, "modify", pg)
}

// modify turns the Add/Modify form into a change order.
func (p *Portal) modify(q *rq) error {
	pg, subs, err := p.modifyData(q)
	if err != nil {
		return err
	}
	req, problem := orderFromForm(q.r.PostForm, pg.Rows, pg.Lines, subs)
	if problem != "" {
		pg.Error = problem
		p.renderStatus(q.w, q.r, q, http.StatusUnprocessableEntity, "modify", pg)
		return nil
	}
	return p.preview(q, req)
}

// orderFromForm reads the Add/Modify form: a ticked line goes with its
// seat (the package's free seats too: the service removes named lines only
// when seats fall below the lines in use, and the summary shows it), a
// changed plan is a swap (the service finds or buys the seat), "lines to
// add" buy seats. It returns the order, or what is wrong (a translation key
// or a message).
func orderFromForm(f url.Values, rows []modifyRow, lines []provisioning.Line, subs map[string]provisioning.PackageView) (provisioning.ChangeRequest, string) {
	del := map[string][]string{} // package → lines deleted
	swapsOut, swapsIn := map[string]int{}, map[string]int{}
	var req provisioning.ChangeRequest
	for _, l := range lines {
		switch to := f.Get("plan." + l.ID); {
		case f.Get("del."+l.ID) != "":
			del[l.Package] = append(del[l.Package], l.ID)
		case to != "" && to != l.Package:
			req.Swaps = append(req.Swaps, provisioning.Swap{Line: l.ID, Package: to})
			swapsOut[l.Package]++
			swapsIn[to]++
		}
	}
	for _, row := range rows {
		code := row.Package.Code
		add := 0
		if s := strings.TrimSpace(f.Get("add." + code)); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 || n > provisioning.MaxQuantity {
				return provisioning.ChangeRequest{}, fmt.Sprintf("%s: lines to add must be a number from 0 to %d", row.Package.Name, provisioning.MaxQuantity)
			}
			add = n
		}
		d := len(del[code])
		if add == 0 && d == 0 {
			continue // swaps alone: the service finds or buys the seats
		}
		v := subs[code]
		inUse := v.Used - d - swapsOut[code] + swapsIn[code]
		target := max(v.Quantity-swapsOut[code], inUse) + add
		if d > 0 {
			if add > 0 {
				return provisioning.ChangeRequest{}, fmt.Sprintf("%s: delete lines or add lines, not both in one order", row.Package.Name)
			}
			target = inUse
		}
		req.Items = append(req.Items, provisioning.ChangeItem{Package: code, Quantity: target, RemoveLines: del[code]})
	}
	if len(req.Items) == 0 && len(req.Swaps) == 0 {
		return req, "modify.nothing"
	}
	return req, ""
}

// preview asks the service for a change order and shows its summary.
func (p *Portal) preview(q *rq, req provisioning.ChangeRequest) error {
	pv, err := p.o.Provisioning.PreviewChange(q.ctx(), q.acct.ID, req)
	if err != nil {
		return err
	}
	http.Redirect(q.w, q.r, q.base+"/changes/"+pv.ID, http.StatusSeeOther)
	return nil
}

type summaryItem struct {
	provisioning.PreviewItem
	Full int64 // the unprorated price of the seats added
}

type summaryPage struct {
	Preview   provisioning.Preview
	Items     []summaryItem
	Currency  string
	Status    string
	Conflict  string
	Cards     []billing.PaymentMethod
	Confirmed bool
}

func (p *Portal) changeOrder(q *rq, id string) (provisioning.Preview, string, error) {
	pv, status, err := p.o.Provisioning.ChangeOrder(q.ctx(), id)
	if err == nil && pv.AccountID != q.acct.ID {
		err = fault.New(fault.NotFound, "", "change order not found")
	}
	return pv, status, err
}

func (p *Portal) summaryData(q *rq, pv provisioning.Preview, status string) (summaryPage, error) {
	sp := summaryPage{Preview: pv, Currency: q.acct.Currency, Status: status, Confirmed: status == "confirmed"}
	for _, it := range pv.Items {
		if it.From == it.To && len(it.LinesRemoved) == 0 && it.LinesCreated == 0 {
			continue
		}
		si := summaryItem{PreviewItem: it}
		if it.To > it.From {
			si.Full = it.UnitMinor * int64(it.To-it.From)
		}
		sp.Items = append(sp.Items, si)
	}
	cards, err := p.o.Billing.PaymentMethods(q.ctx(), q.acct.ID)
	if err != nil {
		return sp, err
	}
	sp.Cards = cards
	return sp, nil
}

func (p *Portal) summary(q *rq) error {
	pv, status, err := p.changeOrder(q, q.r.PathValue("change"))
	if err != nil {
		return err
	}
	sp, err := p.summaryData(q, pv, status)
	if err != nil {
		return err
	}
	return p.render(q, "summary", sp)
}

// confirm applies the order. When the account changed since the preview the
// service refuses (409): the page says so and shows a fresh preview of the
// same order to confirm instead.
func (p *Portal) confirm(q *rq) error {
	id := q.r.PathValue("change")
	pv, _, err := p.changeOrder(q, id)
	if err != nil {
		return err
	}
	res, err := p.o.Provisioning.ConfirmChange(q.ctx(), q.actor(), id, q.acct.ID)
	if fe, ok := fault.As(err); ok && fe.Kind == fault.Conflict {
		fresh, perr := p.o.Provisioning.PreviewChange(q.ctx(), q.acct.ID, requestOf(pv))
		if perr != nil {
			return err
		}
		sp, serr := p.summaryData(q, fresh, "previewed")
		if serr != nil {
			return serr
		}
		sp.Conflict = fe.Msg
		p.renderStatus(q.w, q.r, q, http.StatusConflict, "summary", sp)
		return nil
	}
	if err != nil {
		return err
	}
	to := q.base + "/?confirmed=" + url.QueryEscape(res.ChangeID)
	if res.InvoiceID != nil {
		to += "&invoice=" + url.QueryEscape(*res.InvoiceID)
	}
	http.Redirect(q.w, q.r, to, http.StatusSeeOther)
	return nil
}

// choosePaymentMethod is the summary's "pay with": the chosen card becomes
// the account's default and the order is previewed again with it (the
// preview names the method it will charge).
func (p *Portal) choosePaymentMethod(q *rq) error {
	pv, _, err := p.changeOrder(q, q.r.PathValue("change"))
	if err != nil {
		return err
	}
	if err := p.o.Billing.SetDefaultPaymentMethod(q.ctx(), q.actor(), q.acct.ID, q.r.PostFormValue("pm")); err != nil {
		return err
	}
	return p.preview(q, requestOf(pv))
}

// requestOf rebuilds an order from what its preview promised: the target
// quantities and cycles, the lines named to go, the swaps, the numbers
// ordered or released (their add-on's quantity follows from them: the
// service refuses it set directly).
func requestOf(pv provisioning.Preview) provisioning.ChangeRequest {
	req := provisioning.ChangeRequest{Swaps: pv.Swaps}
	byNumbers := map[string]bool{}
	for _, n := range pv.Numbers {
		byNumbers[n.Addon] = true
		if n.Action == "release" {
			req.ReleaseNumbers = append(req.ReleaseNumbers, n.Number)
			req.ReleaseEffective = n.Effective
			continue
		}
		req.Numbers = append(req.Numbers, provisioning.NumberOrder{Number: n.Number, Prefix: n.Prefix, Quantity: n.Quantity, Addon: n.Addon})
	}
	for _, it := range pv.Items {
		if byNumbers[it.Package] {
			continue
		}
		ci := provisioning.ChangeItem{Package: it.Package, Quantity: it.To, Cycle: it.Cycle}
		for _, l := range it.LinesRemoved {
			ci.RemoveLines = append(ci.RemoveLines, l.ID)
		}
		req.Items = append(req.Items, ci)
	}
	return req
}

func (p *Portal) invoices(q *rq) error {
	list, err := p.o.Billing.Invoices(q.ctx(), q.acct.ID)
	if err != nil {
		return err
	}
	slices.Reverse(list) // newest first
	return p.render(q, "invoices", list)
}

func (p *Portal) invoice(q *rq) error {
	inv, err := p.o.Billing.Invoice(q.ctx(), q.r.PathValue("invoice"), q.acct.ID)
	if err != nil {
		return err
	}
	return p.render(q, "invoice", inv.View())
}

func (p *Portal) invoicePDF(q *rq) error {
	inv, err := p.o.Billing.Invoice(q.ctx(), q.r.PathValue("invoice"), q.acct.ID)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := billing.RenderPDF(&buf, inv.Invoice); err != nil {
		return err
	}
	q.w.Header().Set("Content-Type", "application/pdf")
	q.w.Header().Set("Content-Disposition", `attachment; filename="invoice-`+inv.Number+`.pdf"`)
	q.w.Header().Set("Cache-Control", "private, no-store")
	_, err = q.w.Write(buf.Bytes())
	return err
}

type accountPage struct {
	Summary billing.Summary
	Lines   int64
	Pending pending
}

func (p *Portal) accountSummary(q *rq) error {
	sum, err := p.o.Billing.Summary(q.ctx(), q.acct.ID)
	if err != nil {
		return err
	}
	pend, err := p.pending(q)
	if err != nil {
		return err
	}
	return p.render(q, "account", accountPage{Summary: sum, Pending: pend})
}

func (p *Portal) seatPreference(q *rq) error {
	if _, err := p.o.Provisioning.SetSeatPreference(q.ctx(), q.actor(), q.acct.ID, q.r.PostFormValue("seat_preference")); err != nil {
		return err
	}
	http.Redirect(q.w, q.r, q.base+"/account", http.StatusSeeOther)
	return nil
}

type cardsPage struct {
	Cards []billing.PaymentMethod
	Error string
}

func (p *Portal) cards(q *rq) error {
	list, err := p.o.Billing.PaymentMethods(q.ctx(), q.acct.ID)
	if err != nil {
		return err
	}
	return p.render(q, "cards", cardsPage{Cards: list})
}

func (p *Portal) addCard(q *rq) error {
	f := q.r.PostForm
	_, err := p.o.Billing.AddPaymentMethod(q.ctx(), q.actor(), q.acct.ID, billing.NewPaymentMethod{
		Gateway: "sandbox", Token: f.Get("token"), Label: strings.TrimSpace(f.Get("label")), Default: f.Get("default") != ""})
	if fe, ok := fault.As(err); ok && fe.Kind == fault.Invalid {
		list, lerr := p.o.Billing.PaymentMethods(q.ctx(), q.acct.ID)
		if lerr != nil {
			return lerr
		}
		p.renderStatus(q.w, q.r, q, http.StatusUnprocessableEntity, "cards", cardsPage{Cards: list, Error: fe.Error()})
		return nil
	}
	if err != nil {
		return err
	}
	http.Redirect(q.w, q.r, q.base+"/cards", http.StatusSeeOther)
	return nil
}

func (p *Portal) defaultCard(q *rq) error {
	if err := p.o.Billing.SetDefaultPaymentMethod(q.ctx(), q.actor(), q.acct.ID, q.r.PathValue("pm")); err != nil {
		return err
	}
	http.Redirect(q.w, q.r, q.base+"/cards", http.StatusSeeOther)
	return nil
}

func (p *Portal) deleteCard(q *rq) error {
	if err := p.o.Billing.DeletePaymentMethod(q.ctx(), q.actor(), q.acct.ID, q.r.PathValue("pm")); err != nil {
		return err
	}
	http.Redirect(q.w, q.r, q.base+"/cards", http.StatusSeeOther)
	return nil
}

type cycleOffer struct {
	Cycle    string
	Discount string // "15"
	Unit     int64  // price per line per period, discounted
	Months   int
	PerMonth int64
}

type planRow struct {
	Package provisioning.Package
	Sub     *provisioning.PackageView
	Offers  []cycleOffer
}

func (p *Portal) planRows(q *rq) ([]planRow, error) {
	pg, subs, err := p.modifyData(q)
	if err != nil {
		return nil, err
	}
	var rows []planRow
	for _, c := range pg.Catalog {
		r := planRow{Package: c}
		if v, ok := subs[c.Code]; ok {
			r.Sub = &v
		}
		for _, cy := range c.Cycles {
			months := billing.Cycle(cy.Cycle).Months()
			if months == 0 {
				continue // a cycle this portal cannot bill
			}
			unit := p.o.PeriodPrice(c, cy.Cycle)
			r.Offers = append(r.Offers, cycleOffer{Cycle: cy.Cycle, Discount: strconv.FormatFloat(float64(cy.DiscountBP)/100, 'f', -1, 64),
				Unit: unit, Months: months, PerMonth: billing.PerMonth(unit, billing.Cycle(cy.Cycle))})
		}
		rows = append(rows, r)
	}
	return rows, nil
}

func (p *Portal) plans(q *rq) error {
	rows, err := p.planRows(q)
	if err != nil {
		return err
	}
	return p.render(q, "plans", rows)
}

type upgradePage struct {
	Row      planRow
	Quantity int
	Error    string
}

func (p *Portal) planRow(q *rq) (planRow, error) {
	rows, err := p.planRows(q)
	if err != nil {
		return planRow{}, err
	}
	for _, r := range rows {
		if r.Package.Code == q.r.PathValue("pkg") {
			return r, nil
		}
	}
	return planRow{}, fault.New(fault.NotFound, "", "package not found")
}

func (p *Portal) upgradeForm(q *rq) error {
	r, err := p.planRow(q)
	if err != nil {
		return err
	}
	up := upgradePage{Row: r, Quantity: 1}
	if r.Sub != nil && r.Sub.Quantity > 0 {
		up.Quantity = r.Sub.Quantity
	}
	return p.render(q, "upgrade", up)
}

// upgrade orders quantity lines of the package on the chosen cycle; the
// summary that follows is the "check and choose payment method" step.
func (p *Portal) upgrade(q *rq) error {
	r, err := p.planRow(q)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(q.r.PostFormValue("quantity"))
	if err != nil || n < 0 || n > provisioning.MaxQuantity {
		p.renderStatus(q.w, q.r, q, http.StatusUnprocessableEntity, "upgrade", upgradePage{Row: r, Quantity: 1, Error: "quantity: 0–" + strconv.Itoa(provisioning.MaxQuantity)})
		return nil
	}
	return p.preview(q, provisioning.ChangeRequest{Items: []provisioning.ChangeItem{{Package: r.Package.Code, Quantity: n, Cycle: q.r.PostFormValue("cycle")}}})
}

type billingPage struct {
	Rows   []planRow
	AddOns []planRow
	// Higher lists, per subscribed package, the dearer packages its lines
	// can move up to (moving down is a request, not self-service).
	Higher map[string][]provisioning.Package
}

func (p *Portal) billingPage(q *rq) error {
	rows, err := p.planRows(q)
	if err != nil {
		return err
	}
	bp := billingPage{Higher: map[string][]provisioning.Package{}}
	for _, r := range rows {
		if r.Sub == nil || r.Sub.Quantity == 0 || r.Package.Kind != "package" {
			continue
		}
		for _, o := range rows {
			if o.Package.Kind == "package" && o.Package.PriceMinor > r.Package.PriceMinor {
				bp.Higher[r.Package.Code] = append(bp.Higher[r.Package.Code], o.Package)
			}
		}
	}
	for _, r := range rows {
		switch {
		case r.Package.Kind == "addon" && (r.Sub == nil || r.Sub.Quantity == 0):
			bp.AddOns = append(bp.AddOns, r)
		case r.Sub != nil && r.Sub.Quantity > 0:
			bp.Rows = append(bp.Rows, r)
		}
	}
	return p.render(q, "billing", bp)
}

// seats orders the seat counts of the Billing & upgrade page (+/−, or an
// add-on's "Add to plan"). Fewer seats than lines in use is refused by the
// service's own rules... no: it removes lines, so the page only lets the
// count go down to the lines in use; a real downgrade is a request.
func (p *Portal) seats(q *rq) error {
	rows, err := p.planRows(q)
	if err != nil {
		return err
	}
	var req provisioning.ChangeRequest
	for _, r := range rows {
		s := q.r.PostFormValue("seats." + r.Package.Code)
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > provisioning.MaxQuantity {
			return fault.New(fault.Invalid, "seats."+r.Package.Code, "seats must be a number from 0 to %d", provisioning.MaxQuantity)
		}
		cur, used := 0, 0
		if r.Sub != nil {
			cur, used = r.Sub.Quantity, r.Sub.Used
		}
		if n < used {
			return fault.New(fault.Invalid, "seats."+r.Package.Code, "%s has %d lines in use: fewer seats is a downgrade; use Get in touch", r.Package.Name, used)
		}
		if n != cur {
			req.Items = append(req.Items, provisioning.ChangeItem{Package: r.Package.Code, Quantity: n})
		}
	}
	if len(req.Items) == 0 {
		http.Redirect(q.w, q.r, q.base+"/billing", http.StatusSeeOther)
		return nil
	}
	return p.preview(q, req)
}

// planLevel moves every line of one package up to a dearer one (a swap per
// line: numbers and passwords stay); the summary shows today's prorated
// amount and the new full price.
func (p *Portal) planLevel(q *rq) error {
	rows, err := p.planRows(q)
	if err != nil {
		return err
	}
	from, to := q.r.PostFormValue("from"), q.r.PostFormValue("to")
	var fromRow, toRow *planRow
	for i := range rows {
		switch rows[i].Package.Code {
		case from:
			fromRow = &rows[i]
		case to:
			toRow = &rows[i]
		}
	}
	if fromRow == nil || fromRow.Sub == nil || len(fromRow.Sub.Lines) == 0 {
		return fault.New(fault.Invalid, "from", "no lines on package %q to move", from)
	}
	if toRow == nil || toRow.Package.Kind != "package" || toRow.Package.PriceMinor <= fromRow.Package.PriceMinor {
		return fault.New(fault.Invalid, "to", "pick a dearer package; moving down is a request (Get in touch)")
	}
	req := provisioning.ChangeRequest{}
	for _, l := range fromRow.Sub.Lines {
		req.Swaps = append(req.Swaps, provisioning.Swap{Line: l.ID, Package: to})
	}
	return p.preview(q, req)
}

func (p *Portal) setLocale(q *rq) error {
	lang := q.r.PostFormValue("lang")
	if q.s.Operator {
		http.Redirect(q.w, q.r, q.base+"/", http.StatusSeeOther)
		return nil
	}
	if _, err := p.o.Users.Update(q.ctx(), q.actor(), "self", q.acct.ID, q.s.User.ID, usersChangeLocale(lang)); err != nil {
		return err
	}
	back := q.r.PostFormValue("back")
	if !strings.HasPrefix(back, "/portal/") || strings.HasPrefix(back, "//") {
		back = q.base + "/"
	}
	http.Redirect(q.w, q.r, back, http.StatusSeeOther)
	return nil
}

// by is who manages users: the operator, or the signed-in owner or admin.
func (q *rq) by() users.ByRole {
	if q.s.Operator {
		return "operator"
	}
	return users.ByRole(q.s.User.Role)
}

type usersPage struct {
	Users []users.User
	Lines []provisioning.Line
	Error string
}

func (p *Portal) usersData(q *rq, errMsg string) (usersPage, error) {
	list, err := p.o.Users.List(q.ctx(), q.acct.ID)
	if err != nil {
		return usersPage{}, err
	}
	pkgs, err := p.o.Provisioning.MyPackages(q.ctx(), q.acct.ID)
	if err != nil {
		return usersPage{}, err
	}
	up := usersPage{Users: list, Error: errMsg}
	for _, v := range pkgs {
		up.Lines = append(up.Lines, v.Lines...)
	}
	slices.SortFunc(up.Lines, func(a, b provisioning.Line) int { return a.Extension - b.Extension })
	return up, nil
}

func (p *Portal) usersPage(q *rq) error {
	up, err := p.usersData(q, "")
	if err != nil {
		return err
	}
	return p.render(q, "users", up)
}

// userResult shows a refused user change on the users page (422/409) and
// follows a success back to it.
func (p *Portal) userResult(q *rq, err error) error {
	if fe, ok := fault.As(err); ok && (fe.Kind == fault.Invalid || fe.Kind == fault.Conflict) {
		up, uerr := p.usersData(q, fe.Error())
		if uerr != nil {
			return uerr
		}
		status := http.StatusUnprocessableEntity
		if fe.Kind == fault.Conflict {
			status = http.StatusConflict
		}
		p.renderStatus(q.w, q.r, q, status, "users", up)
		return nil
	}
	if err != nil {
		return err
	}
	http.Redirect(q.w, q.r, q.base+"/users", http.StatusSeeOther)
	return nil
}

func (p *Portal) addUser(q *rq) error {
	f := q.r.PostForm
	_, err := p.o.Users.Create(q.ctx(), q.actor(), q.by(), q.acct.ID, users.NewUser{Email: f.Get("email"), Name: f.Get("name"),
		Role: f.Get("role"), Password: f.Get("password"), Locale: f.Get("locale"), Lines: f["lines"]})
	return p.userResult(q, err)
}

func (p *Portal) setUserRole(q *rq) error {
	role := q.r.PostFormValue("role")
	_, err := p.o.Users.Update(q.ctx(), q.actor(), q.by(), q.acct.ID, q.r.PathValue("user"), users.Change{Role: &role})
	return p.userResult(q, err)
}

func (p *Portal) deleteUser(q *rq) error {
	return p.userResult(q, p.o.Users.Delete(q.ctx(), q.actor(), q.by(), q.acct.ID, q.r.PathValue("user")))
}

type accountsPage struct {
	Query    string
	Accounts []provisioning.Account
}

func (p *Portal) accountsList(w http.ResponseWriter, r *http.Request, q *rq) error {
	list, err := p.o.Provisioning.Accounts(r.Context())
	if err != nil {
		return err
	}
	needle := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("q")))
	ap := accountsPage{Query: needle}
	for _, a := range list {
		if needle == "" || strings.Contains(strings.ToLower(a.Name), needle) || strings.Contains(strings.ToLower(a.SIPDomain), needle) || strings.HasPrefix(a.ID, needle) {
			ap.Accounts = append(ap.Accounts, a)
		}
	}
	p.renderStatus(w, r, q, http.StatusOK, "accounts", ap)
	return nil
}

func usersChangeLocale(lang string) users.Change { return users.Change{Locale: &lang} }
