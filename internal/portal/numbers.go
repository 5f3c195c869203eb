package portal

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/provisioning"
)

// numberService is what the Numbers and Phones screens use of the
// provisioning service: the methods behind /v1/accounts/{id}/numbers,
// /v1/numbers/available and /v1/accounts/{id}/hardware.
type numberService interface {
	Numbers(ctx context.Context, accountID string, f provisioning.NumberFilter) ([]provisioning.Number, error)
	BuyHardware(ctx context.Context, actor, accountID, item string, quantity int) (provisioning.HardwareOrder, error)
	HardwareOrders(ctx context.Context, accountID string) ([]provisioning.HardwareOrder, error)
}

func (p *Portal) numberRoutes() {
	p.route("GET", "/numbers", true, p.numbersPage)
	p.route("POST", "/numbers", true, p.orderNumbers)
	p.route("GET", "/phones", true, p.phonesPage)
	p.route("POST", "/phones", true, p.buyPhones)
}

type numbersPage struct {
	Mine      []provisioning.Number
	Available []provisioning.Number
	Prefix    string
	Quantity  string
	Error     string
}

func (p *Portal) numbersData(q *rq, prefix string) (numbersPage, error) {
	np := numbersPage{Prefix: prefix}
	var err error
	if np.Mine, err = p.o.Provisioning.Numbers(q.ctx(), q.acct.ID, provisioning.NumberFilter{Limit: 1000}); err != nil {
		return np, err
	}
	np.Available, err = p.o.Provisioning.Numbers(q.ctx(), "", provisioning.NumberFilter{State: "available", Kind: provisioning.NumberLocal, Prefix: prefix, Limit: 20})
	if fe, ok := fault.As(err); ok && fe.Kind == fault.Invalid {
		np.Error, err = fe.Error(), nil
	}
	return np, err
}

// numbersPage lists the account's numbers and some free local numbers
// (?prefix= narrows them) to order by prefix or one by one.
func (p *Portal) numbersPage(q *rq) error {
	np, err := p.numbersData(q, strings.TrimSpace(q.r.URL.Query().Get("prefix")))
	if err != nil {
		return err
	}
	return p.render(q, "numbers", np)
}

// orderNumbers orders numbers through a change order, like the API's
// "numbers": [{"prefix","quantity"} | {"number"}]: the summary that follows
// shows the add-on's price; confirming claims the numbers.
func (p *Portal) orderNumbers(q *rq) error {
	f := q.r.PostForm
	order := provisioning.NumberOrder{Number: strings.TrimSpace(f.Get("number"))}
	if order.Number == "" {
		order.Prefix = strings.TrimSpace(f.Get("prefix"))
		n, err := strconv.Atoi(strings.TrimSpace(f.Get("quantity")))
		if err != nil || n < 1 {
			return p.numbersRefused(q, f, fault.New(fault.Invalid, "quantity", "quantity must be a whole number of at least 1"))
		}
		order.Quantity = n
	}
	pv, err := p.o.Provisioning.PreviewChange(q.ctx(), q.acct.ID, provisioning.ChangeRequest{Numbers: []provisioning.NumberOrder{order}})
	if err != nil {
		return p.numbersRefused(q, f, err)
	}
	http.Redirect(q.w, q.r, q.base+"/changes/"+pv.ID, http.StatusSeeOther)
	return nil
}

// numbersRefused shows the numbers page again with the service's reason
// for a refused order (bad prefix, too few numbers left).
func (p *Portal) numbersRefused(q *rq, f url.Values, err error) error {
	fe, ok := fault.As(err)
	if !ok || (fe.Kind != fault.Invalid && fe.Kind != fault.Conflict) {
		return err
	}
	np, derr := p.numbersData(q, strings.TrimSpace(f.Get("prefix")))
	if derr != nil {
		return derr
	}
	np.Quantity, np.Error = f.Get("quantity"), fe.Error()
	status := http.StatusUnprocessableEntity
	if fe.Kind == fault.Conflict {
		status = http.StatusConflict
	}
	p.renderStatus(q.w, q.r, q, status, "numbers", np)
	return nil
}

type phonesPage struct {
	Phones []provisioning.Package
	Orders []provisioning.HardwareOrder
	Names  map[string]string
	Bought string
	Error  string
}

func (p *Portal) phonesData(q *rq) (phonesPage, error) {
	pp := phonesPage{Names: map[string]string{}, Bought: q.r.URL.Query().Get("bought")}
	cat, err := p.o.Provisioning.Packages(q.ctx(), true)
	if err != nil {
		return pp, err
	}
	for _, c := range cat {
		if c.Kind != "hardware" {
			continue
		}
		pp.Names[c.Code] = c.Name
		if !c.Retired && c.Currency == q.acct.Currency {
			pp.Phones = append(pp.Phones, c)
		}
	}
	pp.Orders, err = p.o.Provisioning.HardwareOrders(q.ctx(), q.acct.ID)
	return pp, err
}

// phonesPage offers the catalog's phones and lists the account's orders.
func (p *Portal) phonesPage(q *rq) error {
	pp, err := p.phonesData(q)
	if err != nil {
		return err
	}
	return p.render(q, "phones", pp)
}

// buyPhones buys phones as POST /v1/accounts/{id}/hardware does: paid by
// card at once; a refusal (no card, declined, out of stock) is shown on
// the page.
func (p *Portal) buyPhones(q *rq) error {
	item := q.r.PostFormValue("item")
	n, err := strconv.Atoi(strings.TrimSpace(q.r.PostFormValue("quantity." + item)))
	if err != nil || n < 1 || n > 100 {
		err = fault.New(fault.Invalid, "quantity", "quantity must be a number from 1 to 100")
	} else {
		var o provisioning.HardwareOrder
		if o, err = p.o.Provisioning.BuyHardware(q.ctx(), q.actor(), q.acct.ID, item, n); err == nil {
			http.Redirect(q.w, q.r, q.base+"/phones?bought="+url.QueryEscape(o.ID), http.StatusSeeOther)
			return nil
		}
	}
	fe, ok := fault.As(err)
	if !ok || fe.Kind == fault.NotFound {
		return err
	}
	pp, derr := p.phonesData(q)
	if derr != nil {
		return derr
	}
	pp.Error = fe.Error()
	status := http.StatusUnprocessableEntity
	switch fe.Kind {
	case fault.Conflict:
		status = http.StatusConflict
	case fault.PaymentRequired:
		status = http.StatusPaymentRequired
	}
	p.renderStatus(q.w, q.r, q, status, "phones", pp)
	return nil
}
